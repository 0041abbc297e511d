"""LV geometry of one frame, shared by volumes and strain: boundary polygon, landmarks, long axis.

The LV mask is turned into its boundary polygon by marching squares at level 0.5 (the polygon
``skimage.measure.find_contours`` gives on a binary mask: vertices half-way between inside and outside
pixel centres), in physical coordinates. Coordinates are millimetres from the corner of the frame's own
heart box, so a frame's geometry depends on its pixels only, not on where the array was cropped: the
per-frame reuse of :func:`echotemporal.measure.clinical.measure_frames` is therefore exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echotemporal.measure.attributes import lv_landmarks
from echotemporal.core.boxes import HEART_MARGIN_PX, heart_mask, mask_box
from echotemporal.core.labels import LV, frames_text

# Landmarks are looked for on the LV∪MYO box grown by HEART_MARGIN_PX: hinge detection looks at the
# immediate neighbours of LV boundary pixels, so a few pixels keep it identical to the whole frame.


@dataclass(frozen=True)
class _FrameGeometry:
    """LV geometry of one frame, in mm from the corner of the frame's own heart box, (y, x) order."""

    points_mm: np.ndarray  # (N, 2) vertices of the LV boundary polygon(s)
    segments: np.ndarray  # (S, 2) int: polygon edges as vertex-index pairs, unordered
    hinge_left_mm: np.ndarray
    hinge_right_mm: np.ndarray
    apex_mm: np.ndarray
    base_mm: np.ndarray  # hinge midpoint
    axis: np.ndarray  # unit vector base -> apex
    length_mm: float  # base to where the axis line leaves the LV beyond the apex



# input checks








