"""Figures (matplotlib object-oriented API on the Agg canvas; no pyplot global state)."""

from __future__ import annotations

from echotemporal.plotting.sequence import (
    attributes_figure,
    plot_attribute_trajectories,
    plot_volume_curve,
    save_sequence_figures,
    volume_figure,
)

__all__ = [
    "attributes_figure",
    "plot_attribute_trajectories",
    "plot_volume_curve",
    "save_sequence_figures",
    "volume_figure",
]
