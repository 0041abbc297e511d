"""Indices of a view or a patient: ED/ES, EF, GLS, biplane volumes, and per-frame measures for reuse.

The per-frame part of every index (Simpson volume, hinge-to-hinge contour length) is gathered by
:func:`measure_frames`; only ED/ES detection, EDV/ESV, EF and strain/GLS depend on the whole curve
(:func:`indices_from_measures`). A corrected sequence therefore re-measures only the frames that
changed: explicitly (``measure_frames(..., reference=...)``), and in any case through a small memo of
per-frame measures keyed by the frame's pixels (a frame's measures depend on nothing else), which
also serves a batch's biplane indices from the monoplane pass.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from echotemporal.measure.clinical.cycles import detect_beats
from echotemporal.measure.clinical.geometry import (
    _crop_geometry,
    _geometries,
    _heart_crop,
)
from echotemporal.measure.clinical.strain import (
    STRAIN_POINTS,
    _contour_length_mm,
    _strain_from_lengths,
)
from echotemporal.measure.clinical.volume import (
    _MM3_PER_ML,
    N_DISKS,
    _diameters_and_lengths,
    _monoplane_ml,
)
from echotemporal.core.errors import ConfigError
from echotemporal.core.labels import as_label_sequence, check_frame_index, check_spacing
from echotemporal.core.parallel import map_threads

__all__ = [
    "ClinicalIndices",
    "FrameMeasures",
    "biplane_volumes_from_measures",
    "biplane_volumes_ml",
    "clinical_indices",
    "detect_ed_es",
    "ejection_fraction_percent",
    "indices_from_measures",
    "measure_frames",
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


@dataclass(frozen=True)
class FrameMeasures:
    """Per-frame LV measures of a sequence: what the clinical indices need of each frame alone.

    Attributes:
        volumes_ml: (T,) LV volume, Simpson monoplane, mL; NaN where unmeasurable.
        contour_mm: (T,) length of the hinge → apex → hinge endocardial contour (strain's numerator),
            mm; NaN where unmeasurable.
        unmeasurable: (T,) why each frame is unmeasurable ("no LV", "no mitral hinges", ...), None
            where it was measured.
        diameters_mm: (T, N_DISKS) Simpson disk diameters, base first (biplane volumes need them).
        lengths_mm: (T,) LV long-axis length, mm.
    """

    volumes_ml: np.ndarray
    contour_mm: np.ndarray
    unmeasurable: tuple[str | None, ...]
    diameters_mm: np.ndarray  # (T, N_DISKS) Simpson disk diameters, base first; NaN rows where unmeasurable
    lengths_mm: np.ndarray  # (T,) long-axis length; NaN where unmeasurable

    def reversed(self) -> FrameMeasures:
        return FrameMeasures(
            self.volumes_ml[::-1].copy(),
            self.contour_mm[::-1].copy(),
            self.unmeasurable[::-1],
            self.diameters_mm[::-1].copy(),
            self.lengths_mm[::-1].copy(),
        )


def measure_frames(
    labels: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    reference: tuple[np.ndarray, FrameMeasures] | None = None,
    threads: int = 1,
) -> FrameMeasures:
    """Per-frame LV volume and endocardial contour length of every frame (no warning: see ``unmeasurable``).

    A frame's measures depend on its own pixels only (not on the other frames, nor on where the array
    was cropped), so frames identical to those of another version of the sequence can take that
    version's measures: a corrected sequence re-measures only the frames the correction changed.

    Args:
        labels: (T, H, W) uint8 CAMUS label sequence (or one (H, W) frame), apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        reference: (labels (T, H, W) of the same shape, their measures at the same spacing): frames
            equal to the reference's take its measures instead of being measured again.
        threads: frames measured in parallel by this many threads (same result).

    Returns:
        FrameMeasures.
    """
    seq = as_label_sequence(labels)
    spacing = np.asarray(check_spacing(spacing_mm))
    n = len(seq)
    volumes = np.full(n, np.nan)
    contour = np.full(n, np.nan)
    diameters = np.full((n, N_DISKS), np.nan)
    lengths = np.full(n, np.nan)
    reasons: list[str | None] = [None] * n
    todo = np.ones(n, dtype=bool)
    if reference is not None:
        ref_labels, ref = reference
        ref_labels = np.asarray(ref_labels)
        if ref_labels.shape != seq.shape or len(ref.volumes_ml) != n:
            raise ConfigError(
                f"reference labels of shape {ref_labels.shape} with {len(ref.volumes_ml)} measured frames "
                f"do not match labels of shape {seq.shape}; pass the reference version of the same sequence"
            )
        todo = (seq != ref_labels).reshape(n, -1).any(axis=1)
        volumes[~todo] = ref.volumes_ml[~todo]
        contour[~todo] = ref.contour_mm[~todo]
        diameters[~todo] = ref.diameters_mm[~todo]
        lengths[~todo] = ref.lengths_mm[~todo]
        reasons = [None if todo[t] else ref.unmeasurable[t] for t in range(n)]
    rows = [int(t) for t in np.flatnonzero(todo)]
    frame = lambda t: _frame_measures(seq[t], spacing)
    results = map_threads(frame, rows, threads)
    for t, (volume, length, reason, diameter, axis) in zip(rows, results):
        volumes[t], contour[t], reasons[t], diameters[t], lengths[t] = volume, length, reason, diameter, axis
    return FrameMeasures(volumes, contour, tuple(reasons), diameters, lengths)


#: Per-frame measures by the content of the frame's heart window: a frame is measured once however
#: often it recurs (a sequence and its correction share most frames, and a batch measures each view
#: again for the patient's biplane). Bounded: a few hundred frames of a few hundred bytes each.
_MEMO_SIZE = 512
_MEMO: OrderedDict[tuple[Any, ...], tuple[float, float, str | None, np.ndarray, float]] = OrderedDict()
_MEMO_LOCK = threading.Lock()


def _frame_measures(frame: np.ndarray, spacing: np.ndarray) -> tuple[float, float, str | None, np.ndarray, float]:
    """(volume mL, contour mm, None, diameters, axis length) of one (H, W) frame; NaN and why if unmeasurable.

    The geometry depends only on the frame's heart window (:func:`geometry._heart_crop`) and the
    spacing, so results are remembered by a digest of exactly those.
    """
    crop = _heart_crop(frame)
    if crop is None:
        return np.nan, np.nan, "no LV", np.full(N_DISKS, np.nan), np.nan
    window = np.ascontiguousarray(crop)
    # SHA-256: hardware-accelerated on current CPUs, about twice as fast as BLAKE2 on a heart window.
    key = (window.shape, window.dtype.str, np.asarray(spacing, dtype=np.float64).tobytes(),
           hashlib.sha256(window.data).digest())
    with _MEMO_LOCK:
        found = _MEMO.get(key)
        if found is not None:
            _MEMO.move_to_end(key)
            return found
    geom = _crop_geometry(window, spacing)
    if isinstance(geom, str):
        result: tuple[float, float, str | None, np.ndarray, float] = (
            np.nan, np.nan, geom, np.full(N_DISKS, np.nan), np.nan
        )
    else:
        diameters, lengths = _diameters_and_lengths([geom], N_DISKS)
        volume = float(_monoplane_ml(diameters, lengths)[0])
        result = (volume, _contour_length_mm(geom, STRAIN_POINTS), None, diameters[0], float(lengths[0]))
    result[3].flags.writeable = False  # shared by every caller that meets this frame again
    with _MEMO_LOCK:
        _MEMO[key] = result
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return result

def _normalized_time(n_frames: int, ed: int, es: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames between ED and ES (either storage order) and their normalized time 0 (ED) .. 1 (ES)."""
    frames = np.arange(n_frames)
    t = (frames - ed) / (es - ed)
    inside = (t >= 0) & (t <= 1)
    order = np.argsort(t[inside])
    return frames[inside][order], t[inside][order]


