"""The border-flicker denoise of a corrected sequence: a short temporal Gaussian of the frames between
ED and ES, a turning-point fit of ED and ES themselves, each kept only where harmless."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.core.labels import LV, MYO
from echotemporal.correct.baselines import gaussian_smooth_labels
from echotemporal.correct.cleanup import cleanup_decoded
from echotemporal.correct.repair import accept_replacements
from echotemporal.measure.sequence import ShapeMeasures, heart_box, measure_shape, present_labels

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["DENOISE_MIN_CHANGE", "denoise", "fit_turning_points", "turning_frames", "turning_point_weights"]


#: Denoising replaces only frames where it changes more than this fraction of the LV∪MYO pixels.
DENOISE_MIN_CHANGE = 0.002


def denoise(
    out: np.ndarray,
    shape: ShapeMeasures,
    spacing_mm: tuple[float, float],
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    anchors: tuple[int, ...],
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Temporal Gaussian of the corrected sequence's one-hot maps, kept only where it does no harm.

    Segmenters and annotators draw every frame's borders anew: a ~1 px flicker that the shape
    correction, which leaves consistent frames alone, keeps. Once the sequence is consistent, a
    short temporal Gaussian (sigma = ``config.denoise_sigma_frames``) averages that
    flicker away. Each smoothed frame is cleaned up like a decoded one and kept only if it is
    anatomically valid and makes no frame inconsistent (and changes more than
    :data:`DENOISE_MIN_CHANGE` of its LV∪MYO pixels); the ``anchors`` (ED, ES) keep their
    corrected borders, as averaging the volume curve's extremes with their neighbours biases EDV
    and ESV.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).
        anchors: frames never smoothed.
        allowed: (T,) bool, the only frames that may be smoothed (None: all but the anchors).

    Returns:
        (labels, measures).
    """
    n = len(out)
    rows, cols = heart_box(out, margin=2)
    original = out[:, rows, cols]
    crop = gaussian_smooth_labels(original, float(config.denoise_sigma_frames))
    # Frames the filter barely touches are left alone: measuring them again would cost more than
    # the few border pixels they would lose.
    changed = (crop != original).reshape(n, -1).sum(axis=1)
    heart = ((original == LV) | (original == MYO)).reshape(n, -1).sum(axis=1)
    candidate = changed > DENOISE_MIN_CHANGE * np.maximum(heart, 1)
    candidate[[a for a in anchors if 0 <= a < n]] = False
    if allowed is not None:
        candidate &= allowed
    if not candidate.any():
        return out, shape
    smoothed = out.copy()
    # Only the frames the filter changed are cleaned up (and later measured).
    window = smoothed[:, rows, cols]  # a view: writes go to ``smoothed``
    window[candidate] = cleanup_decoded(np.ascontiguousarray(crop[candidate]), spacing_mm, shape.present)
    candidate &= (smoothed != out).reshape(n, -1).any(axis=1)
    return accept_replacements(out, shape, smoothed, candidate, spacing_mm, thresholds)


def turning_point_weights(offsets: np.ndarray) -> np.ndarray:
    """Least-squares weights of the value at offset 0 for the model ``a + c·τ²`` (a turning point).

    Args:
        offsets: (m,) frame offsets τ from the turning frame (0 and at least one other).

    Returns:
        (m,) weights summing to 1: Σ w·d(τ) is the fitted value at τ = 0, exact for a curve that
        is quadratic with zero slope there (a volume curve at ED or ES). On a symmetric window these
        are the Savitzky-Golay weights; at an end of the sequence the window is one-sided.
    """
    tau2 = np.asarray(offsets, dtype=np.float64) ** 2
    design = np.stack([np.ones_like(tau2), tau2], axis=1)
    return np.linalg.pinv(design)[0]


