"""Which frames of a sequence to trust: a per-frame confidence from validity, the shape model's own
reconstruction of the frame, and temporal coherence (DESIGN.md §4.4).

Real segmenters fail coherently in time (a wall segment missing, the LV split, a leak below the
mitral plane, for many consecutive frames): such frames are not temporal jumps, so the consistency
metric alone misses them. Three independent witnesses are combined:

* **validity**: the anatomical criteria (:mod:`echotemporal.measure.anatomy`) of the input frame;
* **reconstruction agreement**: the Dice, on the model grid, between the frame and the model's
  decoding of its own latent. The model knows plausible hearts only: a broken frame is
  reconstructed as a whole heart and disagrees with itself (LV and MYO Dice; the lower one counts);
* **temporal coherence**: an attribute that leaves the curve drawn by the trusted frames around it.
  Frames are peeled one at a time, the worst first, so that a glitch does not discredit the
  neighbours whose second differences it also spoils (the consistency metric flags both). A run of
  frames whose myocardial area leaves the line its LV area predicts (an endocardium drawn into the
  wall or away from it, which ramps in smoothly) is an outlier too, edges and all
  (``off_myocardial_level``).

A frame is trusted when all three agree; an invalid frame whose reconstruction is as good as the
sequence's good frames' stays trusted (nearly right: the consistency correction repairs it in place),
unless its wall closes under the LV (``lv_base_open`` failed): a segmenter that draws every frame
shut makes the sequence's own reference shut too, and no correction in place opens it.
``confidence`` grades the same evidence in [0, 1] for the reader (per-frame CSV, summary, volume
figure).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from echotemporal.core.labels import LV, MYO

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = [
    "FrameTrust", "MIN_RECONSTRUCTION_DICE", "assess_frames", "lv_reconstructs", "off_myocardial_level", "reconstruction_dice", "temporal_outliers",
]

#: A frame whose LV or MYO Dice with its own reconstruction is below this is not trusted. Expert
#: masks of held-out CAMUS patients reconstruct at 0.97-0.98 (MYO) on the native grid.
MIN_RECONSTRUCTION_DICE = 0.86
#: Quantile of a sequence's reconstruction Dice taken as what its good frames reach (most frames
#: of a sequence are good at the sequence's own level, even with 70 % broken: broken ones are lower).
REFERENCE_QUANTILE = 0.75
#: A frame more than this below the sequence's reference (LV, MYO) is not trusted (the model
#: reconstructs good LVs to about 0.99 and good myocardia to about 0.975)...
RELATIVE_DROP = np.array([0.03, 0.05])
#: ...and an untrusted run spreads over neighbours more than this below it (failures ramp in).
NEIGHBOUR_DROP = RELATIVE_DROP / 2
#: A frame whose myocardial area is off what its LV area predicts (``off_myocardial_level``) by
#: more than this fraction of the sequence's median myocardial area is not trusted.
MYO_LEVEL_BAND = 0.15
#: Range of the myocardial-on-LV area slope over a cycle: the 0.5-99.5th percentiles of
#: (MYO_ES - MYO_ED) / (LV_ES - LV_ED) over 800 expert ED/ES pairs (CAMUS, train split): -0.51, 0.87.
MYO_LV_SLOPES = (-0.5, 0.9)
#: Extra allowance of an end frame's deviation from the extrapolation of its neighbours.
END_ALLOWANCE = 2.0
#: Allowance (units of tau, adjacent supports) of an ED/ES end frame from its turning-point
#: prediction: expert-like annotation noise reaches 1.6, a 6-pixel LV dilation 7.7.
TURNING_ALLOWANCE = 3.0
#: A frame whose LV area is under this fraction of the sequence's large LV areas (their 90th
#: percentile) has lost its cavity, whatever its other checks say: the ES/ED LV area ratio of 990
#: expert CAMUS pairs (all splits) is 0.17 at least, 0.41 at its 1st percentile.
COLLAPSED_LV_RATIO = 0.2
#: Fewer trusted frames than this fraction of a sequence's frames (or fewer than two) leave nothing to
#: re-estimate the others from: one trusted frame in a beat would have to carry the whole beat's shape
#: (a U-Net's near-total failure recorded as two beats, 2 of 81 frames trusted: every frame rebuilt
#: from those two came back with MYO Dice 0.57 against the truth, 0.65 corrected in place, 0.67 drawn).
MIN_TRUSTED_FRACTION = 0.05


@dataclass(frozen=True)
class FrameTrust:
    """Per-frame evidence about the input, arrays (T,).

    Attributes:
        confidence: in [0, 1]; 1 = valid, reconstructed as drawn, on the trusted frames' curve.
        trusted: bool, frames kept as they are (up to the later consistency checks).
        reconstruction_dice: min over LV and MYO of the Dice with the model's reconstruction (grid).
        valid: bool, anatomical validity of the input frame.
        outlier: bool, off the temporal curve of the trusted frames (or an attribute unmeasurable).
        lv_intact: bool, the LV alone looks right (one piece, reconstructed as well as the
            sequence's good frames): its area and length still carry the cardiac phase.
        kept: bool, untrusted ED/ES frames left as drawn (not rebuilt, not a support).
        on_level: bool, the myocardial area is on the level the LV area predicts
            (``off_myocardial_level``; ED/ES judged like any frame here).
        lv_dice: LV Dice with the model's reconstruction (grid).
    """

    confidence: np.ndarray
    trusted: np.ndarray
    reconstruction_dice: np.ndarray
    valid: np.ndarray
    outlier: np.ndarray
    lv_intact: np.ndarray
    kept: np.ndarray
    on_level: np.ndarray
    lv_dice: np.ndarray

    @property
    def too_few(self) -> bool:
        """Whether too few frames are trusted to re-estimate the others from (``MIN_TRUSTED_FRACTION``)."""
        n = int(self.trusted.sum())
        return n < 2 or n < MIN_TRUSTED_FRACTION * len(self.trusted)

    def reversed(self) -> FrameTrust:
        """The same evidence in reversed frame order."""
        return FrameTrust(*(getattr(self, f.name)[::-1] for f in dataclasses.fields(self)))


def reconstruction_dice(grid_labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per frame, the LV and MYO Dice between a frame and its reconstruction.

    Args:
        grid_labels: (T, G, G) uint8 labels on the model grid (LA and above read as background).
        probs: (T, C, G, G) decoded class probabilities of the frames' own latents.

    Returns:
        (T, 2) float in [0, 1], columns LV and MYO; 1 for a class absent from both.
    """
    recon = probs.argmax(axis=1)
    n = len(grid_labels)
    out = np.ones((n, 2))
    for k, value in enumerate((LV, MYO)):
        a = (grid_labels == value).reshape(n, -1)
        b = (recon == value).reshape(n, -1)
        total = a.sum(axis=1) + b.sum(axis=1)
        inter = (a & b).sum(axis=1)
        out[:, k] = np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)
    return out


