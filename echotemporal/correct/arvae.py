"""The AR-VAE correction of one sequence (DESIGN.md §4.3-4.4): judge which frames to trust, re-estimate
the others from them, then encode, solve the latent trajectory, decode, verify and tighten, and
repair what is left (:mod:`echotemporal.correct.repair`).

Method: Painchaud et al., "Echocardiography Segmentation With Enforced Temporal Consistency",
IEEE TMI 2022, with an exact minimal-change projection of each attribute-regularized latent dim
instead of gradient descent, Whittaker smoothing of the free dims and residual decoding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import binary_dilation, distance_transform_edt

from echotemporal.core.config import SmoothingConfig
from echotemporal.core.boxes import heart_mask, mask_box
from echotemporal.core.components import components, reaching
from echotemporal.core.parallel import kernel_threads, map_threads
from echotemporal.core.labels import LA, LV, MYO
from echotemporal.correct.cleanup import cleanup_labels, closing, drawn_wall_thickness_mm, opened_base, walled_lv
from echotemporal.correct.decoding import SequenceDecoder, encode_sequence, latent_tolerances
from echotemporal.correct.denoise import turning_frames
from echotemporal.correct.reestimate import WALL_SUPPORT, lv_areas, reestimate_frames, wall_support, with_drawn_lv, wrong_way_runs
from echotemporal.correct.repair import (
    bad_runs,
    extrapolate_turning_ends,
    full_decoding_fallback,
    interpolate_residue,
    interpolate_runs,
)
from echotemporal.correct.trust import (
    MIN_RECONSTRUCTION_DICE,
    FrameTrust,
    assess_frames,
    lv_reconstructs,
    off_myocardial_level,
    reconstruction_dice,
    temporal_outliers,
)
from echotemporal.measure.sequence import ShapeMeasures, add_validity, heart_box, measure_shape, restore_frames

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterator

    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["ArvaeOutcome", "smooth_arvae", "inpaint_latents"]


@dataclass
class ArvaeOutcome:
    labels: np.ndarray
    shape: ShapeMeasures
    rounds: int
    tolerances: np.ndarray  # (K,) latent tolerances of the last round, thresholds order
    kept: np.ndarray  # (T,) bool, input frames kept unchanged
    trust: FrameTrust | None = None  # per-frame confidence of the input (None: not judged)
    reestimated: np.ndarray | None = None  # (T,) bool, frames re-estimated from the trusted ones
    notes: list[str] = field(default_factory=list)  # what a reader should know about how it was done


@dataclass(frozen=True)
class _Sequence:
    """What the stages of one sequence's correction share and never change.

    Attributes:
        spacing_mm: native (row_mm, col_mm) pixel size; model: the shape model;
        thresholds: the consistency thresholds; alignment: the sequence's alignment to the model
            grid (``encode_sequence``).
    """

    spacing_mm: tuple[float, float]
    model: Any
    thresholds: AttributeThresholds
    alignment: Any


def inpaint_latents(z: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """(T, D) latents with the ``missing`` (T,) frames replaced by linear inter/extrapolation in time."""
    out = z.copy()
    known = np.flatnonzero(~missing)
    for t in np.flatnonzero(missing):
        before, after = known[known < t], known[known > t]
        if before.size and after.size:
            a, b = before[-1], after[0]
        elif before.size:  # end frame: extrapolate from the last two known frames
            a, b = (before[-2], before[-1]) if before.size >= 2 else (before[-1], before[-1])
        else:
            a, b = (after[0], after[1]) if after.size >= 2 else (after[0], after[0])
        w = 0.0 if a == b else (t - a) / (b - a)
        out[t] = (1.0 - w) * z[a] + w * z[b]
    return out


#: Untrusted runs of at most this many frames between trusted ones are interpolated (signed
#: distances of the two trusted neighbours); longer runs, and runs at an end, are re-estimated by
#: the shape model.
MAX_BLENDED_RUN = 3
#: Anatomical criteria of the LV on its own: a drawn LV passing them (and on the myocardial level)
#: may be kept in a rebuilt ED/ES frame (``reestimate._beyond_bridge``). Presence first: the other
#: tests pass an absent LV vacuously, and a blank frame's "LV" is as small as an LV gets.
LV_OWN_CRITERIA = ("lv_present", "lv_one_component", "lv_no_holes", "lv_myo_no_holes", "lv_base_open")
#: Latent dims that carry the cardiac phase through a run of untrusted frames.
PHASE_ATTRIBUTES = ("lv_area_mm2", "lv_length_mm")


def _cleaned_for_encoding(labels: np.ndarray, before: ShapeMeasures) -> np.ndarray:
    """The sequence with its invalid frames cleaned up (largest component per label, holes filled).

    The sequence's alignment is fitted to the clean-ups (a stray blob would otherwise stretch it),
    and frames are judged against the reconstructions of their clean-ups' encodings (a frame in pieces
    reconstructs badly from them). Frames that keep their drawing are corrected from their own
    encodings (:func:`_encoded_as_drawn`); decoding works from the input itself.
    """
    invalid = ~before.valid
    if not invalid.any():
        return labels
    seen = labels.copy()
    sub = seen[invalid]
    rows, cols = heart_box(sub, margin=2)
    sub[:, rows, cols] = cleanup_labels(np.ascontiguousarray(sub[:, rows, cols]), before.present)
    seen[invalid] = sub
    return seen


#: An invalid frame is judged as cleaned by its clean-up (largest component per label, holes filled)
#: when the pieces the clean-up changes next to the kept heart hold at most this fraction of its
#: LV∪MYO pixels: specks, pinholes and stray blobs away from the heart (a segmenter's second "heart"
#: in the background, of any size), not a wall or cavity piece cut off by a gap.
MINOR_CLEANUP = 0.03

#: Changed pieces farther than this (mm) from the kept heart are stray blobs; nearer, they are the
#: heart's own: a wall piece cut off by a gap, or a leak that an under-segmented LV drew away from
#: (2-5 mm). The U-Net of the segmenter set leaves its stray "hearts" 4-30 mm away (tuning set).
STRAY_GAP_MM = 5.0


def _minor_cleanups(
    labels: np.ndarray, seen: np.ndarray, before: ShapeMeasures, ctx: _Sequence
) -> tuple[np.ndarray, ShapeMeasures]:
    """The input with its invalid frames replaced by their clean-up where that loses nothing of the heart.

    Returns:
        (labels (T, H, W), their measures), the input itself when no frame qualifies.
    """
    n = len(labels)
    changed = (seen != labels).reshape(n, -1).sum(axis=1)
    heart = ((labels == LV) | (labels == MYO)).reshape(n, -1).sum(axis=1)
    budget = MINOR_CLEANUP * np.maximum(heart, 1)
    lost = changed.copy()  # never more than what changed: only frames over the budget need a closer look
    for t in np.flatnonzero(~before.valid & (changed > budget)):
        lost[t] = _adjacent_change(labels[t], seen[t], ctx.spacing_mm)
    minor = ~before.valid & (changed > 0) & (lost <= budget)
    if not minor.any():
        return labels, before
    out = labels.copy()
    out[minor] = seen[minor]
    return out, measure_shape(out, ctx.spacing_mm, ctx.thresholds, reference=(labels, before))


def _adjacent_change(frame: np.ndarray, cleaned: np.ndarray, spacing_mm: tuple[float, float]) -> int:
    """Pixels a clean-up changed in the pieces that lie next to what it kept of the LV and MYO.

    Args:
        frame, cleaned: (H, W) labels before and after the clean-up.
        spacing_mm: (row, column) pixel size.

    Returns:
        the pixel count of the changed 8-connected pieces within ``STRAY_GAP_MM`` of the kept LV∪MYO:
        a wall or cavity piece cut off by a gap, or a leak the LV drew away from, counts; a stray blob
        away from the heart does not.
    """
    margin = int(np.ceil(STRAY_GAP_MM / min(spacing_mm))) + 1
    box = mask_box(frame != cleaned, margin=margin)
    if box is None:
        return 0
    diff = frame[box] != cleaned[box]
    kept = heart_mask(cleaned[box]) & ~diff  # kept pixels beyond the margin are beyond the gap
    if not kept.any():
        return 0 if heart_mask(cleaned).any() else int(diff.sum())
    near = distance_transform_edt(~kept, sampling=spacing_mm) <= STRAY_GAP_MM
    return int(reaching(diff, near).sum())


#: Pixel size (mm) of the grid on which the gaps between LV pieces are found (finer native grids are
#: subsampled: the hulls cost in proportion to the pixels, and the joined frame only carries the phase).
JOIN_GRID_MM = 0.6


def _joined_lv(frame: np.ndarray, spacing_mm: tuple[float, float] = (JOIN_GRID_MM, JOIN_GRID_MM)) -> np.ndarray:
    """(H, W) ``frame`` with its LV pieces joined: what lies between them becomes LV (the LA spared).

    Between the pieces means inside the convex hull of them all but outside each piece's own hull:
    the band that cut the cavity, not the concavities of the drawn border (a hull of the whole
    cavity would add those too, a few % of its area). The hulls are taken on a grid of about
    ``JOIN_GRID_MM`` (every k-th row and column of the native one, ``spacing_mm`` (row, col) mm).
    """
    from skimage.morphology import convex_hull_image

    lv = frame == LV
    rows, cols = mask_box(lv, margin=1)
    out = frame.copy()
    crop = out[rows, cols]
    pieces, n = components(lv[rows, cols])
    step = tuple(max(1, int(round(JOIN_GRID_MM / float(mm)))) for mm in spacing_mm)
    coarse = pieces[:: step[0], :: step[1]]
    between = convex_hull_image(coarse > 0)
    for k in np.unique(coarse[coarse > 0]):
        between &= ~convex_hull_image(coarse == k)
    between = np.repeat(np.repeat(between, step[0], axis=0), step[1], axis=1)[: crop.shape[0], : crop.shape[1]]
    crop[between & (crop != LA) & ~lv[rows, cols]] = LV
    return out


def _joined_lv_phase(
    labels: np.ndarray, candidates: np.ndarray, before: ShapeMeasures, trust: FrameTrust, ctx: _Sequence,
    anchors: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray] | None:
    """Phase carriers among frames whose LV is in pieces (``reestimate_frames``' ``phase``).

    A segmenter that splits the cavity (a band of wall or background across it) still draws the
    cavity's extent, which carries the cardiac phase through a long run: without it the run is bridged
    from the trusted frames alone, and a run across end-systole loses its volume minimum. The pieces
    are joined (:func:`_joined_lv`) and encoded. A run of such frames carries the phase only where
    every joined LV of it reconstructs as well as the sequence's good frames (``trust.lv_reconstructs``:
    pieces that are a leak or a stray blob make an implausible hull), its LV area and length stay
    on the trusted frames' temporal curve (``trust.temporal_outliers``, ED/ES ``anchors`` as turning
    points: a cavity also drawn too small, or cut at the base, leaves it) and its myocardial area on
    the level its LV area predicts (``trust.off_myocardial_level``: an endocardium also drawn into
    the wall or away from it, which ramps in smoothly, leaves that).

    Args:
        labels: (T, H, W) uint8 sequence; candidates: (T,) bool frames to re-estimate without an
            intact LV.

    Returns:
        ((T,) bool carriers, (T, D) latents of the joined frames (rows of other frames: zeros)), or
        None when no frame qualifies.
    """
    from echotemporal.measure.anatomy import CRITERIA
    from echotemporal.model.alignment import to_grid

    if not before.checked:
        return None
    split = candidates & ~before.criteria[:, CRITERIA.index("lv_one_component")]
    split &= (labels == LV).reshape(len(labels), -1).any(axis=1)
    rows = np.flatnonzero(split)
    if not rows.size:
        return None
    joined = np.stack([_joined_lv(labels[t], ctx.spacing_mm) for t in rows])
    grid = to_grid(joined, ctx.alignment)
    latents = np.asarray(ctx.model.encode(grid), dtype=np.float64)
    lv_dice = reconstruction_dice(grid, np.asarray(ctx.model.decode(latents.astype(np.float32))))[:, 0]
    passed = np.zeros(len(labels), dtype=bool)
    passed[rows[lv_reconstructs(lv_dice, trust)]] = True
    thresholds = ctx.thresholds
    phase = [k for k, name in enumerate(thresholds.names) if name in PHASE_ATTRIBUTES]
    if passed.any() and phase:
        attributes = before.attributes.copy()
        attributes[rows] = measure_shape(joined, ctx.spacing_mm, thresholds, validity=False).attributes
        passed &= ~temporal_outliers(attributes[:, phase], _subset(thresholds, phase), trust.trusted | passed, anchors)
        passed &= ~off_myocardial_level(attributes, thresholds, trust.trusted | passed)
    return _whole_runs(rows, passed, latents)  # a leak joined into some frames of a run taints them all


#: The criteria that a frame whose only failure is its wall breaks (``_wall_repaired_lv``; the width
#: ratio is the wall's thickness on the row through the heart's centroid; an LV open to the
#: background through its side wall is where a gap in the wall lets it meet the background): a frame
#: that also breaks another (its LV touching the background beside the LA, cut, leaking) or none
#: (distrusted on its reconstruction alone: a label swap at the base, an LV drawn into the wall) is
#: not vouched for.
WALL_CRITERIA = ("myo_no_holes", "myo_one_component", "myo_erosion_ratio", "lv_myo_width_ratio", "lv_side_closed")
#: The criteria on the atrium alone and its border with the wall: an LA drawn in pieces, with holes or
#: along the basal wall says nothing about the LV drawn above it.
ATRIUM_CRITERIA = ("la_present", "la_no_holes", "la_one_component", "myo_la_frontier")
#: Allowance of the LV Dice of a wall-repaired copy below ``trust.lv_reconstructs``' floor: the
#: model's wall around a drawn LV is not the frame's own, which costs the LV's reconstruction a little.
WALL_REPAIR_SLACK = 0.015


def _end_runs(frames: np.ndarray) -> np.ndarray:
    """(T,) bool: the runs of ``frames`` ((T,) bool) that reach the first or the last frame."""
    out = np.zeros(len(frames), dtype=bool)
    for t, step in ((0, 1), (len(frames) - 1, -1)):
        while 0 <= t < len(frames) and frames[t]:
            out[t] = True
            t += step
    return out


def _wall_repaired_lv(
    labels: np.ndarray, z0: np.ndarray, candidates: np.ndarray, before: ShapeMeasures, trust: FrameTrust, ctx: _Sequence,
    anchors: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray] | None:
    """Frames whose drawn LV is kept though their wall is broken, and the phase they carry.

    A broken myocardium (in pieces, eroded) spoils the reconstruction of the whole frame, the LV's
    included, so a drawn LV that is right can fail ``trust.lv_intact``. In a run that reaches a
    sequence end this matters most: nothing on the far side anchors the fit, which extrapolates the
    other end's trend (a U-Net tuning sequence, seed 13, had its end-diastolic frames rebuilt 0.09 LV
    Dice under their drawing). Among ``candidates``, frames whose only failed criteria are the wall's
    (``WALL_CRITERIA``) and that are on their myocardial level get their drawn LV put into their own
    reconstruction on the model grid (the decoded LV around it becomes wall, the decoded wall under it
    LV); that copy is re-encoded. A whole run of such frames whose copies' LVs reconstruct as well as
    the sequence's good frames (``trust.lv_reconstructs``, less ``WALL_REPAIR_SLACK``) and whose LV
    area and length stay on the trusted frames' temporal curve (ED/ES ``anchors`` as turning points)
    is returned.

    Args:
        labels: (T, H, W) uint8 sequence; z0: (T, D) its latents; candidates: (T,) bool frames to
            re-estimate without an intact LV.

    Returns:
        ((T,) bool frames, (T, D) latents of their repaired copies (rows of other frames: zeros)),
        or None when no frame qualifies: ``reestimate_frames``' ``phase`` format.
    """
    from echotemporal.model.alignment import to_grid

    if not before.checked:
        return None
    rows = np.flatnonzero(candidates & trust.on_level & _failing_only(before, WALL_CRITERIA))
    if not rows.size:
        return None
    drawn = to_grid(labels[rows], ctx.alignment) == LV
    decoded = np.asarray(ctx.model.decode(np.asarray(z0[rows], dtype=np.float32))).argmax(axis=1).astype(np.uint8)
    composed = with_drawn_lv(decoded, drawn)
    latents = np.asarray(ctx.model.encode(composed), dtype=np.float64)
    lv_dice = reconstruction_dice(composed, np.asarray(ctx.model.decode(latents.astype(np.float32))))[:, 0]
    passed = np.zeros(len(labels), dtype=bool)
    passed[rows[lv_reconstructs(lv_dice + WALL_REPAIR_SLACK, trust)]] = True
    phase = [k for k, name in enumerate(ctx.thresholds.names) if name in PHASE_ATTRIBUTES]
    if passed.any() and phase:
        passed &= ~temporal_outliers(before.attributes[:, phase], _subset(ctx.thresholds, phase), trust.trusted | passed, anchors)
    return _whole_runs(rows, passed, latents)


def _subset(thresholds: AttributeThresholds, keep: list[int]) -> AttributeThresholds:
    """The thresholds of the attributes ``keep`` (indices into ``thresholds.names``)."""
    return type(thresholds)(tuple(thresholds.names[k] for k in keep), thresholds.lo[keep], thresholds.hi[keep], thresholds.tau[keep])


def _whole_runs(rows: np.ndarray, passed: np.ndarray, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(carriers, latents)`` from the runs of ``rows`` (m,) every frame of which ``passed`` ((T,) bool),
    ``latents`` (m, D) spread to (T, D) (zeros elsewhere); None when no run passes. A failure evolves
    smoothly along its run: where some frames of a run are implausible, the others hold the same
    failure, milder."""
    carriers = np.zeros(len(passed), dtype=bool)
    for run in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
        carriers[run] = passed[run].all()
    if not carriers.any():
        return None
    full = np.zeros((len(passed), latents.shape[1]))
    full[rows] = latents
    return carriers, full


