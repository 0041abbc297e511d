"""Simpson's method of disks on the LV polygon: disk diameters, monoplane volumes (DESIGN.md §5).

Volumes follow Simpson's method of disks as in the ASE/EACVI chamber-quantification recommendations
(Lang et al., J Am Soc Echocardiogr 2015): the LV long axis runs from the midpoint of the two mitral
hinge points to the apex and is cut into ``n_disks`` slabs of equal height ``h``; each slab is a disk
whose diameter is the chord of the LV mask on the line perpendicular to the axis through the slab's
centre. Each perpendicular line is intersected exactly with the polygon edges (vectorised over disks
and edges) and the chord is the summed length of the inside intervals (even-odd rule, so holes are
excluded). The axis length is taken where the axis line leaves the polygon beyond the apex. On half
prolate ellipsoids at CAMUS spacing this gives volumes within about 1 % of the analytic value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echotemporal.measure.clinical.geometry import (
    _edge_coordinates,
    _FrameGeometry,
    _geometries,
)
from echotemporal.core.labels import as_label_sequence, check_spacing

__all__ = ["N_DISKS", "disk_diameters_mm", "lv_volumes_ml"]

#: Disks of Simpson's method (ASE/EACVI recommendation).
N_DISKS = 20

_MM3_PER_ML = 1000.0


def _disk_diameters(geom: _FrameGeometry, n_disks: int) -> np.ndarray:
    """(n_disks,) chords (mm) of the LV polygon on the perpendiculars through the slab centres."""
    s_a, t_a, s_b, t_b = _edge_coordinates(geom.points_mm, geom.segments, geom.base_mm, geom.axis)
    keep = np.maximum(s_a, s_b) > 0  # edges below the mitral plane never meet a disk line
    s_a, t_a, s_b, t_b = s_a[keep], t_a[keep], s_b[keep], t_b[keep]
    levels = (np.arange(n_disks) + 0.5) * (geom.length_mm / n_disks)
    # Half-open test: a vertex exactly on a line counts once, so every line crosses a closed polygon
    # an even number of times.
    crosses = (s_a <= levels[:, None]) != (s_b <= levels[:, None])
    # Only the few crossing (disk, edge) pairs are intersected: flat indices in row-major order, so
    # each disk's crossings are contiguous.
    disk, edge = np.divmod(np.flatnonzero(crosses), crosses.shape[1])
    s_a, t_a, s_b, t_b = s_a[edge], t_a[edge], s_b[edge], t_b[edge]
    t = t_a + (levels[disk] - s_a) / (s_b - s_a) * (t_b - t_a)
    counts = np.bincount(disk, minlength=n_disks)
    n_max = int(counts.max(initial=0))
    # (n_disks, n_max) crossings of each disk line, sorted, NaN-padded (NaN sort last).
    table = np.full((n_disks, n_max), np.nan)
    table[disk, np.arange(disk.size) - (np.cumsum(counts) - counts)[disk]] = t
    table.sort(axis=1)
    n_max -= n_max % 2
    if n_max == 0:
        return np.zeros(n_disks)
    table = table[:, :n_max]
    return np.nansum(table[:, 1::2] - table[:, 0::2], axis=1)


def _diameters_and_lengths(
    geometries: list[_FrameGeometry | None], n_disks: int
) -> tuple[np.ndarray, np.ndarray]:
    diameters = np.full((len(geometries), n_disks), np.nan)
    lengths = np.full(len(geometries), np.nan)
    for t, geom in enumerate(geometries):
        if geom is not None:
            diameters[t] = _disk_diameters(geom, n_disks)
            lengths[t] = geom.length_mm
    return diameters, lengths


def _monoplane_ml(diameters: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    n_disks = diameters.shape[-1]
    return np.pi / 4 * np.sum(diameters**2, axis=-1) * (lengths / n_disks) / _MM3_PER_ML


def disk_diameters_mm(
    labels: np.ndarray, spacing_mm: Sequence[float], n_disks: int = N_DISKS
) -> tuple[np.ndarray, np.ndarray]:
    """Simpson disk diameters and LV long-axis length per frame.

    Args:
        labels: (T, H, W) uint8 CAMUS label sequence (or one (H, W) frame), apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        n_disks: number of disks along the long axis.

    Returns:
        diameters: (T, n_disks) chord of the LV on the perpendicular through each slab centre, mm,
            base (mitral plane) first; NaN rows for unmeasurable frames.
        lengths: (T,) long-axis length from the hinge midpoint to the apex, mm.

    Warns:
        RuntimeWarning: frames without an LV or without mitral hinges (their rows are NaN).
    """
    seq = as_label_sequence(labels)
    spacing = np.asarray(check_spacing(spacing_mm))
    return _diameters_and_lengths(_geometries(seq, spacing, "disk_diameters_mm"), int(n_disks))


def lv_volumes_ml(labels: np.ndarray, spacing_mm: Sequence[float], n_disks: int = N_DISKS) -> np.ndarray:
    """LV volume per frame, Simpson's monoplane method of disks: ``V = π/4·Σ d_i²·h``, ``h = L/n_disks``.

    Args:
        labels: (T, H, W) uint8 CAMUS label sequence (or one (H, W) frame), apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        n_disks: number of disks (20 in the ASE/EACVI recommendation).

    Returns:
        (T,) float64 volumes in mL (1 mL = 1000 mm³), unrounded; NaN for unmeasurable frames.

    Warns:
        RuntimeWarning: frames without an LV or without mitral hinges.
    """
    diameters, lengths = disk_diameters_mm(labels, spacing_mm, n_disks)
    return _monoplane_ml(diameters, lengths)
