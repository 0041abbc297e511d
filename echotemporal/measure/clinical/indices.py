"""Indices of a view: ED/ES, EDV, ESV, EF and GLS from its per-frame measures.

The per-frame part of every index is gathered by :func:`~echotemporal.measure.clinical.frames.measure_frames`;
only ED/ES detection, EDV/ESV, EF and strain/GLS depend on the whole curve (:func:`indices_from_measures`),
so a corrected sequence re-measures only the frames that changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echotemporal.measure.clinical.cycles import detect_beats
from echotemporal.core.labels import as_label_sequence, check_frame_index, check_spacing
from echotemporal.measure.clinical.frames import FrameMeasures, measure_frames
from echotemporal.measure.clinical.geometry import _warn_unmeasurable
from echotemporal.measure.clinical.strain import _strain_from_lengths

__all__ = [
    "ClinicalIndices",
    "clinical_indices",
    "detect_ed_es",
    "ejection_fraction_percent",
    "indices_from_measures",
]

# Relative peak-to-peak below which a volume curve is "flat": ED and ES are then undefined.
_FLAT_RELATIVE_RANGE = 1e-6


@dataclass(frozen=True)
class ClinicalIndices:
    """Clinical indices of one view (monoplane).

    Attributes:
        volumes_ml: (T,) LV volume per frame, Simpson monoplane, mL; NaN where unmeasurable.
        strain_percent: (T,) segmentation-derived longitudinal strain per frame relative to ED, %.
        ed_frame: 0-based end-diastolic frame (given, or detected from ``volumes_ml``).
        es_frame: 0-based end-systolic frame.
        edv_ml: end-diastolic volume, mL.
        esv_ml: end-systolic volume, mL.
        ef_percent: ejection fraction ``100·(EDV−ESV)/EDV``, %.
        gls_percent: segmentation-derived global longitudinal strain (strain at ES), %.
    """

    volumes_ml: np.ndarray
    strain_percent: np.ndarray
    ed_frame: int
    es_frame: int
    edv_ml: float
    esv_ml: float
    ef_percent: float
    gls_percent: float


def ejection_fraction_percent(edv_ml: float, esv_ml: float) -> float:
    """Ejection fraction ``100·(EDV − ESV)/EDV``.

    Args:
        edv_ml: end-diastolic volume, mL.
        esv_ml: end-systolic volume, mL.

    Returns:
        EF in %, unrounded; NaN (with a warning) when EDV is not a positive finite number or ESV is NaN.
    """
    edv, esv = float(edv_ml), float(esv_ml)
    if not (np.isfinite(edv) and edv > 0 and np.isfinite(esv)):
        warnings.warn(
            f"ejection_fraction_percent: EDV={edv:g} mL, ESV={esv:g} mL cannot give an EF; returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return 100.0 * (edv - esv) / edv


#: The EF (points) of an input below which a correction cannot be said to turn its volume curve over:
#: a heart that barely contracts has ED and ES volumes within the border flicker of each other.
EF_TURNED_MARGIN = 5.0


def ef_points(edv_ml: float, esv_ml: float) -> float:
    """``100·(EDV − ESV)/EDV``; NaN, silently, unless both volumes (mL) are finite and EDV > 0 (for
    judging volumes that may be unmeasurable; :func:`ejection_fraction_percent` warns)."""
    edv, esv = float(edv_ml), float(esv_ml)
    return 100.0 * (edv - esv) / edv if np.isfinite(edv) and np.isfinite(esv) and edv > 0 else float("nan")


def turns_over(before_ml: tuple[float, float], after_ml: tuple[float, float]) -> bool:
    """Whether a correction turns the volume curve over: its (EDV, ESV) ``after_ml`` (mL) put the ESV at
    or above a positive EDV where the input's ``before_ml`` showed a contraction (an EF of at least
    ``EF_TURNED_MARGIN`` points). False where a volume is NaN or an EDV is not positive."""
    return bool(ef_points(*after_ml) <= 0 and ef_points(*before_ml) >= EF_TURNED_MARGIN)


def _ed_es_or_none(volumes: np.ndarray, ed: int | None = None, es: int | None = None) -> tuple[int, int] | None:
    """The first beat's (ED, ES) by :func:`cycles.detect_beats` (given ED or ES kept); on a curve too
    short for it, the largest volume and the smallest after it; None if it cannot tell (flat or NaN
    curve, or no ED followed by an ES)."""
    v = np.asarray(volumes, dtype=np.float64).ravel()
    if np.isfinite(v).sum() < 2:
        return None
    lo, hi = np.nanmin(v), np.nanmax(v)
    if hi - lo <= _FLAT_RELATIVE_RANGE * max(abs(hi), np.finfo(float).tiny):
        return None
    cycles = detect_beats(v, ed_frames=ed, es_frames=es)
    if cycles.n_beats:
        return cycles.beats[0]
    if cycles.reason is None or not cycles.reason.startswith("too short"):
        return None
    # Too short to see a cycle (e.g. an ED/ES pair): ED the largest volume, ES the smallest after it.
    high = np.where(np.isfinite(v), v, -np.inf)
    ed = int(np.argmax(high)) if ed is None else ed
    after = np.where(np.isfinite(v), v, np.inf)[ed + 1 :]
    if es is None:
        if not np.isfinite(after).any():
            return None
        es = ed + after.size - int(np.argmin(after[::-1]))
    return ed, es


def detect_ed_es(volumes_ml: np.ndarray) -> tuple[int, int]:
    """End-diastolic and end-systolic frames of the first beat of a volume curve.

    The first beat of :func:`echotemporal.measure.clinical.cycles.detect_beats` (robust to glitched frames;
    full cycles and several beats; ``es < ed`` for a sequence stored ES → ED). On a tie the first
    maximum is ED and the last frame of an end-systolic plateau is ES; NaN frames are ignored.

    Args:
        volumes_ml: (T,) LV volume per frame, mL.

    Returns:
        (ed_frame, es_frame), 0-based; a curve too short for beat detection (fewer than 4 frames, e.g.
        an ED/ES pair) gives its largest volume and the smallest after it. When the curve cannot tell
        them apart (a flat or NaN curve, no ED followed by an ES) a RuntimeWarning is issued and the CAMUS
        half-sequence convention ``(0, T − 1)`` is returned; ``clinical_indices`` then reports NaN
        indices rather than trusting it.
    """
    v = np.asarray(volumes_ml, dtype=np.float64).ravel()
    found = _ed_es_or_none(v)
    if found is None:
        warnings.warn(
            "detect_ed_es: the volume curve is flat, NaN, or peaks on its last frame, so ED/ES cannot be "
            f"detected; assuming the CAMUS half-sequence convention ED=0, ES={max(len(v) - 1, 0)} "
            "(give ED/ES: the Info cfg, --info or --ed/--es)",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0, max(len(v) - 1, 0)
    return found


def clinical_indices(
    labels: np.ndarray,
    spacing_mm: Sequence[float],
    ed_frame: int | None = None,
    es_frame: int | None = None,
) -> ClinicalIndices:
    """Volume curve, EDV, ESV, EF and segmentation-derived strain/GLS of one view (monoplane Simpson).

    Args:
        labels: (T, H, W) uint8 CAMUS label sequence, apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        ed_frame: 0-based ED frame (e.g. from the Info cfg); detected from the volume curve if None
            (largest volume; given ES, the largest volume before it).
        es_frame: 0-based ES frame; detected if None (smallest volume after ED).

    Returns:
        ClinicalIndices. If ED/ES are not given and cannot be detected (flat or NaN curve) a warning is
        issued, the frames fall back to ``(0, T − 1)`` and EDV, ESV, EF and GLS are NaN.

    Warns:
        RuntimeWarning: unmeasurable frames, undetectable ED/ES.
    """
    seq = as_label_sequence(labels)
    spacing = np.asarray(check_spacing(spacing_mm))
    check_frame_index(ed_frame, len(seq), "ed_frame")
    check_frame_index(es_frame, len(seq), "es_frame")
    return _indices(measure_frames(seq, spacing), ed_frame, es_frame, "clinical_indices")


def indices_from_measures(
    measures: FrameMeasures, ed_frame: int | None = None, es_frame: int | None = None
) -> ClinicalIndices:
    """:func:`clinical_indices` from per-frame measures (:func:`measure_frames`): the same result.

    Args:
        measures: per-frame measures of the sequence.
        ed_frame, es_frame: 0-based ED/ES; detected from ``measures.volumes_ml`` when None.

    Returns:
        ClinicalIndices, equal to ``clinical_indices(labels, ...)`` on the labels that were measured.

    Warns:
        RuntimeWarning: unmeasurable frames, undetectable ED/ES.
    """
    return _indices(measures, ed_frame, es_frame, "clinical_indices")  # the same indices, the same warnings


def _indices(measures: FrameMeasures, ed_frame: int | None, es_frame: int | None, what: str) -> ClinicalIndices:
    n = len(measures.volumes_ml)
    ed = check_frame_index(ed_frame, n, "ed_frame")
    es = check_frame_index(es_frame, n, "es_frame")
    _warn_unmeasurable(what, measures.unmeasurable, stacklevel=3)
    volumes = measures.volumes_ml.copy()

    detected = (ed, es) if ed is not None and es is not None else _ed_es_or_none(volumes, ed, es)
    if detected is None:
        warnings.warn(
            f"{what}: ED/ES cannot be detected from a flat or NaN volume curve; EDV, ESV, EF and "
            "GLS set to NaN (give ED/ES: the Info cfg, --info or --ed/--es)",
            RuntimeWarning,
            stacklevel=3,
        )
        ed = ed if ed is not None else 0
        es = es if es is not None else n - 1
        strain = _strain_from_lengths(measures.contour_mm, ed)
        nan = float("nan")
        return ClinicalIndices(volumes, strain, ed, es, nan, nan, nan, nan)

    ed, es = detected
    strain = _strain_from_lengths(measures.contour_mm, ed)
    edv, esv = float(volumes[ed]), float(volumes[es])
    with warnings.catch_warnings():
        # The unmeasurable ED/ES frame was already reported above.
        warnings.simplefilter("ignore", RuntimeWarning)
        ef = ejection_fraction_percent(edv, esv)
    return ClinicalIndices(volumes, strain, ed, es, edv, esv, ef, float(strain[es]))
