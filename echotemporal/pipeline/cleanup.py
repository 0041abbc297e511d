"""Per-frame morphological clean-up of decoded label maps (largest component, hole filling)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echotemporal.anatomy import THRESHOLDS, crack_length_mm, width_mm
from echotemporal.labels import MODELLED_LABELS, Label
from echotemporal.parallel import map_frame_chunks
from echotemporal.pipeline.measurement import heart_box, measure_threads

__all__ = [
    "INPLANE",
    "MAX_MODELLED",
    "JUNCTION_RADIUS_MM",
    "largest_component",
    "hole_mask",
    "cleanup_labels",
    "close_lv_gaps",
    "trim_la_along_myo",
    "cleanup_decoded",
]

#: In-plane 4-connectivity, no connection across frames: morphology stays per frame on a (T,H,W) stack.
INPLANE = np.zeros((3, 3, 3), dtype=bool)
INPLANE[1] = ndimage.generate_binary_structure(2, 1)


def _stray_components(mask: np.ndarray) -> tuple[tuple[slice, slice], dict[int, np.ndarray]]:
    """Per frame of a (T, H, W) bool mask, the pixels outside its largest 4-connected component.

    Returns the box the masks refer to and {frame: (h, w) bool stray pixels of the box} for the frames
    with more than one component (usually none: the common case costs one labelling).
    """
    rows, cols = heart_box(mask, margin=0)
    crop = mask[:, rows, cols]
    lab, n = ndimage.label(crop, structure=INPLANE)
    if n == 0:
        return (rows, cols), {}
    # No connection across frames and raster-order numbering: each frame's labels are one run that
    # follows the previous frame's, so the running maximum tells how many components each frame has.
    last = np.maximum.accumulate(lab.reshape(len(crop), -1).max(axis=1))
    first = np.concatenate([[0], last[:-1]])
    stray: dict[int, np.ndarray] = {}
    for t in np.flatnonzero(last - first > 1):
        sizes = np.bincount(lab[t].ravel(), minlength=last[t] + 1)[first[t] + 1 : last[t] + 1]
        # The largest component; of equal sizes, the last numbered one.
        biggest = first[t] + len(sizes) - int(np.argmax(sizes[::-1]))
        stray[int(t)] = (lab[t] != biggest) & crop[t]
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


def _frame_holes(mask: np.ndarray) -> dict[int, np.ndarray]:
    """{frame: (H, W) bool holes} for the frames of a (T, H, W) bool mask that have any (usually none).

    A hole is a non-mask 4-connected region that does not touch the frame border.
    """
    lab, n = ndimage.label(~mask, structure=INPLANE)
    open_ = np.zeros(n + 1, dtype=bool)
    open_[0] = True  # label 0: the mask itself
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        open_[edge.ravel()] = True
    if open_.all():
        return {}  # every region reaches the border: no hole (the usual case)
    # Raster-order numbering, no connection across frames: frame t holds the labels up to last[t].
    last = np.maximum.accumulate(lab.reshape(len(lab), -1).max(axis=1))
    frames = np.unique(np.searchsorted(last, np.flatnonzero(~open_), side="left"))
    return {int(t): ~open_[lab[t]] for t in frames}


def hole_mask(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> per-frame holes: non-mask 4-connected regions not touching the frame border."""
    out = np.zeros_like(mask)
    for t, holes in _frame_holes(mask).items():
        out[t] = holes
    return out