def _deviation(values: np.ndarray, t: int, support: np.ndarray, anchor: bool = False) -> tuple[float, float] | None:
    """(|value − prediction|, allowed factor) of frame t from its nearest supporting frames, or None.

    Interior frames are predicted by the chord of the nearest support on each side; a smooth curve
    departs from its chord by ``a''·h1·h2/2``, so the allowance scales with h1·h2 (1 for adjacent
    neighbours: the consistency metric itself). End frames are extrapolated from the two nearest
    supports on one side, allowance ``END_ALLOWANCE``·h1·(h1 + h2): extrapolation doubles the
    annotation noise of its supports, and an end frame is often ED or ES, whose loss costs the EF.

    An ``anchor`` (ED or ES) is a turning point of the shape attributes: at an end it is predicted
    by the quadratic of zero slope through its two supports (``v₁ − (v₂ − v₁)·h1²/(h2² − h1²)``),
    allowance ``TURNING_ALLOWANCE``·h1·h2/2; inside, by the chord with ``END_ALLOWANCE`` times the
    usual allowance (annotation noise at a turning point looks like a deviation).
    """
    before, after = support[support < t], support[support > t]
    if anchor and (before.size >= 2) != (after.size >= 2) and not (before.size and after.size):
        near, far = (after[0], after[1]) if after.size else (before[-1], before[-2])
        h1, h2 = abs(near - t), abs(far - t)
        prediction = values[near] - (values[far] - values[near]) * h1**2 / (h2**2 - h1**2)
        return float(np.max(np.abs(values[t] - prediction))), TURNING_ALLOWANCE * h1 * h2 / 2.0
    if before.size and after.size:
        a, b = before[-1], after[0]
        w = (t - a) / (b - a)
        allow = float((t - a) * (b - t)) * (END_ALLOWANCE if anchor else 1.0)
    elif before.size >= 2:
        a, b = before[-2], before[-1]
        w = (t - a) / (b - a)
        allow = END_ALLOWANCE * float((t - b) * (t - a))
    elif after.size >= 2:
        a, b = after[0], after[1]
        w = (t - a) / (b - a)
        allow = END_ALLOWANCE * float((a - t) * (b - t))
    else:
        return None
    prediction = (1.0 - w) * values[a] + w * values[b]
    return float(np.max(np.abs(values[t] - prediction))), allow


