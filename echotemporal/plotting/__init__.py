"""Figures (matplotlib object-oriented API on the Agg canvas; no pyplot global state)."""

from __future__ import annotations

from echotemporal.plotting.sequence import (
    attributes_figure,
    plot_attribute_trajectories,
    plot_volume_curve,
    save_sequence_figures,
    volume_figure,
)
from echotemporal.plotting.review import cohort_figure, patient_figure, write_review  # noqa: F401 - batch review

__all__ = [
    "attributes_figure",
    "plot_attribute_trajectories",
    "plot_volume_curve",
    "save_sequence_figures",
    "volume_figure",
]