def _boundary_polygon(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel boundary of a binary mask: marching squares at level 0.5, vectorised.

    On a binary image the 0.5 level crosses each cell edge half-way between an inside and an outside
    pixel centre, so this is the polygon ``skimage.measure.find_contours(mask, 0.5)`` returns (with
    its default ``fully_connected="low"``: diagonal inside pixels are not joined), but its segments are
    left unordered (the chords need no order; the strain arc is ordered by `_ordered_loop`), which
    makes it several times faster than skimage's Python contour assembly. Only the crossings and the
    cells they bound are looked at, never the whole grid of cells.

    Args:
        mask: (H, W) bool, False on its whole border (so every polygon closes).

    Returns:
        points: (N, 2) float64 (row, col) vertices, each on exactly two segments: first the crossings
            between vertically adjacent pixels, then between horizontally adjacent ones, each in
            row-major order.
        segments: (S, 2) int64 vertex indices: one per two-crossing cell (larger index first), cells in
            row-major order, then the two of each saddle cell.
    """
    w = mask.shape[1]
    flat = mask.ravel()
    # Flat indices throughout: np.nonzero on 2D arrays is several times slower than flatnonzero.
    # Vertex (r + 0.5, c) between rows r and r+1: flat pixel index r*w + c of the upper pixel.
    rv, cv = np.divmod(np.flatnonzero(flat[:-w] != flat[w:]), w)
    # Vertex (r, c + 0.5) between columns c and c+1. Flat neighbours across a row end are border
    # pixels, both False, so they never cross.
    rh, ch = np.divmod(np.flatnonzero(flat[:-1] != flat[1:]), w)
    n_v, n_h = rv.size, rh.size
    points = np.empty((n_v + n_h, 2))
    points[:n_v, 0] = rv + 0.5
    points[:n_v, 1] = cv
    points[n_v:, 0] = rh
    points[n_v:, 1] = ch + 0.5
    # Cell (r, c) has corners (r, c), (r, c+1), (r+1, c), (r+1, c+1) and flat index r*(w-1) + c. Each
    # vertex is on the edge between two cells (the border is False, so both exist): the top (t) or
    # bottom (b) edge for a horizontal crossing, the left (l) or right (r) edge for a vertical one.
    cw = w - 1
    cell_h, cell_v = rh * cw + ch, rv * cw + cv
    ids_v, ids_h = np.arange(n_v), n_v + np.arange(n_h)
    cells, entry_cell = np.unique(
        np.concatenate([cell_h, cell_h - cw, cell_v, cell_v - 1]), return_inverse=True
    )
    edges = np.full((cells.size, 4), -1, dtype=np.int64)  # vertex on edge t, b, l, r; -1: none
    edges[entry_cell, np.repeat(np.arange(4), (n_h, n_h, n_v, n_v))] = np.concatenate([ids_h, ids_h, ids_v, ids_v])
    # Around a cell's corners the mask changes an even number of times: 2 or 4 (saddle) crossings.
    four = np.bincount(entry_cell, minlength=cells.size) == 4
    # Two crossings: one segment joining them, larger vertex index first.
    pairs = edges[~four]
    larger = pairs.max(axis=1)
    smaller = np.where(pairs < 0, larger[:, None], pairs).min(axis=1)
    two = np.column_stack([larger, smaller])
    # Four crossings (saddle): keep the two inside corners apart, as skimage's fully_connected="low".
    r, c = np.divmod(cells[four], cw)
    t, b, lft, rgt = edges[four].T
    tl_inside = mask[r, c][:, None]
    first = np.where(tl_inside, np.column_stack([t, lft]), np.column_stack([t, rgt]))
    second = np.where(tl_inside, np.column_stack([b, rgt]), np.column_stack([b, lft]))
    return points, np.concatenate([two, first, second])


def _heart_crop(frame: np.ndarray) -> np.ndarray | None:
    """The (h, w) window of one (H, W) frame that its geometry is measured on (LV∪MYO box plus a
    margin), or None without LV and MYO. The geometry depends on this window's pixels only."""
    # One full-frame pass for LV∪MYO, then work on the heart's box only.
    box = mask_box(heart_mask(frame), HEART_MARGIN_PX)
    return None if box is None else frame[box]


def _frame_geometry(frame: np.ndarray, spacing: np.ndarray) -> _FrameGeometry | str:
    """LV contour, landmarks and long axis of one (H, W) frame, or the reason it is unmeasurable."""
    crop = _heart_crop(frame)
    return "no LV" if crop is None else _crop_geometry(crop, spacing)


def _crop_geometry(crop: np.ndarray, spacing: np.ndarray) -> _FrameGeometry | str:
    """:func:`_frame_geometry` of a frame's :func:`_heart_crop`."""
    lv = crop == LV
    lv_rows = np.flatnonzero(lv.any(axis=1))
    if lv_rows.size == 0:
        return "no LV"
    lv_cols = np.flatnonzero(lv.any(axis=0))
    r0, r1, c0, c1 = lv_rows[0], lv_rows[-1] + 1, lv_cols[0], lv_cols[-1] + 1

    # Hinge detection looks at the neighbours of LV boundary pixels only: the crop gives the same result.
    landmarks = lv_landmarks(crop, tuple(spacing))
    if landmarks is None:
        return "no mitral hinges"
    # Frame-local coordinates (from the corner of this frame's heart box): the result depends on the
    # frame's pixels only, wherever the array was cropped, so per-frame measures can be reused exactly.
    hinge_left = np.asarray(landmarks.hinge_left, dtype=np.float64) * spacing
    hinge_right = np.asarray(landmarks.hinge_right, dtype=np.float64) * spacing
    apex = np.asarray(landmarks.apex, dtype=np.float64) * spacing
    base = 0.5 * (hinge_left + hinge_right)
    axis_vec = apex - base
    apex_distance = float(np.hypot(*axis_vec))
    if not np.isfinite(apex_distance) or apex_distance <= 0:
        return "apex on the mitral plane"
    axis = axis_vec / apex_distance

    # Zero padding closes every polygon.
    padded = np.zeros((r1 - r0 + 2, c1 - c0 + 2), dtype=bool)
    padded[1:-1, 1:-1] = lv[r0:r1, c0:c1]
    points, segments = _boundary_polygon(padded)
    points_mm = (points + np.array([r0 - 1, c0 - 1], dtype=np.float64)) * spacing

    # Where the axis line leaves the LV beyond the apex: the apex pixel centre is half a pixel short.
    s_a, t_a, s_b, t_b = _edge_coordinates(points_mm, segments, base, axis)
    crosses = (t_a > 0) != (t_b > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_cross = s_a[crosses] + (s_b[crosses] - s_a[crosses]) * (-t_a[crosses]) / (t_b[crosses] - t_a[crosses])
    length = float(s_cross.max()) if s_cross.size and s_cross.max() > 0 else apex_distance
    return _FrameGeometry(points_mm, segments, hinge_left, hinge_right, apex, base, axis, length)


def _edge_coordinates(
    points_mm: np.ndarray, segments: np.ndarray, base: np.ndarray, axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Polygon edge end points in axis coordinates: s along the axis, t perpendicular (mm)."""
    rel = points_mm - base
    s = rel @ axis
    t = rel @ np.array([-axis[1], axis[0]])
    return s[segments[:, 0]], t[segments[:, 0]], s[segments[:, 1]], t[segments[:, 1]]


def _warn_unmeasurable(what: str, reasons: Sequence[str | None], stacklevel: int) -> None:
    """One RuntimeWarning listing the frames whose reason (T,) is not None, grouped by reason; frames
    in the format the CLI shows 1-based (:func:`echotemporal.core.labels.frames_text`)."""
    by_reason: dict[str, list[int]] = {}
    for t, why in enumerate(reasons):
        if why is not None:
            by_reason.setdefault(why, []).append(t)
    if by_reason:
        n_failed = sum(map(len, by_reason.values()))
        warnings.warn(
            f"{what}: {n_failed} of {len(reasons)} frames unmeasurable, set to NaN: "
            + "; ".join(f"{frames_text(frames)}: {why}" for why, frames in by_reason.items()),
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )


def _geometries(labels: np.ndarray, spacing: np.ndarray, what: str) -> list[_FrameGeometry | None]:
    """Per-frame geometry; one warning lists the unmeasurable frames and why."""
    found = [_frame_geometry(frame, spacing) for frame in labels]
    _warn_unmeasurable(what, [g if isinstance(g, str) else None for g in found], stacklevel=3)
    return [None if isinstance(g, str) else g for g in found]