def cleanup_labels(out: np.ndarray, present: tuple[int, ...]) -> np.ndarray:
    """Largest component per label and hole filling, per frame, in place on ``out`` (T, h, w).

    Every label (LV, MYO, and LA when the input has it) keeps its largest component per frame;
    background enclosed by the remaining structures (holes, cut-off pieces) takes the nearest label.
    """
    structures = [Label.LV, Label.MYO] + [v for v in present if v not in (Label.BACKGROUND, Label.LV, Label.MYO)]
    for value in structures:
        (rows, cols), stray = _stray_components(out == value)
        for t, pixels in stray.items():
            out[t, rows, cols][pixels] = Label.BACKGROUND
    filled = out != Label.BACKGROUND
    for t, holes in sorted(_frame_holes(filled).items()):
        # Holes are enclosed: their nearest labelled pixels lie within a pixel or two of their box.
        rows, cols = heart_box(holes[None], margin=2)
        hole, frame = holes[rows, cols], out[t][rows, cols]
        _, (ri, ci) = ndimage.distance_transform_edt(frame == Label.BACKGROUND, return_indices=True)
        frame[hole] = frame[ri[hole], ci[hole]]
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
    pad = (int(np.ceil(radius_mm / spacing_mm[0])) + 2, int(np.ceil(radius_mm / spacing_mm[1])) + 2)
    eight = np.ones((3, 3), dtype=bool)
    for t in range(len(out)):
        frame = out[t]
        lv = frame == Label.LV
        if not (frame == Label.LA).any() or not lv.any():
            continue
        heart = frame != Label.BACKGROUND
        if crack_length_mm(lv, ~heart, *spacing_mm) <= MAX_LV_CONTACT * width_mm(lv, spacing_mm[1]):
            continue  # LV sealed (up to hinge pixels, as in expert masks): nothing to close
        padded = np.pad(heart, ((pad[0], pad[0]), (pad[1], pad[1])))
        outside = ndimage.distance_transform_edt(~padded, sampling=spacing_mm)
        closed = ndimage.distance_transform_edt(outside <= radius_mm, sampling=spacing_mm) > radius_mm
        core = (slice(pad[0], pad[0] + frame.shape[0]), slice(pad[1], pad[1] + frame.shape[1]))
        pockets = closed[core] & ~heart
        if not pockets.any():
            continue
        regions, n = ndimage.label(pockets, structure=eight)
        near_lv = np.unique(regions[ndimage.binary_dilation(lv, structure=eight) & pockets])
        near_la = np.unique(regions[ndimage.binary_dilation(frame == Label.LA, structure=eight) & pockets])
        between = np.intersect1d(near_lv, near_la)
        fill = np.isin(regions, between[between > 0])
        # Each pocket pixel joins its nearest structure, the LA standing in for the LV: the LV (its
        # area, length, base) stays as decoded, and the MYO-LA frontier does not grow along the walls.
        _, (ri, ci) = ndimage.distance_transform_edt(~heart, sampling=spacing_mm, return_indices=True)
        nearest = frame[ri[fill], ci[fill]]
        frame[fill] = np.where(nearest == Label.MYO, Label.MYO, Label.LA)
    return out


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
        myo, la, lv = frame == Label.MYO, frame == Label.LA, frame == Label.LV
        if not (myo.any() and la.any() and lv.any()):
            continue
        if crack_length_mm(myo, la, *spacing_mm) <= LA_TRIM_FRONTIER * width_mm(myo, spacing_mm[1]):
            continue
        to_myo = ndimage.distance_transform_edt(~myo, sampling=spacing_mm)
        to_lv = ndimage.distance_transform_edt(~lv, sampling=spacing_mm)
        frame[la & (to_myo <= depth_mm) & (to_myo < to_lv)] = Label.BACKGROUND
    return out


#: Labels above this are not modelled (LA): they are carried over from the input.
MAX_MODELLED = max(int(v) for v in MODELLED_LABELS)


def cleanup_decoded(out: np.ndarray, spacing_mm: tuple[float, float], present: tuple[int, ...]) -> np.ndarray:
    """Every clean-up of decoded frames, in place on ``out`` (T, h, w) cropped to the heart.

    Fits the carried-over LA to the decoded LV/MYO (:func:`close_lv_gaps`, :func:`trim_la_along_myo`),
    then keeps one component per label and fills holes (:func:`cleanup_labels`). Frames are
    independent: chunks of them are cleaned up by :func:`~echotemporal.pipeline.measurement.measure_threads`
    threads.
    """

    def chunk(part: np.ndarray) -> np.ndarray:
        close_lv_gaps(part, spacing_mm)
        trim_la_along_myo(part, spacing_mm)
        return cleanup_labels(part, present)

    return map_frame_chunks(chunk, out, measure_threads())
