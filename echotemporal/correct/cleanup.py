"""Per-frame morphological clean-up of decoded label maps (largest component, hole filling), the
opening of a wall drawn shut under the LV (:func:`opened_base`) and a wall drawn round an LV whose
own is missing (:func:`walled_lv`).

Distance transforms and closings run on boxes around the pixels they decide, grown by the distance
that can reach them: the results are those of whole-frame computations, nearest-pixel ties included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from echotemporal.measure.anatomy import THRESHOLDS, crack_length_mm, width_mm
from echotemporal.core.boxes import Box, grow, mask_box, within
from echotemporal.core.components import components
from echotemporal.core.labels import BACKGROUND, LA, LV, MODELLED_LABELS, MYO, Label
from echotemporal.core.parallel import map_frame_chunks
from echotemporal.measure.sequence import heart_box, measure_threads

__all__ = [
    "JUNCTION_RADIUS_MM",
    "MAX_MODELLED",
    "cleanup_decoded",
    "cleanup_labels",
    "close_lv_gaps",
    "closing",
    "drawn_wall_thickness_mm",
    "hole_mask",
    "largest_component",
    "mended_atrium",
    "opened_base",
    "trim_la_along_myo",
    "walled_lv",
]

#: In-plane 8-connectivity of a single (H, W) frame.
_EIGHT = np.ones((3, 3), dtype=bool)
#: In-plane 4-connectivity.
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _reach_px(distance_mm: float, spacing_mm: tuple[float, float]) -> tuple[int, int]:
    """(rows, cols): pixel offsets along each axis that cover ``distance_mm``, plus one pixel.

    Every pixel within ``distance_mm`` of a pixel (and a float rounding or a pixel beyond) lies within
    these offsets of it along both axes; any pixel outside them is farther than ``distance_mm``.
    """
    return int(np.ceil(distance_mm / spacing_mm[0])) + 1, int(np.ceil(distance_mm / spacing_mm[1])) + 1


def _distance_near(targets: np.ndarray, box: Box, margin: tuple[int, int], sampling: tuple[float, float]) -> np.ndarray:
    """Distance (mm) from each pixel of ``box`` to the nearest True pixel of the (h, w) bool ``targets``.

    Computed on the box grown by ``margin`` (rows, cols) pixels: exact up to the distance that the
    margin covers (:func:`_reach_px`), where the nearest target is the same pixel as over the whole
    frame; beyond it, some value larger than that distance (inf when the grown box holds no target).
    Returns the box's (h', w') float64.
    """
    area = grow(box, margin, targets.shape)
    core = within(box, area)
    crop = targets[area]
    if not crop.any():
        return np.full(crop[core].shape, np.inf)
    return ndimage.distance_transform_edt(~crop, sampling=sampling)[core]


def _nearest_labels(
    frame: np.ndarray, rows: np.ndarray, cols: np.ndarray, margin: tuple[int, int], sampling: tuple[float, float] | None
) -> np.ndarray:
    """Value of the nearest non-background pixel of the (h, w) uint8 ``frame`` for each pixel (rows, cols).

    Returns (n,) uint8. The lookup runs on the pixels' box grown by ``margin`` (rows, cols) pixels:
    the caller guarantees that each pixel's nearest labelled pixel lies nearer than any pixel outside
    that box. On ties it then picks the same pixel as a lookup over the whole frame (the ties of the
    Euclidean feature transform only involve the tied pixels).
    """
    top, left = max(rows.min() - margin[0], 0), max(cols.min() - margin[1], 0)
    crop = frame[top : rows.max() + 1 + margin[0], left : cols.max() + 1 + margin[1]]
    ri, ci = ndimage.distance_transform_edt(
        crop == BACKGROUND, sampling=sampling, return_distances=False, return_indices=True
    )
    rows, cols = rows - top, cols - left
    return crop[ri[rows, cols], ci[rows, cols]]


def _stray_components(mask: np.ndarray) -> tuple[Box, dict[int, np.ndarray]]:
    """Per frame of a (T, H, W) bool mask, the pixels outside its largest 4-connected component.

    Returns the box the masks refer to and {frame: (h, w) bool stray pixels of the box} for the frames
    with more than one component (usually none).
    """
    rows, cols = heart_box(mask, margin=0)
    crop = mask[:, rows, cols]
    stray: dict[int, np.ndarray] = {}
    for t, frame in enumerate(crop):
        lab, n = components(frame, connectivity=4)
        if n <= 1:
            continue
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        sizes[0] = 0
        largest = np.flatnonzero(sizes == sizes.max())
        # Of equal sizes, the component whose first pixel comes last in raster order.
        biggest = largest[0] if len(largest) == 1 else max(largest, key=lambda k: np.argmax((lab == k).ravel()))
        stray[t] = (lab != biggest) & frame
    return (rows, cols), stray


def largest_component(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> the largest in-plane 4-connected component of each frame."""
    box, stray = _stray_components(mask)
    if not stray:
        return mask  # at most one component per frame: the usual case, no relabelling needed
    out = mask.copy()
    for t, pixels in stray.items():
        out[t, box[0], box[1]] &= ~pixels
    return out


