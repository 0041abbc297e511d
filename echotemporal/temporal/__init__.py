"""Temporal module: consistency metric, detection, and latent-trajectory solvers (DESIGN.md §4).

``metric``: the consistency metric of Painchaud et al. (IEEE TMI 2022), the packaged thresholds and
frame detection. ``solvers``: the exact consistency projection and Whittaker smoother used on latent
trajectories, plus the reference's gradient-descent baselines.
"""

from __future__ import annotations

from echotemporal.temporal.metric import (
    AttributeThresholds,
    consistency_metric,
    default_thresholds_path,
    detect_inconsistent_frames,
    load_thresholds,
)
from echotemporal.temporal.solvers import (
    consistency_residual,
    gradient_descent_smooth,
    project_consistent,
    project_consistent_sparse,
    search_smoothing_weight,
    whittaker_smooth,
)

__all__ = [
    "AttributeThresholds",
    "consistency_metric",
    "consistency_residual",
    "default_thresholds_path",
    "detect_inconsistent_frames",
    "gradient_descent_smooth",
    "load_thresholds",
    "project_consistent",
    "project_consistent_sparse",
    "search_smoothing_weight",
    "whittaker_smooth",
]