def biplane_volumes_ml(
    labels_2ch: np.ndarray,
    spacing_2ch: Sequence[float],
    labels_4ch: np.ndarray,
    spacing_4ch: Sequence[float],
    *,
    ed_es_2ch: tuple[int, int] | None = None,
    ed_es_4ch: tuple[int, int] | None = None,
    n_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """LV volume curve by Simpson's biplane method of disks: ``V = π/4·Σ a_i·b_i·h``.

    ``a_i`` are the 2CH disk diameters, ``b_i`` the 4CH ones, ``h = max(L_2CH, L_4CH)/n_disks``. The
    two views usually have different frame counts, so each view's per-disk diameters and length are
    linearly interpolated on a common normalized time grid, 0 at ED and 1 at ES, before pairing.
    A view stored ES→ED is handled (its ED index is then the larger one).

    Args:
        labels_2ch: (T2, H, W) uint8 apical two-chamber label sequence.
        spacing_2ch: (row_mm, col_mm) of the 2CH sequence.
        labels_4ch: (T4, H', W') uint8 apical four-chamber label sequence.
        spacing_4ch: (row_mm, col_mm) of the 4CH sequence.
        ed_es_2ch: 0-based (ED, ES) frames of the 2CH view; detected from its monoplane volume
            curve when None.
        ed_es_4ch: same for the 4CH view.
        n_samples: number of points of the common grid; default the larger number of frames
            between ED and ES of the two views.

    Returns:
        t: (N,) normalized time, 0 (ED) .. 1 (ES).
        volumes: (N,) biplane LV volume in mL; NaN where either view is unmeasurable.

    Warns:
        RuntimeWarning: unmeasurable frames, undetectable or coinciding ED/ES.
    """
    views = []
    for name, labels, spacing_mm in (("2CH", labels_2ch, spacing_2ch), ("4CH", labels_4ch, spacing_4ch)):
        seq = as_label_sequence(labels)
        spacing = np.asarray(check_spacing(spacing_mm))
        views.append(_diameters_and_lengths(_geometries(seq, spacing, f"biplane {name}"), N_DISKS))
    return _biplane(views, ed_es_2ch, ed_es_4ch, n_samples)


def biplane_volumes_from_measures(
    measures_2ch: FrameMeasures,
    measures_4ch: FrameMeasures,
    *,
    ed_es_2ch: tuple[int, int] | None = None,
    ed_es_4ch: tuple[int, int] | None = None,
    n_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`biplane_volumes_ml` from the views' per-frame measures (:func:`measure_frames`): the same
    result, without measuring frames again (e.g. the unchanged frames of a corrected sequence).

    Warns:
        RuntimeWarning: undetectable or coinciding ED/ES (unmeasurable frames are in ``unmeasurable``).
    """
    views = [(m.diameters_mm, m.lengths_mm) for m in (measures_2ch, measures_4ch)]
    return _biplane(views, ed_es_2ch, ed_es_4ch, n_samples)


def _biplane(
    views: list[tuple[np.ndarray, np.ndarray]],
    ed_es_2ch: tuple[int, int] | None,
    ed_es_4ch: tuple[int, int] | None,
    n_samples: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Biplane curve from ((T, N_DISKS) diameters, (T,) lengths) of the 2CH and 4CH views."""
    per_view = []
    for name, (diameters, lengths), ed_es in zip(("2CH", "4CH"), views, (ed_es_2ch, ed_es_4ch)):
        if ed_es is None:
            ed, es = detect_ed_es(_monoplane_ml(diameters, lengths))
        else:
            ed = check_frame_index(ed_es[0], len(lengths), f"ed_es_{name.lower()}[0]")
            es = check_frame_index(ed_es[1], len(lengths), f"ed_es_{name.lower()}[1]")
        per_view.append((name, diameters, lengths, ed, es))

    n_default = max(abs(v[4] - v[3]) + 1 for v in per_view)
    n = int(n_samples) if n_samples is not None else n_default
    grid = np.linspace(0.0, 1.0, max(n, 1))
    if any(v[3] == v[4] for v in per_view):
        names = ", ".join(v[0] for v in per_view if v[3] == v[4])
        warnings.warn(
            f"biplane_volumes_ml: ED and ES are the same frame in {names}; normalized time is undefined, "
            "volumes set to NaN (pass ed_es_2ch/ed_es_4ch from the Info cfg)",
            RuntimeWarning,
            stacklevel=3,
        )
        return grid, np.full(grid.shape, np.nan)

    resampled = []
    for _, diameters, lengths, ed, es in per_view:
        frames, t = _normalized_time(len(lengths), ed, es)
        # np.interp carries NaN into every interval that touches an unmeasurable frame: honest gaps.
        d = np.stack([np.interp(grid, t, diameters[frames, i]) for i in range(diameters.shape[1])], axis=1)
        resampled.append((d, np.interp(grid, t, lengths[frames])))
    (a, length_a), (b, length_b) = resampled
    h = np.maximum(length_a, length_b) / N_DISKS
    volumes = np.pi / 4 * np.sum(a * b, axis=1) * h / _MM3_PER_ML
    return grid, volumes


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
            "(pass ed_frame/es_frame from the Info cfg)",
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
    failures = [f"{t} ({why})" for t, why in enumerate(measures.unmeasurable) if why is not None]
    if failures:
        warnings.warn(
            f"{what}: {len(failures)} of {n} frames unmeasurable, set to NaN: " + ", ".join(failures),
            RuntimeWarning,
            stacklevel=3,
        )
    volumes = measures.volumes_ml.copy()

    detected = (ed, es) if ed is not None and es is not None else _ed_es_or_none(volumes, ed, es)
    if detected is None:
        warnings.warn(
            f"{what}: ED/ES cannot be detected from a flat or NaN volume curve; EDV, ESV, EF and "
            "GLS set to NaN (pass ed_frame/es_frame from the Info cfg)",
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