def _level_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The least-median-of-squares line y = a x + b, slope within ``MYO_LV_SLOPES``.

    Slopes are tried on a grid of 0.01; for each, the shortest window holding half the residuals
    ``y - a x`` (plus one) is found; the slope of the shortest such window wins, b is the window's
    middle. Half the points can be a broken run without tilting it.

    Args:
        x, y: (n,) finite values, n >= 3.

    Returns:
        (slope, intercept).
    """
    n = len(x)
    h = n // 2 + 1
    best = (np.inf, 0.0, 0.0)
    for slope in np.arange(MYO_LV_SLOPES[0], MYO_LV_SLOPES[1] + 1e-9, 0.01):
        r = np.sort(y - slope * x)
        widths = r[h - 1 :] - r[: n - h + 1]
        i = int(np.argmin(widths))
        if widths[i] < best[0]:
            best = (float(widths[i]), float(slope), float(0.5 * (r[i] + r[i + h - 1])))
    return best[1], best[2]


def off_myocardial_level(attributes: np.ndarray, thresholds: AttributeThresholds, support: np.ndarray) -> np.ndarray:
    """(T,) bool: frames whose myocardial area leaves what their LV area predicts (``MYO_LEVEL_BAND``).

    Over a cycle the 2D myocardial area follows the phase (the wall thickens as the cavity empties),
    smoothly and by a patient-specific amount: it is predicted by a straight line in the LV area,
    fitted to the ``support`` frames by least median of squares with its slope within
    ``MYO_LV_SLOPES`` (:func:`_level_line`: half the frames may be a broken run). An LV over- or under-segmented into the wall moves both areas by the same
    pixels, in opposite directions (a slope of -1 that hearts do not have), and ramps in and out
    smoothly, so the second-difference test sees only its edges.
    A run of support frames off the line by more than the band takes its adjacent frames off by
    half as much on the same side. Fewer than five support frames: nothing is flagged.
    """
    names = tuple(thresholds.names)
    if "myo_area_mm2" not in names or "lv_area_mm2" not in names:
        return np.zeros(len(support), dtype=bool)
    a = np.asarray(attributes, dtype=np.float64)
    myo, lv = a[:, names.index("myo_area_mm2")], a[:, names.index("lv_area_mm2")]
    measured = np.isfinite(myo) & np.isfinite(lv) & (myo > 0)
    use = support & measured
    if use.sum() < 5:
        return np.zeros(len(support), dtype=bool)
    scale = float(np.median(myo[use]))
    slope, intercept = _level_line(lv[use], myo[use])
    off = (myo - (intercept + slope * lv)) / scale
    # Only frames trusted otherwise start a run: a frame already judged broken (a split LV filled
    # with wall) would spread onto good neighbours whose areas are at the cycle's extreme.
    core = use & (np.abs(off) > MYO_LEVEL_BAND)
    weak = measured & (np.abs(off) > MYO_LEVEL_BAND / 2)
    return _spread(core & (off > 0), weak & (off > 0)) | _spread(core & (off < 0), weak & (off < 0))


def collapsed_lv(attributes: np.ndarray, thresholds: AttributeThresholds) -> np.ndarray:
    """(T,) bool: frames whose LV area is under ``COLLAPSED_LV_RATIO`` times the 90th percentile of
    the sequence's LV areas (frames drawing an LV): a cavity drawn shut (an LV under-segmented
    into its wall, an apex cut), which the checks of one frame and its neighbours pass when it
    closes gradually over a run. ``attributes``: (T, K) in ``thresholds.names`` order."""
    names = tuple(thresholds.names)
    if "lv_area_mm2" not in names:
        return np.zeros(len(attributes), dtype=bool)
    area = np.asarray(attributes, dtype=np.float64)[:, names.index("lv_area_mm2")]
    drawn = np.isfinite(area) & (area > 0)
    if drawn.sum() < 3:
        return np.zeros(len(area), dtype=bool)
    return drawn & (area < COLLAPSED_LV_RATIO * float(np.quantile(area[drawn], 0.9)))


def temporal_outliers(
    attributes: np.ndarray, thresholds: AttributeThresholds, candidates: np.ndarray, anchors: tuple[int, ...] = ()
) -> np.ndarray:
    """Frames off the temporal curve of the other trusted frames, peeled one at a time, worst first.

    Args:
        attributes: (T, K) attributes in ``thresholds.names`` order, physical units (NaN = unmeasurable).
        thresholds: normalisation bounds and per-attribute tolerance tau.
        candidates: (T,) bool, frames otherwise trusted (the others never support a prediction).
        anchors: ED/ES frames, judged as turning points (see ``_deviation``).

    Returns:
        (T,) bool, candidates that are temporal outliers (or have an unmeasurable attribute while
        the attribute is measurable elsewhere).
    """
    lo, hi, tau = (np.asarray(v, dtype=np.float64) for v in (thresholds.lo, thresholds.hi, thresholds.tau))
    scaled = (np.asarray(attributes, dtype=np.float64) - lo) / (hi - lo) / tau  # units of tau
    measurable = np.isfinite(scaled)
    somewhere = measurable.any(axis=0)
    outlier = candidates & (~measurable & somewhere).any(axis=1)
    scaled = np.where(measurable, scaled, 0.0)
    support = candidates & ~outlier
    while support.sum() > 3:
        idx = np.flatnonzero(support)
        scores = np.zeros(len(idx))
        for i, t in enumerate(idx):
            found = _deviation(scaled, int(t), idx[idx != t], anchor=int(t) in anchors)
            if found is not None:
                scores[i] = found[0] / max(found[1], 1.0)
        worst = int(np.argmax(scores))
        if scores[worst] <= 1.0:
            break
        support[idx[worst]] = False
        outlier[idx[worst]] = True
    return outlier


def _spread(seed: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """(T,) bool: ``seed`` grown along runs of adjacent ``weak`` frames (both (T,) bool)."""
    out = seed.copy()
    while True:
        grown = out | (weak & (np.convolve(out.astype(int), [1, 1, 1], mode="same") > 0))
        if (grown == out).all():
            return out
        out = grown


def assess_frames(
    valid: np.ndarray,
    attributes: np.ndarray,
    recon_dice: np.ndarray,
    thresholds: AttributeThresholds,
    lv_one_piece: np.ndarray | None = None,
    anchors: tuple[int, ...] = (),
    min_dice: float = MIN_RECONSTRUCTION_DICE,
    base_shut: np.ndarray | None = None,
) -> FrameTrust:
    """Combine validity, reconstruction agreement and temporal coherence into trust (module docstring).

    Args:
        valid: (T,) bool anatomical validity of the input frames.
        attributes: (T, K) attributes of the input frames (``thresholds.names`` order).
        recon_dice: (T, 2) :func:`reconstruction_dice` (LV, MYO) of the input frames.
        thresholds: the consistency thresholds.
        lv_one_piece: (T,) bool, the input LV is one connected piece (None: assumed).
        anchors: frames (ED, ES) judged as turning points of the attributes, with a wider allowance:
            EF and GLS are read on them, and annotation noise at a turning point looks like a
            deviation from a straight extrapolation.
        min_dice: the absolute floor of the reconstruction Dice (the relative one still applies).
        base_shut: (T,) bool, frames whose myocardium closes under the LV (``lv_base_open`` failed;
            None: none). Such a frame is never trusted as nearly right, however well it reconstructs:
            where a segmenter draws the wall shut in every frame, the sequence's own reference is shut
            too, and no correction in place opens it.
    """
    per_label = np.asarray(recon_dice, dtype=np.float64).reshape(len(valid), 2)
    recon_dice = per_label.min(axis=1)
    reference = np.quantile(per_label, REFERENCE_QUANTILE, axis=0)
    weak = (per_label < reference - NEIGHBOUR_DROP).any(axis=1)
    lv_intact = per_label[:, 0] >= _lv_floor(per_label[:, 0])
    if lv_one_piece is not None:
        lv_intact &= np.asarray(lv_one_piece, dtype=bool)
    floor = np.maximum(min_dice, reference - RELATIVE_DROP)
    # An invalid frame that reconstructs as well as the sequence's good frames is nearly right (a
    # frontier a few pixels too long, border noise): the consistency correction repairs it in place.
    # It is re-estimated only when its reconstruction says a structure is broken.
    candidates = (per_label >= floor).all(axis=1) & (np.asarray(valid, dtype=bool) | ~weak)
    candidates &= ~_spread(~candidates, weak)
    if base_shut is not None:
        candidates &= ~np.asarray(base_shut, dtype=bool)
    # A frame off the myocardial level is an outlier whatever its neighbours say, and its LV border
    # is wrong with its wall: its LV carries no phase.
    off_level = off_myocardial_level(attributes, thresholds, candidates)
    # A frame whose cavity is drawn shut is neither trusted, nor kept as drawn at ED/ES, nor carries
    # the phase with its LV, whatever its other checks say.
    collapsed = collapsed_lv(attributes, thresholds)
    candidates &= ~collapsed
    on_level = ~off_level & ~collapsed
    # ED and ES are read as drawn unless their own evidence fails: a level fitted on a sequence that
    # is half broken can side with the broken half, and a rebuilt ES frame moves the EF.
    off_level[[a for a in anchors if 0 <= a < len(off_level)]] = False
    lv_intact &= ~off_level & ~collapsed
    outlier = temporal_outliers(attributes, thresholds, candidates & ~off_level, tuple(int(a) for a in anchors))
    outlier |= candidates & off_level
    trusted = candidates & ~outlier
    # A valid ED/ES frame is kept as drawn unless the evidence is strong (its own reconstruction below
    # the absolute floor, or a turning-point outlier): the relative evidence is size-dependent (small
    # end-systolic LVs reconstruct a little worse), and a frame rebuilt across a turning point misses
    # the volume extremum the EF is read on. Kept, it still supports nothing unless trusted.
    anchor = np.zeros(len(trusted), dtype=bool)
    anchor[[a for a in anchors if 0 <= a < len(anchor)]] = True
    kept = anchor & ~trusted & ~outlier & ~collapsed & np.asarray(valid, dtype=bool)
    kept &= (per_label >= MIN_RECONSTRUCTION_DICE).all(axis=1)
    graded = np.clip((per_label - floor) / np.maximum(reference - floor, 1e-6), 0, 1).min(axis=1)
    confidence = (0.5 + 0.5 * graded) * np.where(valid, 1.0, 0.4) * np.where(outlier, 0.5, 1.0)
    confidence = np.where(trusted, confidence, np.minimum(confidence, 0.49))
    return FrameTrust(confidence, trusted, recon_dice, np.asarray(valid, dtype=bool), outlier, lv_intact, kept, on_level,
                      per_label[:, 0].copy())


def lv_reconstructs(lv_dice: np.ndarray, trust: FrameTrust) -> np.ndarray:
    """Whether LVs reconstruct as well as the sequence's good frames (the ``lv_intact`` test).

    Args:
        lv_dice: (n,) LV Dice of some frames (e.g. repaired copies) with their own reconstruction.
        trust: the sequence's trust (its ``lv_dice`` sets the reference).

    Returns:
        (n,) bool.
    """
    return np.asarray(lv_dice, dtype=np.float64) >= _lv_floor(trust.lv_dice)


def _lv_floor(sequence_lv_dice: np.ndarray) -> float:
    """The LV reconstruction Dice an intact LV reaches: the sequence's reference less ``NEIGHBOUR_DROP``."""
    return float(np.quantile(sequence_lv_dice, REFERENCE_QUANTILE)) - NEIGHBOUR_DROP[0]
