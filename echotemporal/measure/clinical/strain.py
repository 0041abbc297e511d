"""Segmentation-derived longitudinal strain from the LV contour (DESIGN.md §5).

Strain here is the relative change of the length of the endocardial (LV) contour from one mitral hinge
to the other through the apex, cut on the line through the hinges (the mitral plane excluded); it is
not speckle-tracking strain.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import depth_first_order

from echotemporal.measure.clinical.geometry import _FrameGeometry, _geometries
from echotemporal.core.labels import as_label_sequence, check_frame_index, check_spacing, frames_text

__all__ = ["STRAIN_POINTS", "strain_curve_percent"]

#: Points the hinge-to-hinge endocardial contour is resampled to before its length is taken. A fixed
#: count keeps the chordal length error scale-invariant (it cancels in the strain ratio) and spaces the
#: points several pixels apart, which averages out the staircase of the mask boundary.
STRAIN_POINTS = 64


def _ordered_loop(n_points: int, segments: np.ndarray, start: int) -> np.ndarray:
    """Vertex indices of the closed polygon through ``start``, in walking order (start first).

    Args:
        n_points: vertices of the polygon(s); each is on exactly two of ``segments``.
        segments: (S, 2) int vertex-index pairs.
        start: first vertex of the walk.

    Returns:
        (K,) int32 vertex indices. The walk leaves ``start`` towards the smallest vertex that follows it
        in a segment, or if none, the smallest that precedes it (the direction an undirected
        depth-first search of the segment graph takes).
    """
    # The two neighbours of every vertex (in either order), from the segments sorted by their vertices.
    ends = np.argsort(segments.ravel())
    neighbours = segments[:, ::-1].ravel()[ends].reshape(n_points, 2)
    after = segments[segments[:, 0] == start, 1]
    first = after.min() if after.size else segments[segments[:, 1] == start, 0].min()
    last = neighbours[start].sum() - first  # the other neighbour of start, where the walk ends
    # The loop cut between `last` and `start` (self-loops instead) is a path, so a depth-first search
    # from `start` walks it in order.
    neighbours[start] = (first, start)
    neighbours[last][neighbours[last] == start] = last
    graph = csr_array(
        (np.ones(2 * n_points), neighbours.ravel(), np.arange(0, 2 * n_points + 1, 2)), shape=(n_points, n_points)
    )
    return depth_first_order(graph, start, directed=True, return_predecessors=False)


def _endocardial_arc_mm(geom: _FrameGeometry) -> np.ndarray | None:
    """(K, 2) LV boundary from one hinge through the apex to the other, ends on the mitral line, mm.

    The arc is cut where the boundary crosses the line through the two hinge points (the mitral
    plane), at the crossings nearest each hinge, interpolated between vertices. Cutting on that line
    rather than at the boundary vertex nearest the hinge pixel keeps the end points continuous as the
    shape deforms (a nearest-vertex rule jumps by a pixel when ties break differently).
    """
    pts = geom.points_mm
    hinge_l, hinge_r = geom.hinge_left_mm, geom.hinge_right_mm
    chord = hinge_r - hinge_l
    chord_mm = float(np.hypot(*chord))
    if chord_mm == 0:
        return None
    # The hinges are on the outer LV boundary, so the loop through the vertex nearest one of them is the
    # LV outline (holes and islands are other loops).
    start = int(np.argmin(np.sum((pts - hinge_l) ** 2, axis=1)))
    contour = pts[_ordered_loop(len(pts), geom.segments, start)]
    k = len(contour)

    def side(p: np.ndarray) -> np.ndarray:  # signed distance to the mitral line
        return (chord[0] * (p[..., 1] - hinge_l[1]) - chord[1] * (p[..., 0] - hinge_l[0])) / chord_mm

    d = side(contour)
    if side(geom.apex_mm) < 0:
        d = -d  # positive on the apex side
    d_next = np.concatenate([d[1:], d[:1]])  # np.roll(d, -1), without its overhead
    edges = np.flatnonzero((d > 0) != (d_next > 0))  # boundary edges (i, i+1) crossing the line
    if edges.size < 2:
        return None
    frac = d[edges] / (d[edges] - d_next[edges])
    crossings = contour[edges] + frac[:, None] * (contour[(edges + 1) % k] - contour[edges])
    a = int(np.argmin(np.sum((crossings - hinge_l) ** 2, axis=1)))
    b = int(np.argmin(np.sum((crossings - hinge_r) ** 2, axis=1)))
    if a == b:
        return None
    i_apex = int(np.argmin(np.sum((contour - geom.apex_mm) ** 2, axis=1)))

    def forward(u: int, v: int) -> np.ndarray:  # vertices after crossing u up to crossing v
        return (edges[u] + 1 + np.arange((edges[v] - edges[u]) % k)) % k

    inner = forward(a, b)
    if not np.any(inner == i_apex):
        a, b = b, a
        inner = forward(a, b)
    return np.concatenate([crossings[a : a + 1], contour[inner], crossings[b : b + 1]])


def _contour_length_mm(geom: _FrameGeometry, n_points: int) -> float:
    """Length (mm) of the hinge → apex → hinge contour resampled to ``n_points`` equidistant points."""
    arc = _endocardial_arc_mm(geom)
    if arc is None:
        return float("nan")
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(arc, axis=0).T))])
    if cum[-1] <= 0:
        return float("nan")
    s = np.linspace(0.0, cum[-1], n_points)
    resampled = np.column_stack([np.interp(s, cum, arc[:, 0]), np.interp(s, cum, arc[:, 1])])
    return float(np.sum(np.hypot(*np.diff(resampled, axis=0).T)))


def _strain_from_lengths(lengths: np.ndarray, ed_frame: int) -> np.ndarray:
    """(T,) strain (%) from (T,) contour lengths (mm), relative to the ED frame's."""
    reference = lengths[ed_frame]
    if not np.isfinite(reference) or reference <= 0:
        warnings.warn(
            f"strain: no measurable endocardial contour on the ED frame, {frames_text([ed_frame])}; strain set to NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        return np.full(len(lengths), np.nan)
    return 100.0 * (lengths - reference) / reference


def _contour_lengths(geometries: list[_FrameGeometry | None], n_points: int) -> np.ndarray:
    return np.array([np.nan if g is None else _contour_length_mm(g, n_points) for g in geometries])


def strain_curve_percent(
    labels: np.ndarray, spacing_mm: Sequence[float], ed_frame: int = 0, n_points: int = STRAIN_POINTS
) -> np.ndarray:
    """Segmentation-derived longitudinal strain per frame.

    The endocardial contour runs along the LV boundary from one mitral hinge through the apex to the
    other (the mitral plane excluded), in mm, resampled to ``n_points`` equally spaced points; its
    length ``L_t`` gives ``strain_t = 100·(L_t − L_ED)/L_ED``. This is derived from the masks, not
    from speckle tracking.

    Args:
        labels: (T, H, W) uint8 CAMUS label sequence, apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        ed_frame: 0-based reference (end-diastolic) frame.
        n_points: points of the resampled contour.

    Returns:
        (T,) strain in %, 0 at ``ed_frame``, negative when the contour shortens; NaN where unmeasurable.

    Warns:
        RuntimeWarning: unmeasurable frames; all NaN if the ED frame itself is unmeasurable.
    """
    seq = as_label_sequence(labels)
    spacing = np.asarray(check_spacing(spacing_mm))
    ed = check_frame_index(ed_frame, len(seq), "ed_frame")
    lengths = _contour_lengths(_geometries(seq, spacing, "strain_curve_percent"), int(n_points))
    return _strain_from_lengths(lengths, ed)