def _holes(mask: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Holes of each frame of a (T, H, W) bool mask: non-mask 4-connected regions not touching the border.

    One (frame, (n,) rows, (n,) cols of the hole's pixels) per hole, by frame and then by the hole's
    first pixel in raster order; usually none.
    """
    holes = []
    for t, frame in enumerate(mask):
        lab, n = components(~frame, connectivity=4)
        open_ = np.zeros(n + 1, dtype=bool)
        open_[0] = True  # label 0: the mask itself
        for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
            open_[edge] = True
        if open_.all():
            continue  # every region reaches the border: no hole (the usual case)
        rows, cols = np.nonzero(~open_[lab])
        ids = lab[rows, cols]
        _, first = np.unique(ids, return_index=True)
        for region in ids[np.sort(first)]:
            part = ids == region
            holes.append((t, rows[part], cols[part]))
    return holes


def hole_mask(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> per-frame holes: non-mask 4-connected regions not touching the frame border."""
    out = np.zeros_like(mask)
    for t, rows, cols in _holes(mask):
        out[t, rows, cols] = True
    return out


def cleanup_labels(out: np.ndarray, present: tuple[int, ...]) -> np.ndarray:
    """Largest component per label and hole filling, per frame, in place on ``out`` (T, h, w).

    Every label (LV, MYO, and LA when the input has it) keeps its largest component per frame;
    background enclosed by the remaining structures (holes, cut-off pieces) takes the nearest label.
    """
    structures = [LV, MYO] + [v for v in present if v not in (BACKGROUND, LV, MYO)]
    for value in structures:
        (rows, cols), stray = _stray_components(out == value)
        for t, pixels in stray.items():
            out[t, rows, cols][pixels] = Label.BACKGROUND
    # A hole is a whole 4-connected background region: the straight walk from a hole pixel out of
    # its box meets a labelled pixel at most one pixel past the box, nearer than any pixel two or
    # more pixels past it. Every hole looks its labels up before any is filled.
    holes = _holes(out != BACKGROUND)
    values = [_nearest_labels(out[t], rows, cols, (2, 2), None) for t, rows, cols in holes]
    for (t, rows, cols), value in zip(holes, values):
        out[t, rows, cols] = value
    return out


#: Background pockets up to this far (mm) inside the heart's silhouette are closed by
#: :func:`close_lv_gaps` (a decoded LV base that moved away from the carried-over LA leaves a strip
#: of a few mm at the mitral plane).
JUNCTION_RADIUS_MM = 5.0
#: LV-background contact (fraction of the LV width) left alone: expert masks reach 0.05 at the
#: mitral hinges (``scripts/calibrate_anatomy.py``).
MAX_LV_CONTACT = 0.1


def close_lv_gaps(out: np.ndarray, spacing_mm: tuple[float, float], radius_mm: float = JUNCTION_RADIUS_MM) -> np.ndarray:
    """Close background pockets that the LV touches inside the heart, in place on ``out`` (T, h, w).

    The LV is enclosed by the MYO and, at the base, the LA: it never borders background in a valid
    frame (``anatomy``'s ``lv_background_frontier``). When the decoded LV and MYO meet an LA carried
    over from the input, the two can miss each other by a few mm. Pockets of background inside the
    morphological closing (disk of ``radius_mm``, Euclidean in mm) of LV∪MYO∪LA that touch both the
    LV and the LA join their nearest structure, LV pixels counting as LA (the LV, hence its
    attributes, stays as decoded). Frames with no LA, or whose LV touches background over at most
    ``MAX_LV_CONTACT`` of its width (hinge pixels), are left alone.

    Args:
        out: (T, h, w) uint8 labels, cropped to the heart with some margin.
        spacing_mm: (row_mm, col_mm).
        radius_mm: closing radius in mm.

    Returns:
        ``out``, modified in place.
    """
    for t in range(len(out)):
        frame = out[t]
        lv = frame == LV
        if not (frame == LA).any() or not lv.any():
            continue
        pockets = _junction_pockets(frame, lv, frame != BACKGROUND, spacing_mm, radius_mm)
        if pockets is None:
            continue
        # Each pocket pixel joins its nearest structure, the LA standing in for the LV: the LV (its
        # area, length, base) stays as decoded, and the MYO-LA frontier does not grow along the walls.
        # Pocket pixels lie within ``radius_mm`` of the heart (the closing is inside the dilation).
        rows, cols = pockets
        nearest = _nearest_labels(frame, rows, cols, _reach_px(radius_mm, spacing_mm), spacing_mm)
        frame[rows, cols] = np.where(nearest == MYO, MYO, LA)
    return out


def closing(heart: np.ndarray, window: Box, spacing_mm: tuple[float, float], radius_mm: float) -> np.ndarray:
    """Morphological closing of the (h, w) bool ``heart`` by a disk of ``radius_mm``, on ``window`` only.

    The closing at a pixel depends on the dilation within the radius, which depends on the heart
    within twice the radius: each distance transform runs on the window grown by what it needs. Past
    the frame's edge the heart is background: a heart touching the edge closes as if the frame went
    on empty. Returns the window's (h', w') bool.
    """
    reach = _reach_px(radius_mm, spacing_mm)
    # Frame coordinates (possibly negative: past the edge) of the window grown by twice the reach.
    lo = [part.start - 2 * r for part, r in zip(window, reach)]
    hi = [part.stop + 2 * r for part, r in zip(window, reach)]
    area = np.zeros((hi[0] - lo[0], hi[1] - lo[1]), dtype=bool)
    src = tuple(slice(max(a, 0), min(b, size)) for a, b, size in zip(lo, hi, heart.shape))
    area[tuple(slice(part.start - a, part.stop - a) for part, a in zip(src, lo))] = heart[src]
    # The dilation is exact on the window grown by one reach (its inner part).
    inner = tuple(slice(r, n - r) for r, n in zip(reach, area.shape))
    dilated = ndimage.distance_transform_edt(~area, sampling=spacing_mm)[inner] <= radius_mm
    core = tuple(slice(r, n - r) for r, n in zip(reach, dilated.shape))
    if dilated.all():
        return np.ones(dilated[core].shape, dtype=bool)
    return ndimage.distance_transform_edt(dilated, sampling=spacing_mm)[core] > radius_mm


def _junction_pockets(
    frame: np.ndarray, lv: np.ndarray, heart: np.ndarray, spacing_mm: tuple[float, float], radius_mm: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """((n,) rows, (n,) cols) of the pocket pixels that :func:`close_lv_gaps` fills, or None when none.

    The 8-connected pieces of background inside the heart's closing that touch both the LV and the
    LA. Only pieces touching the LV count, so the closing runs on a window around the background
    pixels next to the LV, widened on every side that such a piece reaches inside the frame until
    none does: the pieces are then whole. None without looking where the LV touches the background
    over at most ``MAX_LV_CONTACT`` of its width: sealed up to hinge pixels, as in expert masks.
    """
    if crack_length_mm(lv, ~heart, *spacing_mm) <= MAX_LV_CONTACT * width_mm(lv, spacing_mm[1]):
        return None
    shape = frame.shape
    lv_box = grow(heart_box(lv, margin=0), (1, 1), shape)
    near_lv = np.zeros(shape, dtype=bool)
    near_lv[lv_box] = ndimage.binary_dilation(lv[lv_box], structure=_EIGHT) & ~heart[lv_box]
    reach = _reach_px(radius_mm, spacing_mm)
    step = (2 * reach[0], 2 * reach[1])
    window = grow(heart_box(near_lv, margin=0), step, shape)
    while True:
        pockets = closing(heart, window, spacing_mm, radius_mm) & ~heart[window]
        regions, _ = ndimage.label(pockets, structure=_EIGHT)
        touching = np.unique(regions[near_lv[window] & pockets])
        touching = touching[touching > 0]
        if not touching.size:
            return None
        # (top, bottom, left, right): whether a piece touching the LV reaches that side of the window.
        reached = [part.size and np.isin(part, touching).any() for part in (regions[0], regions[-1], regions[:, 0], regions[:, -1])]
        grown = (
            slice(max(window[0].start - step[0] * reached[0], 0), min(window[0].stop + step[0] * reached[1], shape[0])),
            slice(max(window[1].start - step[1] * reached[2], 0), min(window[1].stop + step[1] * reached[3], shape[1])),
        )
        if grown == window:
            break
        window = grown
    la_box = grow(window, (1, 1), shape)
    near_la = ndimage.binary_dilation(frame[la_box] == LA, structure=_EIGHT)[within(window, la_box)]
    between = np.intersect1d(touching, regions[near_la & pockets])
    if not between.size:
        return None
    rows, cols = np.nonzero(np.isin(regions, between))
    return rows + window[0].start, cols + window[1].start


#: MYO-LA frontier (fraction of the MYO width) above which :func:`trim_la_along_myo` acts: 90 % of
#: the ``anatomy`` limit.
LA_TRIM_FRONTIER = 0.9 * THRESHOLDS["myo_la_frontier"][1]
#: Depth (mm) of LA that :func:`trim_la_along_myo` may carve away along the MYO.
LA_TRIM_MM = 3.0


def trim_la_along_myo(out: np.ndarray, spacing_mm: tuple[float, float], depth_mm: float = LA_TRIM_MM) -> np.ndarray:
    """Carve a carried-over LA away from the decoded MYO walls, in place on ``out`` (T, h, w).

    The LA meets the LV at the mitral plane and the MYO only at the hinges. An LA carried over from
    the input can run along a decoded basal MYO that sits a little lower or wider than the input's
    (``anatomy``'s ``myo_la_frontier``). Where the frontier exceeds ``LA_TRIM_FRONTIER`` of the MYO
    width, LA pixels within ``depth_mm`` of the MYO and nearer to the MYO than to the LV become
    background. LV and MYO, hence every attribute, are untouched.

    Args:
        out: (T, h, w) uint8 labels, cropped to the heart with some margin.
        spacing_mm: (row_mm, col_mm).
        depth_mm: largest distance from the MYO (mm) at which LA is removed.

    Returns:
        ``out``, modified in place.
    """
    for t in range(len(out)):
        frame = out[t]
        myo, la, lv = frame == MYO, frame == LA, frame == LV
        if not (myo.any() and la.any() and lv.any()):
            continue
        if crack_length_mm(myo, la, *spacing_mm) <= LA_TRIM_FRONTIER * width_mm(myo, spacing_mm[1]):
            continue
        # Only distances up to ``depth_mm`` from the LA's pixels matter.
        box, reach = heart_box(la, margin=0), _reach_px(depth_mm, spacing_mm)
        to_myo = _distance_near(myo, box, reach, spacing_mm)
        to_lv = _distance_near(lv, box, reach, spacing_mm)
        frame[box][la[box] & (to_myo <= depth_mm) & (to_myo < to_lv)] = Label.BACKGROUND
    return out


#: The myocardium drawn across the mitral opening (:func:`opened_base`) is taken from under the LV's
#: basal share this long (a fraction of the LV length along its long axis), and this deep (mm) at
#: most below the LV: a wall is 6-15 mm thick; what lies deeper is not the floor.
BASE_BAND = 0.15
FLOOR_DEPTH_MM = 15.0


def _lv_axes(
    rows: np.ndarray, cols: np.ndarray, spacing_mm: tuple[float, float]
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The LV's own frame, from its (n,) pixel ``rows`` and ``cols`` (at least 3): a function of pixel
    rows and columns giving (along, across) in mm from the LV's centroid, ``along`` its long axis (the
    principal axis of its pixels in mm) pointing away from the apex at row 0."""
    row_mm, col_mm = spacing_mm
    y, x = rows * row_mm, cols * col_mm
    centre = np.array([y.mean(), x.mean()])
    axis = np.linalg.eigh(np.cov(np.stack([y - centre[0], x - centre[1]])))[1][:, -1]
    axis = axis if axis[0] >= 0 else -axis  # (dy, dx) toward the base
    across = np.array([-axis[1], axis[0]])

    def along(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dy, dx = r * row_mm - centre[0], c * col_mm - centre[1]
        return dy * axis[0] + dx * axis[1], dy * across[0] + dx * across[1]

    return along


def _atrium_over_hull(out: np.ndarray, mask: np.ndarray) -> None:
    """In place on the (H, W) label map ``out``: the background inside the convex hull of the (H, W)
    bool ``mask`` (not empty) becomes LA: an atrium joined to what ``mask`` holds through the
    background between them, never over the heart."""
    from skimage.morphology import convex_hull_image

    box = mask_box(mask, margin=1)
    crop = out[box]
    crop[convex_hull_image(mask[box]) & (crop == BACKGROUND)] = LA


def opened_base(frame: np.ndarray, spacing_mm: tuple[float, float], la_present: bool) -> np.ndarray:
    """The (H, W) label map ``frame`` with the myocardium that closes under its LV (a ring drawn round
    the cavity, no opening to the atrium) relabelled: LA where the sequence labels the atrium, else
    background. A copy; ``frame`` itself when it has no MYO or an LV of fewer than 3 pixels.

    The floor is the myocardium lying below the LV, along the LV's long axis (principal axis of its
    pixels in mm, pointing away from the apex at row 0), within the lateral range of the LV's basal
    :data:`BASE_BAND` and at most :data:`FLOOR_DEPTH_MM` below the LV's lowest pixel on its own line
    (lines a pixel wide); the side walls lie beside the LV and stay. With the atrium labelled, the
    floor and the largest LA piece are joined through the background between them (their convex
    hull), so that the atrium meets the LV, and carved away from the walls' ends beside the opening
    (:func:`trim_la_along_myo`).
    """
    lv, myo = frame == LV, frame == MYO
    rows, cols = np.nonzero(lv)
    if len(rows) < 3 or not myo.any():  # no LV long axis to speak of
        return frame
    along = _lv_axes(rows, cols, spacing_mm)
    u, v = along(rows, cols)
    basal = u >= u.max() - BASE_BAND * (u.max() - u.min())
    row_mm, col_mm = spacing_mm
    lo, hi = v[basal].min(), v[basal].max()
    step = min(row_mm, col_mm)
    lines = int(np.floor((hi - lo) / step)) + 1
    bottom = np.full(lines, -np.inf)
    inside = (v >= lo) & (v <= hi)
    np.maximum.at(bottom, np.floor((v[inside] - lo) / step).astype(int), u[inside])
    mr, mc = np.nonzero(myo)
    mu, mv = along(mr, mc)
    band = (mv >= lo) & (mv <= hi)
    line = np.floor((mv[band] - lo) / step).astype(int)
    floor = np.zeros(len(mr), dtype=bool)
    floor[band] = (mu[band] > bottom[line]) & (mu[band] <= bottom[line] + FLOOR_DEPTH_MM)
    out = frame.copy()
    if not floor.any():
        return out
    out[mr[floor], mc[floor]] = LA if la_present else BACKGROUND
    if la_present:
        atrium = largest_component((frame == LA)[None])[0] if (frame == LA).any() else np.zeros_like(lv)
        joined = np.zeros_like(lv)
        joined[mr[floor], mc[floor]] = True
        _atrium_over_hull(out, joined | atrium)
        trim_la_along_myo(out[None], spacing_mm)  # the walls' ends beside the opening: LA at their tips only
    return out


#: Wall thickness (mm) of expert CAMUS masks, as :func:`drawn_wall_thickness_mm` measures it
#: (myocardial area over the LV–MYO frontier): median 12.4, 5th and 95th percentiles 8.1 and 19.1
#: over the 1980 masks at aspect 1.3. The median is the wall drawn where a sequence draws none, the
#: percentiles bound a sequence's own (a wall drawn in fragments measures thin).
WALL_SHELL_MM = 12.0
WALL_THICKNESS_RANGE_MM = (8.0, 19.0)


def drawn_wall_thickness_mm(labels: np.ndarray, spacing_mm: tuple[float, float]) -> float:
    """How thick the (T, H, W) sequence ``labels`` draws its wall (mm): the median over frames with an
    LV and myocardium that meet of the myocardial area over the length of their frontier
    (:func:`~echotemporal.measure.anatomy.crack_length_mm`), within :data:`WALL_THICKNESS_RANGE_MM`;
    :data:`WALL_SHELL_MM` where no frame has both."""
    found = []
    for frame in labels:
        lv, myo = frame == LV, frame == MYO
        if lv.any() and myo.any():
            frontier = crack_length_mm(lv, myo, *spacing_mm)
            if frontier > 0:
                found.append(np.count_nonzero(myo) * spacing_mm[0] * spacing_mm[1] / frontier)
    return float(np.clip(np.median(found), *WALL_THICKNESS_RANGE_MM)) if found else WALL_SHELL_MM


#: How far up the LV's long axis (a fraction of its length from its basal end) the mitral opening
#: reaches at most, for :func:`walled_lv`: a tilted mitral plane lifts one hinge. On the 1980 expert
#: masks (aspects 1.2-1.4) the opening reaches 0.05-0.07 at the median, 0.45 at most.
OPENING_DEPTH = 0.5
#: With the LA drawn, LV pixels facing the background within this distance (mm) of the LA are the
#: hinges' (where wall, atrium and background meet), not a gap (:func:`walled_lv`).
HINGE_MM = 3.0


def walled_lv(frame: np.ndarray, spacing_mm: tuple[float, float], la_present: bool, thickness_mm: float = WALL_SHELL_MM) -> np.ndarray:
    """The (H, W) label map ``frame`` with a wall drawn where its LV has none: every background or LA
    pixel within ``thickness_mm`` of a gap in the LV's wall becomes myocardium, the myocardium
    then closing under the LV is opened (:func:`opened_base`). The drawn myocardium stays where it
    is. A copy; ``frame`` itself when its LV (of at least 3 pixels) has no gap.

    The LV's exposed pixels (4-adjacent to background or LA) form pieces (8-connected); the piece
    reaching furthest toward the base along the LV's long axis is the mitral opening, the others are
    gaps, and so is the part of the opening more than :data:`OPENING_DEPTH` of the LV's length above
    its basal end (a wall missing down to the base joins the opening).

    A segmenter that cannot see the wall (echo drop-out, a weak network) still draws the cavity: the
    shape model decodes a plausible wall round a cavity with a wall of typical thickness, not round
    wall fragments (its encoding of the fragments is as broken as they are).
    """
    lv = frame == LV
    rows, cols = np.nonzero(lv)
    if len(rows) < 3:
        return frame
    open_ = (frame == BACKGROUND) | (frame == LA)
    exposed = lv & ~ndimage.binary_erosion(lv | ~open_, _FOUR, border_value=1)
    if not exposed.any():
        return frame
    along = _lv_axes(rows, cols, spacing_mm)
    u = along(rows, cols)[0]
    pieces, _ = components(exposed)
    er, ec = np.nonzero(exposed)
    eu = along(er, ec)[0]
    basal = np.argmax(eu)
    gap = (pieces[er, ec] != pieces[er[basal], ec[basal]]) | (eu < u.max() - OPENING_DEPTH * (u.max() - u.min()))
    if la_present and (frame == LA).any():
        # With the atrium drawn, the opening is where the LV meets it: the LV meets the background
        # through a gap, except at the hinges, where wall, atrium and background meet.
        facing = ndimage.binary_dilation(frame == BACKGROUND, _FOUR)[er, ec]
        hinge = _reach_px(HINGE_MM, spacing_mm)
        box = grow(mask_box(exposed), hinge, lv.shape)
        near_la = np.zeros_like(lv)
        near_la[box] = _distance_near(frame == LA, box, hinge, spacing_mm) <= HINGE_MM
        gap |= facing & ~near_la[er, ec]
    if not gap.any():
        return frame
    gaps = np.zeros_like(lv)
    gaps[er[gap], ec[gap]] = True
    reach = _reach_px(thickness_mm, spacing_mm)
    box = grow(mask_box(gaps), reach, lv.shape)
    out = frame.copy()
    crop = out[box]
    crop[(_distance_near(gaps, box, reach, spacing_mm) <= thickness_mm) & open_[box]] = MYO
    return opened_base(out, spacing_mm, la_present)


def mended_atrium(frame: np.ndarray, spacing_mm: tuple[float, float], join: bool = True, reach_lv: bool = False) -> np.ndarray:
    """The (H, W) label map ``frame`` with its LA put together, LV and MYO untouched: LA pieces joined
    through the background between them (their convex hull; with ``join`` False, only the piece
    nearest the LV kept, the others made background), background holes in the LA filled, and the
    background pockets between the LV and the LA that :func:`close_lv_gaps` finds (where the LV meets
    the background beyond its hinges) made LA; with
    ``reach_lv``, the LA (once joined or chosen) is also joined (their convex hull, over background)
    to the background pixels beside the LV's basal :data:`BASE_BAND` (an atrium drawn apart from the
    base it opens into). A copy; ``frame`` itself when it has no LA or no LV.

    A segmenter draws the atrium, deep in the sector where the image fades, in pieces, with holes,
    or short of the LV's base: the frame fails on the atrium alone (``la_one_component``,
    ``la_no_holes``, ``lv_background_frontier``), which the shape model, blind to the LA, cannot
    correct. No attribute, hence no consistency flag, depends on the LA.
    """
    la, lv = frame == LA, frame == LV
    if not la.any() or not lv.any():
        return frame
    out = frame.copy()
    pieces, n = components(la)
    if n > 1 and join:
        _atrium_over_hull(out, la)
    elif n > 1:
        to_lv = ndimage.distance_transform_edt(~lv, sampling=spacing_mm)
        nearest = min(range(1, n + 1), key=lambda k: float(to_lv[pieces == k].min()))
        out[la & (pieces != nearest)] = BACKGROUND
    if reach_lv:
        la = out == LA
        beside = ndimage.binary_dilation(lv, _FOUR) & (out == BACKGROUND)
        rows, cols = np.nonzero(lv)
        if len(rows) >= 3:  # only beside its base (BASE_BAND along its long axis): a side is the wall's
            along = _lv_axes(rows, cols, spacing_mm)
            u = along(rows, cols)[0]
            br, bc = np.nonzero(beside)
            beside[br, bc] = along(br, bc)[0] >= u.max() - BASE_BAND * (u.max() - u.min())
        _atrium_over_hull(out, la | beside)
    box = mask_box(out == LA, margin=1)
    crop = out[box]
    crop[ndimage.binary_fill_holes(crop == LA) & (crop == BACKGROUND)] = LA
    pockets = _junction_pockets(out, lv, out != BACKGROUND, spacing_mm, JUNCTION_RADIUS_MM)
    if pockets is not None:
        out[pockets] = LA
    return out


#: Labels above this are not modelled (LA): they are carried over from the input.
MAX_MODELLED = max(int(v) for v in MODELLED_LABELS)


def cleanup_decoded(out: np.ndarray, spacing_mm: tuple[float, float], present: tuple[int, ...]) -> np.ndarray:
    """Every clean-up of decoded frames, in place on ``out`` (T, h, w) cropped to the heart.

    Fits the carried-over LA to the decoded LV/MYO (:func:`close_lv_gaps`, :func:`trim_la_along_myo`),
    then keeps one component per label and fills holes (:func:`cleanup_labels`). Frames are
    independent: chunks of them are cleaned up by :func:`~echotemporal.measure.sequence.measure_threads`
    threads.
    """

    def chunk(part: np.ndarray) -> np.ndarray:
        close_lv_gaps(part, spacing_mm)
        trim_la_along_myo(part, spacing_mm)
        return cleanup_labels(part, present)

    return map_frame_chunks(chunk, out, measure_threads())