def turning_frames(shape: ShapeMeasures, thresholds: AttributeThresholds) -> tuple[int, ...]:
    """ED and ES frames of every beat of the LV area curve of ``shape`` (a corrected sequence, its
    attributes in ``thresholds.names`` order), for a sequence given without ED/ES; () when the
    curve shows no beat."""
    from echotemporal.measure.clinical.cycles import detect_beats

    area = shape.attributes[:, thresholds.index("lv_area_mm2")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a flat or too short curve: no beat, nothing to fit
        cycles = detect_beats(area)
    return tuple(sorted({int(t) for t in (*cycles.ed_frames, *cycles.es_frames)}))


def fit_turning_points(
    out: np.ndarray,
    shape: ShapeMeasures,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
    turning: tuple[int, ...],
    half_window: int,
    flicker_bound: float = 1.0,
    support: np.ndarray | None = None,
    borders: np.ndarray | None = None,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Average the border flicker of the ED and ES frames without biasing the volume's extremes.

    The temporal Gaussian of :func:`denoise` cannot touch ED and ES: averaging an extremum with its
    neighbours pulls EDV down and ESV up. Yet their flicker is what EF and GLS read. Here each
    turning frame's signed distances (every label, mm) are replaced by the least-squares fit of
    ``a + c·τ²`` over the frames within ``half_window`` of it that hold the same labels (one-sided
    at an end of the sequence; :func:`turning_point_weights`): the flicker of up to
    ``2·half_window + 1`` frames is averaged while a quadratic extremum stays where it is. Kept only
    where the fit moves no attribute further than flicker does (farther, the neighbours disagree
    with the frame), and the fitted frame is valid and makes no frame inconsistent.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).
        turning: the ED and ES frames (0-based); half_window: frames each side (< 1 does nothing).
        flicker_bound: a fitted frame whose attributes move by more than this many consistency
            tolerances (``thresholds.tolerance``) keeps its borders; 0 accepts any move.
        support: (T,) bool, frames that may lend their borders to another frame's fit (None: all).
            Frames the correction rebuilt or moved carry the model's shape, not the annotator's
            flicker: averaged in, they pull an as-drawn ED or ES toward the model.
        borders: (T, H, W) labels whose frames lend their borders to the fits (None: ``out``): the
            sequence before the temporal Gaussian, whose averaged neighbours of an extremum sit
            inside it and would pull the fitted ED or ES toward the mean.

    Returns:
        (labels, measures).
    """
    from echotemporal.core.distances import labels_from_distances
    from echotemporal.correct.repair import DistanceBlend

    n = len(out)
    turning = tuple(t for t in dict.fromkeys(turning) if 0 <= t < n)
    if half_window < 1 or n < 3 or not turning:
        return out, shape
    lend = out if borders is None else borders
    rows, cols = heart_box(lend, margin=2)
    blend = DistanceBlend(lend, spacing_mm, (rows, cols))
    fitted = out.copy()
    window = fitted[:, rows, cols]  # a view: writes go to ``fitted``
    candidate = np.zeros(n, dtype=bool)
    labels_of = lambda f: present_labels(lend[f : f + 1, rows, cols])  # noqa: E731
    for t in turning:
        frames = np.arange(max(t - half_window, 0), min(t + half_window, n - 1) + 1)
        # Only frames with the turning frame's labels: an absent label's distance is a constant
        # (1e6) that a negative weight would turn into that label everywhere.
        own = labels_of(t)
        frames = frames[[labels_of(f) == own and (f == t or support is None or bool(support[f])) for f in frames]]
        if frames.size < 2:
            continue
        weights = turning_point_weights(frames - t)
        window[t] = labels_from_distances(sum(w * blend.distance(int(f)) for w, f in zip(weights, frames)))
        candidate[t] = True
    if not candidate.any():
        return out, shape
    window[candidate] = cleanup_decoded(np.ascontiguousarray(window[candidate]), spacing_mm, shape.present)
    candidate &= (fitted != out).reshape(n, -1).any(axis=1)
    if candidate.any() and flicker_bound > 0:
        # Flicker only: a fit that moves an attribute by more than a clean frame may sit from its
        # neighbours (``flicker_bound`` × the consistency tolerance) follows neighbours that
        # disagree with the frame (rebuilt, or still off), not the frame's own flicker.
        fit_rows = np.flatnonzero(candidate)
        moved = measure_shape(fitted[fit_rows], spacing_mm, thresholds, validity=False).attributes - shape.attributes[fit_rows]
        candidate[fit_rows] = ~(np.abs(moved) > flicker_bound * thresholds.tolerance).any(axis=1)
    if not candidate.any():
        return out, shape
    return accept_replacements(out, shape, fitted, candidate, spacing_mm, thresholds)