def _either_phase(*found: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The phase carriers of several repairs (of disjoint frames) as one ``(carriers, latents)``, or None."""
    found = tuple(f for f in found if f is not None)
    if not found:
        return None
    carriers, latents = found[0][0].copy(), found[0][1].copy()
    for more, rows in found[1:]:
        latents[more] = rows[more]
        carriers |= more
    return carriers, latents


def judge_frames(
    labels: np.ndarray, z0: np.ndarray, before: ShapeMeasures, ctx: _Sequence, anchors: tuple[int, ...] = (),
    min_dice: float = MIN_RECONSTRUCTION_DICE,
) -> FrameTrust:
    """Per-frame trust of the input (:mod:`echotemporal.correct.trust`), from its encoding ``z0`` (T, D)."""
    from echotemporal.measure.anatomy import CRITERIA
    from echotemporal.model.alignment import to_grid

    probs = np.asarray(ctx.model.decode(np.asarray(z0, dtype=np.float32)))
    dice = reconstruction_dice(to_grid(labels, ctx.alignment), probs)
    lv_one_piece = base_shut = None
    if before.checked:
        # A frame without a structure the sequence draws elsewhere (a segmenter that found nothing) is
        # not "reconstructed as drawn" by an empty reconstruction: scored 0, it is neither trusted nor
        # an intact LV carrying the phase, and it does not lift the sequence's reference Dice.
        for k, name in enumerate(("lv_present", "myo_present")):
            dice[~before.criteria[:, CRITERIA.index(name)], k] = 0.0
        lv_one_piece = before.criteria[:, CRITERIA.index("lv_one_component")]
        base_shut = ~before.criteria[:, CRITERIA.index("lv_base_open")]
    return assess_frames(before.valid, before.attributes, dice, ctx.thresholds, lv_one_piece, anchors, min_dice, base_shut)


#: Attributes of a re-estimated frame that must stay within the trusted frames' range.
POSE_ATTRIBUTES = ("lv_orientation_deg", "epi_center_x_mm", "epi_center_y_mm")
#: Margin of that range, in units of each attribute's consistency tolerance tau·(hi − lo).
POSE_MARGIN_TAU = 3.0


#: A sequence with fewer trusted frames than this fraction of its frames (or fewer than two) is a
#: near-total failure: it is also corrected the other ways of :func:`smooth_arvae` (``least_harm``).
NEAR_TOTAL_TRUSTED = 0.25

#: The reconstruction Dice floor of a near-total failure's clean-ups (``_trusted_cleanups``): a heart
#: the model draws less well than most (its wall, say) still has frames that reconstruct as well as
#: the sequence's best; the relative floor (``trust.RELATIVE_DROP``) then does the judging.
FALLBACK_DICE = 0.7


def _trusted_cleanups(
    labels: np.ndarray, seen: np.ndarray, before: ShapeMeasures, z0: np.ndarray, ctx: _Sequence, anchors: tuple[int, ...]
) -> tuple[np.ndarray, ShapeMeasures, FrameTrust] | None:
    """A near-total failure's support: the clean-ups of its frames, where they can be trusted.

    A segmenter that drew a second "heart" against the first fails every frame, yet the largest
    component per label often keeps the real one. Those clean-ups (``seen``, (T, H, W), encoded into
    ``z0``) that are then trusted, with the reconstruction floor lowered to ``FALLBACK_DICE``, replace
    their frames of ``labels``.

    Returns:
        (labels, their measures, their trust), or None when fewer than two clean-ups can be trusted.
    """
    if not (seen != labels).any():
        return None
    seen_measures = measure_shape(seen, ctx.spacing_mm, ctx.thresholds, reference=(labels, before))
    usable = judge_frames(seen, z0, seen_measures, ctx, anchors, FALLBACK_DICE).trusted
    usable &= ~_cut_from_inside(labels, seen)
    if usable.sum() < 2:
        return None
    out = labels.copy()
    out[usable] = seen[usable]
    measured = measure_shape(out, ctx.spacing_mm, ctx.thresholds, reference=(seen, seen_measures))
    return out, measured, judge_frames(out, z0, measured, ctx, anchors, FALLBACK_DICE)


#: Gaps across the myocardium up to about this wide (mm) are closed when a near-total failure's frames
#: are mended (:func:`_mended`): segmenters cut the wall in places 2-6 mm wide.
MEND_GAP_MM = 6.0


def _cut_from_inside(labels: np.ndarray, cleaned: np.ndarray) -> np.ndarray:
    """(T,) bool: frames whose clean-up (``cleaned``, (T, H, W)) dropped LV that lies within the hull of
    the heart it kept (more than a tenth of the kept LV): half of a split cavity, not a second heart
    or a leak beside or below it."""
    from skimage.morphology import convex_hull_image

    cut = np.zeros(len(labels), dtype=bool)
    for t in np.flatnonzero((labels != cleaned).reshape(len(labels), -1).any(axis=1)):
        dropped = (labels[t] == LV) & (cleaned[t] != LV)
        kept = heart_mask(cleaned[t])
        box = mask_box(kept, margin=1)
        if box is None or not dropped[box].any():
            continue
        inside = convex_hull_image(kept[box]) & dropped[box]
        cut[t] = inside.sum() > 0.1 * max(int((cleaned[t][box] == LV).sum()), 1)
    return cut


def _mended(frame: np.ndarray, spacing_mm: tuple[float, float], present: tuple[int, ...]) -> tuple[np.ndarray, bool, bool]:
    """(H, W) ``frame`` with its broken structures put together rather than dropped: the LV pieces
    joined (:func:`_joined_lv`), gaps across the wall up to ``MEND_GAP_MM`` closed into myocardium
    (``cleanup.closing`` of LV∪MYO by a disc of ``MEND_GAP_MM`` / 2, in mm), a wall that then
    closes under the LV opened (``cleanup.opened_base``), then the largest component per label and
    holes filled (stray blobs away from the heart go).

    Returns:
        (the mended frame (H, W), whether its clean-up dropped a piece of the wall (:func:`_drops_wall`):
        a wall in pieces too far apart to join, whether its base was opened).
    """
    from echotemporal.measure.anatomy import CRITERIA, check_validity

    out = frame.copy()
    if components(out == LV)[1] > 1:
        out = _joined_lv(out, spacing_mm)
    radius = 0.5 * MEND_GAP_MM
    heart = heart_mask(out)
    box = mask_box(heart, margin=int(np.ceil(radius / min(spacing_mm))) + 1)  # the closing adds pixels within the radius
    if box is None:
        return out, False, False
    crop = out[box]
    crop[closing(heart, box, spacing_mm, radius) & (crop == 0)] = MYO
    shut = not bool(check_validity(out, spacing_mm, present=present)[0, CRITERIA.index("lv_base_open")])
    if shut:
        out = opened_base(out, spacing_mm, LA in present)
    mended = cleanup_labels(out[None].copy(), present)[0]
    return mended, _drops_wall(out, mended), shut


#: A mended frame may drop myocardium along its LV up to this fraction of the wall it keeps (a
#: fragment of a few pixels); more is a piece of the wall itself (``_drops_wall``).
MEND_MAX_DROPPED_WALL = 0.05


def _drops_wall(frame: np.ndarray, cleaned: np.ndarray) -> bool:
    """Whether the clean-up ``cleaned`` of the (H, W) ``frame`` dropped myocardium that borders the LV,
    more than ``MEND_MAX_DROPPED_WALL`` of the myocardium it kept: a wall in pieces farther apart
    than ``MEND_GAP_MM`` (a U-Net's septum drawn as a thin strip apart from the rest of the wall),
    whose smaller pieces are the heart's, not stray blobs. Dropped, the septum leaves the LV open
    and the wall's area off the level of the cycle."""
    dropped = (frame == MYO) & (cleaned != MYO)
    if not dropped.any():
        return False
    wall = reaching(dropped, binary_dilation(frame == LV, np.ones((3, 3), dtype=bool))).sum()
    return bool(wall > MEND_MAX_DROPPED_WALL * max(int((cleaned == MYO).sum()), 1))


def least_harm(
    tried: list[ArvaeOutcome], labels: np.ndarray, anchors: tuple[int, ...] | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> ArvaeOutcome:
    """Of corrections ``tried`` of the (T, H, W) ``labels``, the one whose frames left invalid or
    inconsistent (a fraction of T) plus what it lost of the input (1 − :func:`_agreement`) is least:
    a reading that repairs a tenth more of the frames may move the input a tenth further.

    With the (ED, ES) ``anchors`` given (and ``spacing_mm``), readings that turn the LV volume curve
    over (:func:`_turned_over`) are left out unless all do: the correction would be judged worse
    than the input for it and the input returned, while another reading held the contraction (a wall
    lost in every frame, corrected in place round broken walls, comes back with ES as large as ED).
    """
    turned = _turned_over(tried, labels, anchors, spacing_mm)
    if not all(turned):
        tried = [o for o, t in zip(tried, turned) if not t]
    return min(tried, key=lambda o: _residue_frames(o.shape) / len(labels) + 1.0 - _agreement(o.labels, labels))


def _turned_over(
    tried: list[ArvaeOutcome], labels: np.ndarray, anchors: tuple[int, ...] | None, spacing_mm: tuple[float, float] | None
) -> list[bool]:
    """Per outcome of ``tried``: whether it puts the LV volume at ES (``anchors`` (ED, ES)) at or above
    the one at ED where the (T, H, W) ``labels`` contract (``clinical.indices.turns_over``); all False
    without ``anchors`` or ``spacing_mm``."""
    if anchors is None or spacing_mm is None:
        return [False] * len(tried)
    import warnings

    from echotemporal.measure.clinical.indices import turns_over
    from echotemporal.measure.clinical.volume import lv_volumes_ml

    def volumes(frames: np.ndarray) -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a frame without a measurable LV: NaN, turns nothing over
            return tuple(float(v) for v in lv_volumes_ml(frames[list(anchors)], spacing_mm))

    drawn = volumes(labels)
    return [turns_over(drawn, volumes(o.labels)) for o in tried]


def _agreement(out: np.ndarray, labels: np.ndarray) -> float:
    """Mean over LV and MYO, and over the frames of (T, H, W) ``labels`` that draw the structure, of its
    Dice between ``out`` and ``labels`` (a frame the segmenter left without it says nothing); 1 when
    no frame draws either."""
    scores = []
    for value in (LV, MYO):
        a, b = out == value, labels == value
        drawn = b.reshape(len(b), -1).sum(axis=1)
        if not drawn.any():
            continue
        inter = (a & b).reshape(len(a), -1).sum(axis=1)
        total = a.reshape(len(a), -1).sum(axis=1) + drawn
        scores.append(float(np.mean(2 * inter[drawn > 0] / total[drawn > 0])))
    return float(np.mean(scores)) if scores else 1.0


def _pose_range(trusted_attributes: np.ndarray, thresholds: AttributeThresholds) -> Any:
    """``(attributes (n, 7)[, own (n, K)]) -> (n,) bool``: orientation and epicardial centre within the
    range of the trusted frames (``(m, K)`` in ``thresholds.names`` order), widened by
    ``POSE_MARGIN_TAU``. ``own``: the drawn frames' attributes (``thresholds.names`` order), for frames
    that keep their drawn LV: each frame's range then also reaches its own drawn pose (the phase moves
    the base and the centre; a run across ES is outside the range of trusted frames near ED)."""
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES

    names = tuple(thresholds.names)
    limits = []
    for name in POSE_ATTRIBUTES:
        if name in names:
            k = names.index(name)
            values = trusted_attributes[:, k][np.isfinite(trusted_attributes[:, k])]
            if values.size:
                margin = POSE_MARGIN_TAU * float(thresholds.tau[k]) * abs(float(thresholds.hi[k]) - float(thresholds.lo[k]))
                limits.append((ATTRIBUTE_NAMES.index(name), k, values.min() - margin, values.max() + margin, margin))

    def inside(attributes: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        ok = np.ones(len(attributes), dtype=bool)
        for j, k, low, high, margin in limits:
            lo, hi = np.full(len(attributes), low), np.full(len(attributes), high)
            if own is not None:
                drawn = own[:, k]
                lo = np.where(np.isfinite(drawn), np.minimum(lo, drawn - margin), lo)
                hi = np.where(np.isfinite(drawn), np.maximum(hi, drawn + margin), hi)
            ok &= (attributes[:, j] >= lo) & (attributes[:, j] <= hi)
        return ok

    return inside


def _unturned(
    labels: np.ndarray, out: np.ndarray, rebuilt: np.ndarray, support: np.ndarray, turning: tuple[int, ...],
    spacing_mm: tuple[float, float], believable: np.ndarray | None = None,
) -> np.ndarray:
    """Undo the rebuilt runs that turn the wrong way across ED or ES (``reestimate.wrong_way_runs``), in place.

    Such a run takes its input back where the input's own LV curve does not turn the wrong way (the
    in-place correction then repairs it as drawn), else the signed-distance blend of its bracketing
    frames (a bridge that cannot turn). A run that bridged the drawn ES flat (``reestimate._flattened``)
    is judged only where most of its frames are ``believable`` ((T,) bool: their drawn LV can be
    believed (:func:`_believable_lv`) and they lie on the myocardial level; None: none is), and where
    the walls of those frames confirm the drawn turn (median ``reestimate.wall_support``; the drawn
    turning frame itself may be the run's worst: a U-Net's ES drawn in pieces). A segmenter's
    coherent failure also dips the drawn curve: an endocardium drawn into the wall, the wall
    following, leaves the level; a wall dropped out with the LV drawn small beside the gap (ES given
    or not) leaves the walls unconfirming. In a run given back, the frames that cannot be believed
    are bridged from those that can. Returns (T,) bool, the frames given their input back.
    """
    area, rebuilt_area = lv_areas(labels), lv_areas(out)
    mostly = np.zeros(len(labels), dtype=bool)
    walls = np.zeros(len(labels))  # per run: the median wall support of its believable frames
    if believable is not None:
        for lo, hi in bad_runs(rebuilt):
            mostly[lo : hi + 1] = believable[lo : hi + 1].mean() > 0.5
            if mostly[lo] and any(lo <= t <= hi for t in turning):  # else no turn of this run is believed
                frames = lo + np.flatnonzero(believable[lo : hi + 1])
                walls[lo : hi + 1] = np.median([wall_support(labels[u], out[u]) for u in frames])
    believed = tuple(t for t in turning if mostly[t] and walls[t] >= WALL_SUPPORT)
    wrong = wrong_way_runs(area, rebuilt_area, rebuilt, support, turning, believed)
    if not wrong.any():
        return wrong
    blend = wrong & wrong_way_runs(area, area, rebuilt, support, turning, believed)
    out[wrong] = labels[wrong]
    interpolate_runs(out, blend, support, spacing_mm, len(out))
    kept = wrong & ~blend
    if believable is not None:
        # In a run mostly believable as drawn, the frames that cannot be believed (a U-Net's ES drawn in
        # pieces) are bridged from those that can.
        kept &= ~interpolate_runs(out, kept & mostly & ~believable, support | (kept & believable), spacing_mm, len(out))
    return kept


def _believable_lv(before: ShapeMeasures, thresholds: AttributeThresholds) -> np.ndarray:
    """(T,) bool: the frames whose drawn LV can be believed, from their measures ``before`` (attributes
    named as in ``thresholds``): every check passed, or only the wall's (``WALL_CRITERIA``) and the
    atrium's (``ATRIUM_CRITERIA``) failed while the LV's area and length are not flagged. A U-Net's wall
    drawn in pieces around ES leaves its LV, which still follows the contraction, believable (its
    myocardial area and centre jump with the pieces); a valid frame flagged on any attribute does not
    (an endocardium drawn into the wall, the wall following, moves the myocardial area only)."""
    if not before.checked:
        return before.clean
    phase = [k for k, name in enumerate(thresholds.names) if name in PHASE_ATTRIBUTES]
    return before.clean | (_failing_only(before, WALL_CRITERIA + ATRIUM_CRITERIA) & ~before.flags[:, phase].any(axis=1))


def _failing_only(before: ShapeMeasures, names: tuple[str, ...]) -> np.ndarray:
    """(T,) bool: the invalid frames whose failed criteria are all among ``names``; ``before`` must
    hold the criteria (``checked``)."""
    from echotemporal.measure.anatomy import CRITERIA

    others = [k for k, name in enumerate(CRITERIA) if name not in names]
    return ~before.valid & before.criteria[:, others].all(axis=1)


def _robust_start(
    labels: np.ndarray, before: ShapeMeasures, z0: np.ndarray, ctx: _Sequence, anchors: tuple[int, ...],
    trust: FrameTrust, detected: tuple[int, ...] = (), given: tuple[int, int] | None = None, join_pieces: bool = True,
) -> tuple[np.ndarray, ShapeMeasures, np.ndarray, FrameTrust, np.ndarray]:
    """Replace the untrusted frames before the consistency correction (DESIGN.md §4.4).

    Short runs between trusted frames are interpolated from them; the rest are re-estimated as the
    model's shapes at latents fitted to the trusted frames. The encodings of replaced frames are
    redone with the sequence's alignment. ``anchors``: ED/ES (given, else the end frames);
    ``detected``: further turning points of the drawn LV curve (no ED/ES given), whose drawn LV a
    re-estimation keeps only where the frame's walls confirm it; ``given``: the (ED, ES) frames when
    given, else None; ``trust``: the frames' trust (:func:`judge_frames`); ``join_pieces``: an LV in
    pieces may carry the phase once joined (:func:`_joined_lv_phase`).

    Returns:
        (labels, their measures, their latents (T, D), the input's trust, (T,) bool re-estimated).
    """
    from echotemporal.measure.anatomy import CRITERIA, check_validity

    spacing_mm, model, thresholds, alignment = ctx.spacing_mm, ctx.model, ctx.thresholds, ctx.alignment
    untrusted = ~trust.trusted & ~trust.kept
    if not untrusted.any() or trust.too_few:
        return labels, before, z0, trust, np.zeros(len(labels), dtype=bool)
    present = before.present
    in_range = _pose_range(before.attributes[trust.trusted], thresholds)

    def check(frames: np.ndarray, numbers: np.ndarray, drawn_lv: np.ndarray | None = None) -> np.ndarray:
        """Valid, and oriented and placed within the trusted frames' own range; ``frames`` (n, H, W) are
        the sequence's frames ``numbers`` (n,) (0-based); ``drawn_lv`` (n,) bool: frames that keep their
        drawn LV, whose range reaches their drawn pose too. Candidates only: an unmeasurable attribute
        fails the range test silently (a warning would name a frame the output does not hold; the
        output's own measurement warns about what it keeps)."""
        from echotemporal.measure.attributes import ATTRIBUTE_NAMES, compute_attributes

        rows, cols = heart_box(frames, margin=4)
        crop = np.ascontiguousarray(frames[:, rows, cols])
        ok = np.asarray(check_validity(crop, spacing_mm, present=present), dtype=bool).all(axis=1)
        attributes = np.asarray(compute_attributes(crop, spacing_mm, frame_numbers=numbers, warn=False), dtype=np.float64)
        attributes[:, ATTRIBUTE_NAMES.index("epi_center_x_mm")] += cols.start * spacing_mm[1]
        attributes[:, ATTRIBUTE_NAMES.index("epi_center_y_mm")] += rows.start * spacing_mm[0]
        own = None if drawn_lv is None else np.where(np.asarray(drawn_lv, dtype=bool)[:, None], before.attributes[numbers], np.nan)
        return ok & in_range(attributes, own)

    out = labels.copy()
    blended = interpolate_runs(out, untrusted, trust.trusted, spacing_mm, MAX_BLENDED_RUN)
    blended |= extrapolate_turning_ends(out, untrusted & ~blended, trust.trusted, spacing_mm, anchors)
    if blended.any():
        rows = np.flatnonzero(blended)
        bad = rows[~check(out[rows], rows)]
        out[bad] = labels[bad]
        blended[bad] = False
    rest = untrusted & ~blended
    z = _reencoded(z0, out, blended, ctx)  # blended frames now support the latent fit with their new shapes
    if rest.any():
        names = tuple(model.attribute_names)
        phase = np.array([names.index(n) for n in PHASE_ATTRIBUTES if n in names], dtype=int)
        lv_drawn_ok = trust.on_level
        if before.checked:
            lv_drawn_ok = lv_drawn_ok & before.criteria[:, [CRITERIA.index(name) for name in LV_OWN_CRITERIA]].all(axis=1)
        turning = tuple(sorted({*anchors, *detected}))
        joined = _joined_lv_phase(out, rest & ~trust.lv_intact, before, trust, ctx, anchors) if join_pieces else None
        walled = _wall_repaired_lv(out, z, rest & ~trust.lv_intact & _end_runs(rest), before, trust, ctx, anchors)
        out = reestimate_frames(
            out, z, trust.trusted | blended, rest, alignment, model, spacing_mm=spacing_mm, present=present, phase_dims=phase, check=check,
            lv_intact=trust.lv_intact if walled is None else trust.lv_intact | walled[0], turning=turning, lv_drawn_ok=lv_drawn_ok,
            corroborate=detected, phase=_either_phase(joined, walled), given=given,
        )
        kept = _unturned(labels, out, rest, trust.trusted | blended, turning, spacing_mm, _believable_lv(before, thresholds) & trust.on_level)
        rest &= ~kept
        untrusted = untrusted & ~kept
        z = _reencoded(z, out, rest, ctx)
    measured = measure_shape(out, spacing_mm, thresholds, reference=(labels, before))
    return out, measured, z, trust, untrusted


def smooth_arvae(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    model: Any,
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    before: ShapeMeasures,
    anchors: tuple[int, ...] | None = None,
) -> ArvaeOutcome:
    """DESIGN.md §4.3-4.4: judge and re-estimate, then project/smooth latents, decode, verify, tighten.

    ``anchors``: the ED and ES frames (given), else the two end frames; see ``trust.assess_frames``.
    """
    seen = _cleaned_for_encoding(labels, before)
    z_seen, alignment = encode_sequence(seen, spacing_mm, model)
    ctx = _Sequence(spacing_mm, model, thresholds, alignment)
    if not config.robust:
        return _corrected(labels, before, z_seen, None, None, ctx, config)
    ends = tuple(anchors if anchors is not None else (0, len(labels) - 1))
    # Without ED/ES a rebuilt run may still cross a turning point (the ES of a full cycle), which
    # the bridge between trusted frames would flatten. The drawn LV curve, which broken frames
    # still trace, proposes them; the frames' own walls must confirm (``reestimate``).
    detected = () if anchors is not None else tuple(t for t in turning_frames(before, thresholds) if t not in ends)
    labels, before = _minor_cleanups(labels, seen, before, ctx)
    # Trust is judged on the clean-ups' encodings: a frame broken into pieces reconstructs badly from
    # them. What is corrected in place is then read from the frames as drawn (``_encoded_as_drawn``).
    trust = judge_frames(labels, z_seen, before, ctx, ends)
    z0 = _encoded_as_drawn(labels, seen, z_seen, ctx)
    from_latents = lambda z: _corrected(*_robust_start(labels, before, z, ctx, ends, trust, detected, anchors), ctx, config)
    # Read as drawn, a broken run that could not be rebuilt is corrected from its breakage too: where
    # that leaves frames invalid or inconsistent, the clean-ups' reading is tried and the one that
    # leaves fewer is kept.
    as_drawn = lambda: _fewer_residues(from_latents(z0), lambda: None if z0 is z_seen else from_latents(z_seen))
    if trust.trusted.sum() >= max(2, NEAR_TOTAL_TRUSTED * len(labels)):
        return as_drawn()
    # A near-total failure: with (nearly) nothing trusted as drawn, its frames were corrected in place
    # from encodings of their clean-ups, which drop whatever broke off (half a split cavity, wall
    # pieces), or rebuilt from a few frames that may be broken too. Other readings are tried (the
    # clean-ups trusted as they are, the others rebuilt from them; the frames mended, taken as the
    # input) and the least harmful is kept. The readings are independent: they run side by side.
    few = f"only {int(trust.trusted.sum())} of {len(labels)} frames could be trusted as drawn"
    mendings = _mended_frames(labels, before, z0, ctx)
    readings = (
        as_drawn,
        lambda: _from_cleanups(labels, seen, before, z_seen, ctx, config, ends, detected, anchors, few),
        *(lambda m=m: _from_mended(labels, *m, before, ctx, config, ends, detected, anchors, few) for m in mendings),
    )
    tried = [o for o in map_threads(lambda reading: reading(), readings, kernel_threads()) if o is not None]
    chosen = least_harm(tried, labels, anchors, spacing_mm)
    if _residue_frames(chosen.shape) or _turned_over([chosen], labels, anchors, spacing_mm)[0]:
        # Nothing read from the drawn walls came out whole: a wall drawn where the LV has none (the
        # model's wall round the cavity) is tried too, only then: it is what the segmenter did not draw.
        shelled = _shelled(labels, before, mendings[0][0] if mendings else labels, z0, ctx)
        if shelled is not None:
            tried.append(_from_mended(labels, *shelled, before, ctx, config, ends, detected, anchors, few))
            chosen = least_harm(tried, labels, anchors, spacing_mm)
    return chosen


def _fewer_residues(first: ArvaeOutcome, other: Callable[[], ArvaeOutcome | None]) -> ArvaeOutcome:
    """``first``, unless it leaves frames invalid or inconsistent and ``other()`` (an outcome or None,
    computed only then) leaves fewer."""
    if not _residue_frames(first.shape):
        return first
    second = other()
    return second if second is not None and _residue_frames(second.shape) < _residue_frames(first.shape) else first


def _reencoded(z: np.ndarray, frames: np.ndarray, rows: np.ndarray, ctx: _Sequence) -> np.ndarray:
    """A copy of the (T, D) latents ``z`` whose rows ``rows`` ((T,) bool) are the encodings of those
    frames of the (T, H, W) ``frames``, on the sequence's alignment."""
    from echotemporal.model.alignment import to_grid

    out = z.copy()
    if rows.any():
        out[rows] = np.asarray(ctx.model.encode(to_grid(frames[rows], ctx.alignment)), dtype=np.float64)
    return out


def _encoded_as_drawn(labels: np.ndarray, seen: np.ndarray, z_seen: np.ndarray, ctx: _Sequence) -> np.ndarray:
    """(T, D) latents of the (T, H, W) ``labels``: ``z_seen`` (the encodings of their clean-ups
    ``seen``) where a frame took its clean-up, the frame's own encoding where it kept its drawing.

    A clean-up that was not taken dropped pieces of the heart itself (a wall in pieces, a cavity
    cut off): its encoding describes a heart the segmenter did not draw, and a frame corrected in
    place from it comes back without the pieces (a U-Net's wall broken in every frame, seed 61:
    MYO Dice against the truth 0.73 drawn, 0.55 corrected). The alignment stays the clean-ups' (a
    stray blob would stretch it), and trust is still judged on the clean-ups' encodings."""
    drawn = (labels != seen).reshape(len(labels), -1).any(axis=1)
    return _reencoded(z_seen, labels, drawn, ctx) if drawn.any() else z_seen


def _from_cleanups(
    labels: np.ndarray, seen: np.ndarray, before: ShapeMeasures, z0: np.ndarray, ctx: _Sequence, config: SmoothingConfig,
    ends: tuple[int, ...], detected: tuple[int, ...], anchors: tuple[int, ...] | None, few: str,
) -> ArvaeOutcome | None:
    """A near-total failure corrected from its trusted clean-ups (:func:`_trusted_cleanups`), the other
    frames re-estimated from them; None when fewer than two can be trusted. ``few`` opens the note."""
    cleaned = _trusted_cleanups(labels, seen, before, z0, ctx, ends)
    if cleaned is None:
        return None
    labels_c, before_c, trust_c = cleaned
    # The clean-ups kept the largest LV piece as the heart's: joined, the pieces would put back what
    # they dropped (a second heart's cavity) into the phase of the frames rebuilt.
    rebuilt = _corrected(*_robust_start(labels_c, before_c, z0, ctx, ends, trust_c, detected, anchors, False), ctx, config)
    rebuilt.notes.append(
        f"{few}: {int(rebuilt.trust.trusted.sum())} were trusted once cleaned up (largest component per "
        "label) and the others re-estimated from them; review this segmentation"
    )
    return rebuilt


def _from_mended(
    labels: np.ndarray, mended: np.ndarray, z_m: np.ndarray, note: str, before: ShapeMeasures, ctx: _Sequence,
    config: SmoothingConfig, ends: tuple[int, ...], detected: tuple[int, ...], anchors: tuple[int, ...] | None, few: str,
) -> ArvaeOutcome:
    """A near-total failure whose (T, H, W) ``labels`` were ``mended`` (one of :func:`_mended_frames`,
    with its latents ``z_m`` (T, D) and what it did, ``note``), corrected as if they were the input.
    ``few`` opens the outcome's note."""
    before_m = measure_shape(mended, ctx.spacing_mm, ctx.thresholds, reference=(labels, before))
    trust_m = judge_frames(mended, z_m, before_m, ctx, ends)
    outcome = _corrected(*_robust_start(mended, before_m, z_m, ctx, ends, trust_m, detected, anchors), ctx, config)
    outcome.notes.append(f"{few}: the frames were mended ({note}) and then corrected; review this segmentation")
    return outcome


def _mended_frames(
    labels: np.ndarray, before: ShapeMeasures, z0: np.ndarray, ctx: _Sequence
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Readings of the (T, H, W) ``labels`` with their invalid frames mended (:func:`_mended`): each
    (frames (T, H, W), latents (T, D): ``z0`` with the mended frames encoded again, what was done).

    Empty when mending changes nothing (else every frame mended comes first); one when no mended frame
    lost a piece of its wall; else two: every frame mended, and the frames whose wall is in pieces
    too far apart to join left as drawn. Which is less harmful depends on the rest of the sequence: a
    wall piece dropped in a few frames is rebuilt from the others, while a septum drawn apart in most
    frames of a cycle, dropped, leaves the LV curve flat (a U-Net's cycle, seed 67); ``least_harm``
    chooses.
    """
    from echotemporal.measure.anatomy import check_validity

    def mend(t: int) -> tuple[np.ndarray, bool, bool]:
        """Frame ``t`` mended, whether it is mended in the walled reading too, whether its base was opened."""
        frame, drops_wall, base = _mended(labels[t], ctx.spacing_mm, before.present)
        if not drops_wall:
            return frame, True, base
        return frame, not np.asarray(check_validity(frame, ctx.spacing_mm, present=before.present), dtype=bool).all(), base

    mended = labels.copy()
    walled = labels.copy()
    opened = 0
    broken = np.flatnonzero(~before.valid)
    for t, (frame, in_walled, base) in zip(broken, map_threads(mend, broken, kernel_threads())):
        mended[t] = frame
        opened += base
        if in_walled:
            walled[t] = frame
    done = "LV pieces joined, gaps across the wall closed" + (f", the wall closed under the LV opened in {opened} frame(s)" if opened else "")
    variants = [(mended, done)]
    if (walled != mended).any():
        variants.append((walled, f"{done}; walls in pieces too far apart kept as drawn"))
    found = []
    for frames, note in variants:
        changed = (frames != labels).reshape(len(labels), -1).any(axis=1)
        if changed.any():
            found.append((frames, _reencoded(z0, frames, changed, ctx), note))
    return found


def _shelled(
    labels: np.ndarray, before: ShapeMeasures, mended: np.ndarray, z0: np.ndarray, ctx: _Sequence
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The (T, H, W) ``labels`` with their invalid frames ``mended`` (every frame mended of
    :func:`_mended_frames`, or ``labels`` where mending changed nothing) and then given a wall where
    their LV has none (``cleanup.walled_lv``, as thick as the sequence draws its walls:
    ``cleanup.drawn_wall_thickness_mm``; largest component per label and holes filled after):
    (frames, latents (T, D): ``z0`` with those frames encoded again, what was done), or None when
    that changes nothing. A segmenter that lost the wall in most frames leaves nothing to rebuild it
    from."""
    thickness = drawn_wall_thickness_mm(labels, ctx.spacing_mm)
    shelled = labels.copy()
    for t in np.flatnonzero(~before.valid):
        shelled[t] = cleanup_labels(walled_lv(mended[t], ctx.spacing_mm, LA in before.present, thickness)[None], before.present)[0]
    changed = (shelled != labels).reshape(len(labels), -1).any(axis=1)
    if not changed.any():
        return None
    note = "LV pieces joined, gaps across the wall closed, a wall drawn where the LV had none"
    return shelled, _reencoded(z0, shelled, changed, ctx), note


def _corrected(
    labels: np.ndarray, before: ShapeMeasures, z0: np.ndarray, trust: FrameTrust | None, reestimated: np.ndarray | None,
    ctx: _Sequence, config: SmoothingConfig,
) -> ArvaeOutcome:
    """The consistency correction (:func:`_consistency_rounds`) of what the robust start left: the
    (T, H, W) ``labels``, their measures ``before`` and latents ``z0`` (T, D), with the input's
    ``trust`` and the (T,) bool ``reestimated`` frames (both None without the robust start)."""
    if trust is not None and before.valid.all() and not before.flags.any():
        # Nothing left to correct: the latent projection would only spread small changes onto
        # frames that need none (its constraints are on latents, not on the measured attributes).
        keep = np.zeros(len(labels), dtype=bool)
        return ArvaeOutcome(labels, before, 0, latent_tolerances(ctx.model, ctx.thresholds)[1], keep, trust, reestimated)
    outcome = _consistency_rounds(labels, before, z0, ctx, config)
    outcome.trust, outcome.reestimated = trust, reestimated
    return outcome


def _residue_frames(shape: ShapeMeasures) -> int:
    """How many frames are invalid or inconsistent."""
    return int((~shape.clean).sum())


def _consistency_rounds(
    labels: np.ndarray, before: ShapeMeasures, z0: np.ndarray, ctx: _Sequence, config: SmoothingConfig
) -> ArvaeOutcome:
    """DESIGN.md §4.3: project/smooth the latents, decode, verify and tighten; then the repairs."""
    spacing_mm, model, thresholds, alignment = ctx.spacing_mm, ctx.model, ctx.thresholds, ctx.alignment
    from echotemporal.correct.solvers import project_consistent, project_consistent_sparse, whittaker_smooth

    project = {"sparse": project_consistent_sparse, "least_squares": project_consistent}[config.projection]
    residual = config.decoding == "residual"
    # Glitched frames (invalid, or flagged) cannot lend their own residual: it holds the glitch
    # that the model's reconstruction only partly reproduces. They borrow their neighbours'.
    glitched = ~before.clean
    decode = SequenceDecoder(
        labels, alignment, model, z0 if residual else None, cleanup=config.cleanup, borrow=glitched, present=before.present
    )
    dim_of, tol = latent_tolerances(model, thresholds)
    tol = tol * float(config.tolerance_scale)

    # A frame where a structure vanished (an attribute unmeasurable there but measurable elsewhere)
    # has no trustworthy latent at all, and an end frame is not constrained by the projection:
    # its latent is inpainted from the measurable frames first.
    missing = np.isnan(before.attributes).any(axis=1) & ~np.isnan(before.attributes).all(axis=1)
    if missing.any() and (~missing).sum() >= 2:
        z0 = inpaint_latents(z0, missing)
    free = np.setdiff1d(np.arange(z0.shape[1]), dim_of)
    z_free = z0[:, free]
    if free.size and config.whittaker_lambda > 0:
        z_free = whittaker_smooth(z_free, config.whittaker_lambda)
    keep = np.zeros(len(labels), dtype=bool)
    if config.keep_unflagged_frames:
        keep = before.clean
    projected: dict[tuple[int, float], np.ndarray] = {}
    out, shape, rounds = labels, before, 0
    for rounds in range(1, max(int(config.max_rounds), 1) + 1):
        z = z0.copy()
        for k, d in enumerate(dim_of):
            key = (int(d), float(tol[k]))
            if key not in projected:
                projected[key] = np.asarray(project(z0[:, d], float(tol[k])), dtype=np.float64)
            z[:, d] = projected[key]
        # Free dims are smoothed only where the frame is corrected anyway (glitched, or moved by the
        # projection): every other frame keeps its latent, hence comes back bit-identical, undecoded.
        active = glitched | (z[:, dim_of] != z0[:, dim_of]).any(axis=1)
        z[np.ix_(active, free)] = z_free[active]
        out = decode(z)
        if keep.any():
            out[keep] = labels[keep]
        # Rounds only need the flags; the costly validity check runs once, on the final masks.
        shape = measure_shape(out, spacing_mm, thresholds, reference=(labels, before), validity=False)
        still = shape.flags.any(axis=0)
        if not still.any() or rounds >= config.max_rounds:
            break
        tol = np.where(still, tol * config.tighten_factor, tol)
    shape = add_validity(out, shape, spacing_mm, (labels, before))
    out, shape = _revert_unhelped(out, shape, labels, before, thresholds)
    if residual and not shape.valid.all():
        out, shape = full_decoding_fallback(out, shape, z, decode, model, config, spacing_mm, thresholds)
    # A frame broken by its atrium alone is repaired there, LV and MYO untouched, before any bridge
    # from its neighbours replaces the whole frame.
    if not shape.valid.all():
        out, shape = _atrium_repaired(out, shape, spacing_mm)
    if not shape.valid.all() or shape.flags.any():
        out, shape = interpolate_residue(out, shape, spacing_mm, thresholds)
    return ArvaeOutcome(out, shape, rounds, tol, keep)


def _atrium_repaired(out: np.ndarray, shape: ShapeMeasures, spacing_mm: tuple[float, float]) -> tuple[np.ndarray, ShapeMeasures]:
    """The LA of frames left invalid by the atrium alone, repaired: LV and MYO untouched.

    A frame whose only failed criteria are the atrium's (``ATRIUM_CRITERIA``) or the LV meeting the
    background (``lv_background_frontier``, with the LA labelled: an atrium drawn short of the base)
    tries, in turn: its LA trimmed off the walls where it runs along the basal myocardium
    (:func:`~echotemporal.correct.cleanup.trim_la_along_myo`); its LA put together
    (:func:`~echotemporal.correct.cleanup.mended_atrium`: pieces joined, holes filled, pockets
    between LV and LA closed); the same with only the piece nearest the LV kept instead of joining
    them; each of these two trimmed; and, last, the piece nearest the LV joined to the background
    beside the LV (an atrium drawn apart from the base), as it is and trimmed. The first that makes
    it valid is kept. LV and MYO, hence every attribute, flag, volume and strain, are untouched.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).

    Returns:
        (labels, measures) with the repaired frames valid; the inputs where no frame qualifies.
    """
    from echotemporal.correct.cleanup import mended_atrium, trim_la_along_myo
    from echotemporal.measure.anatomy import CRITERIA, check_validity

    # Without the myocardium, nothing tells an LV open at its side (``lv_side_closed`` needs it) from one
    # whose atrium is missing: an LA joined round such an LV would pass every check.
    if not shape.checked or LA not in shape.present or MYO not in shape.present:
        return out, shape
    others = [k for k, name in enumerate(CRITERIA) if name not in ATRIUM_CRITERIA + ("lv_background_frontier",)]
    only = np.flatnonzero(~shape.valid & shape.criteria[:, others].all(axis=1))
    if not only.size:
        return out, shape
    rows, cols = heart_box(out[only], margin=4)
    trim = lambda frame: trim_la_along_myo(frame[None].copy(), spacing_mm)[0]  # noqa: E731

    def tries(frame: np.ndarray) -> Iterator[np.ndarray]:
        """The repairs of one (h, w) frame, in the order of the docstring, each made only if asked."""
        yield trim(frame)
        joined = mended_atrium(frame, spacing_mm)
        yield joined
        kept = mended_atrium(frame, spacing_mm, join=False)
        yield from (kept, trim(joined), trim(kept))
        reached = mended_atrium(frame, spacing_mm, join=False, reach_lv=True)
        yield from (reached, trim(reached))

    out, all_criteria, valid = out.copy(), shape.criteria.copy(), shape.valid.copy()
    for t in only:
        drawn = np.ascontiguousarray(out[t, rows, cols])
        for tried in tries(drawn):
            if not (tried != drawn).any():
                continue
            passed = np.asarray(check_validity(tried[None], spacing_mm, present=shape.present), dtype=bool)[0]
            if passed.all():
                out[t, rows, cols] = tried
                all_criteria[t], valid[t] = passed, True
                break
    if (valid == shape.valid).all():
        return out, shape
    return out, dataclasses.replace(shape, criteria=all_criteria, valid=valid)


def _revert_unhelped(
    out: np.ndarray, shape: ShapeMeasures, labels: np.ndarray, before: ShapeMeasures, thresholds: AttributeThresholds
) -> tuple[np.ndarray, ShapeMeasures]:
    """Do no harm: a changed frame that is invalid while its input frame was valid, or that was
    replaced only for being invalid (never flagged) and is still invalid, gets the input frame back,
    where that creates no new inconsistency: a reverted frame next to a newly flagged one (or, for a
    flag farther off, the reverted frame nearest to it) stays corrected, and the rest is tried again."""
    changed = (out != labels).reshape(len(out), -1).any(axis=1)
    revert = changed & ~shape.valid & (before.valid | ~before.inconsistent)
    flagged = shape.inconsistent
    while revert.any():
        restored = restore_frames(shape, before, revert, thresholds)
        new = restored.inconsistent & ~flagged
        if not new.any():
            out[revert] = labels[revert]
            return out, restored
        drop = revert & (np.convolve(new.astype(int), np.ones(3, dtype=int), mode="same") > 0)
        if not drop.any():  # flagged beyond a neighbour (a gap in the metric): the nearest reverted frame
            rows = np.flatnonzero(revert)
            drop[[rows[np.argmin(np.abs(rows - t))] for t in np.flatnonzero(new)]] = True
        revert &= ~drop  # shrinks every pass: the loop ends
    return out, shape
