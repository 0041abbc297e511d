"""Cardiac cycles of an LV volume curve: ED and ES of every beat (per-beat indices and rates: ``beats``).

A sequence may be a CAMUS half-sequence (ED → ES), stored ES → ED, a full cycle (ED → ES → ED) or
several beats. :func:`detect_beats` finds the beats on a robustly smoothed copy of the curve (so a
glitched frame cannot become ED or ES), then refines each extremum on the curve it was given, among
the frames that agree with the smoothed curve. :func:`beat_indices` gives EDV, ESV, SV, EF and GLS per
beat, :func:`summarize_beats` their mean ± SD, and :func:`volume_rates` the peak ejection and peak
filling rates and the time to peak filling of every beat (those three in :mod:`.beats`).

Pairing convention: a beat is an ED followed by its ES (ejection), then filling up to the next ED or the
end of the sequence. In a full cycle (ED → ES → ED) the first ED pairs with the ES; the closing ED only
ends that beat's filling. A sequence that starts at ES and ends at ED (stored ES → ED) is one beat
whose ED frame is *after* its ES frame (``es_frame < ed_frame``, as the Info cfg of such a CAMUS file
says). A leading filling phase without its ejection (the sequence starts in systole or diastole) is no
beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echotemporal.core.errors import ConfigError
from echotemporal.measure.clinical.filters import find_peaks, savgol_filter

__all__ = ["BEAT_KINDS", "CardiacCycles", "detect_beats", "robust_smooth"]

#: Kinds of sequence :func:`detect_beats` tells apart; "unknown" when it cannot tell.
BEAT_KINDS: tuple[str, ...] = ("half", "es-to-ed", "full", "multi", "unknown")

#: Savitzky–Golay window (frames) and polynomial order of the detection smoothing.
_SG_WINDOW = 5
_SG_ORDER = 2


@dataclass(frozen=True, eq=False)  # eq=False: ndarray field
class CardiacCycles:
    """Beats of a volume curve.

    Attributes:
        ed_frames: (B,) 0-based end-diastolic frame of each beat, in time order of the beats.
        es_frames: (B,) 0-based end-systolic frame of each beat (``es < ed`` for an ES → ED beat).
        end_frames: (B,) last frame of each beat's filling phase (the next ED, a closing ED, or the
            last frame; equal to the ES frame when the sequence ends at ES; the ED frame of an
            ES → ED beat).
        kind: one of :data:`BEAT_KINDS`: "half" (ED → ES), "es-to-ed", "full" (ED → ES → ED), "multi"
            (two beats or more), "unknown" (no beat).
        reason: why no beat was found (flat, too short or NaN curve); None when beats were found.
        source: "detected" or "given" (explicit ED/ES).
        smoothed_ml: (T,) the robustly smoothed volume curve the beats were found on, mL.
    """

    ed_frames: tuple[int, ...]
    es_frames: tuple[int, ...]
    end_frames: tuple[int, ...]
    kind: str
    reason: str | None
    source: str
    smoothed_ml: np.ndarray

    @property
    def n_beats(self) -> int:
        """Number of beats B."""
        return len(self.ed_frames)

    @property
    def beats(self) -> list[tuple[int, int]]:
        """(ED, ES) frame pairs, one per beat."""
        return list(zip(self.ed_frames, self.es_frames))


def _fill_nan(v: np.ndarray) -> np.ndarray:
    """(T,) curve with NaN frames linearly interpolated (held constant beyond the finite ends)."""
    finite = np.isfinite(v)
    if finite.all() or not finite.any():
        return v.copy()
    t = np.arange(len(v))
    return np.interp(t, t[finite], v[finite])


def _median3(v: np.ndarray) -> np.ndarray:
    """Running median of 3 frames; each end frame takes the median of the first (last) three frames,
    so a glitch *on* the first or last frame, or next to it, is removed too (edge replication, the
    usual padding, keeps a glitch on the end frame)."""
    out = v.copy()
    if len(v) < 3:
        return out
    out[1:-1] = np.median(np.lib.stride_tricks.sliding_window_view(v, 3), axis=1)
    out[0], out[-1] = np.median(v[:3]), np.median(v[-3:])
    return out


def robust_smooth(volumes_ml: np.ndarray) -> np.ndarray:
    """Glitch-robust light smoothing of a volume curve.

    A running median of 3 frames (ends: the median of the three end frames) removes single-frame glitches; a
    Savitzky–Golay filter (5 frames, quadratic; Savitzky & Golay, Anal. Chem. 1964) then removes the
    staircase noise of the masks while keeping the height of the extrema far better than a moving
    average of the same width. NaN frames are interpolated first.

    Args:
        volumes_ml: (T,) LV volume per frame, mL; NaN where unmeasurable.

    Returns:
        (T,) smoothed curve, mL (a copy; unchanged below 3 frames; all NaN if no frame is finite).
    """
    v = _fill_nan(np.asarray(volumes_ml, dtype=np.float64).ravel())
    if not np.isfinite(v).any():
        return v
    s = _median3(v)
    if len(s) >= _SG_WINDOW:
        s = savgol_filter(s, _SG_WINDOW, _SG_ORDER)
    return s


def _check_frames(frames: int | Sequence[int] | None, n: int, name: str) -> list[int] | None:
    if frames is None:
        return None
    values = [frames] if np.isscalar(frames) else list(frames)  # type: ignore[list-item]
    out = []
    for f in values:
        i = int(f)
        if i != f or not 0 <= i < n:
            raise ConfigError(
                f"{name}={frames!r}: frame {f!r} is outside the sequence's {n} frames; frames are 0-based "
                f"(0..{n - 1}), Info cfg files 1-based; or leave {name} out to detect it from the volume curve"
            )
        out.append(i)
    return out


def _refine(v: np.ndarray, s: np.ndarray, trusted: np.ndarray, index: int, radius: int,
            lo: int, hi: int, maximum: bool) -> int:
    """The extremum of the given curve ``v`` within ``radius`` frames of ``index`` (kept in ``lo..hi``);
    frames that disagree with the smoothed curve ``s`` (not ``trusted``) count with their smoothed value,
    NaN frames not at all."""
    window = np.arange(max(lo, index - radius), min(hi, index + radius) + 1)
    values = np.where(trusted[window], v[window], s[window])  # a glitch competes with its smoothed value
    values = np.where(np.isfinite(v[window]), values if maximum else -values, -np.inf)  # NaN: no volume
    if not np.isfinite(values).any():
        return index
    # Ties: the first maximum is ED; the last frame of an end-systolic plateau is ES (identical ES masks).
    return int(window[np.argmax(values)]) if maximum else int(window[::-1][np.argmax(values[::-1])])


def _alternate(extrema: list[tuple[int, bool]], s: np.ndarray) -> list[tuple[int, bool]]:
    """Sorted (frame, is_max) list with consecutive extrema of one type merged (the more extreme kept)."""
    out: list[tuple[int, bool]] = []
    for frame, is_max in sorted(extrema):
        if out and out[-1][1] == is_max:
            prev = out[-1][0]
            better = s[frame] > s[prev] if is_max else s[frame] < s[prev]
            if better:
                out[-1] = (frame, is_max)
        else:
            out.append((frame, is_max))
    return out


def _kind(n_beats: int, eds: list[int], ess: list[int], ends: list[int]) -> str:
    if n_beats == 0:
        return "unknown"
    if n_beats > 1:
        return "multi"
    if ess[0] < eds[0]:
        return "es-to-ed"
    return "full" if ends[0] > ess[0] else "half"


def detect_beats(
    volumes_ml: np.ndarray,
    *,
    ed_frames: int | Sequence[int] | None = None,
    es_frames: int | Sequence[int] | None = None,
    prominence_fraction: float = 0.3,
    min_relative_range: float = 0.02,
    min_frames: int = 4,
    refine_frames: int = 1,
) -> CardiacCycles:
    """ED and ES frames of every beat of an LV volume curve.

    The curve is smoothed robustly (:func:`robust_smooth`). Interior maxima (ED) and minima (ES) are
    the peaks of the smoothed curve (``filters.find_peaks``) whose prominence is at least
    ``prominence_fraction`` of the curve's range; the first and last frames are extrema when the
    curve falls (or rises) from them by that much to the nearest interior extremum (or across the whole
    curve, when there is none). Each extremum is then moved to the extremum of the given curve within
    ``refine_frames`` frames, among the frames whose value agrees with the smoothed curve (a glitch
    never becomes ED or ES). Beats pair each ES with the ED before it (module docstring).

    Explicit frames override detection: with both ``ed_frames`` and ``es_frames`` the beats are those
    pairs; with only one of them, each missing partner is the extremum of the given curve between
    the given frames (ES: the smallest volume after each ED, before the next, the last one on a tie;
    ED: the largest volume before each ES, after the previous, the first one on a tie).

    Args:
        volumes_ml: (T,) LV volume per frame, mL; NaN where unmeasurable (interpolated).
        ed_frames: 0-based ED frame(s), e.g. from the Info cfg; detected when None.
        es_frames: 0-based ES frame(s); detected when None.
        prominence_fraction: least rise/fall between an ED and an ES, as a fraction of the range.
        min_relative_range: a curve whose range is below this fraction of its largest value is flat.
        min_frames: fewer finite frames than this cannot tell ED from ES.
        refine_frames: search radius (frames) of the refinement on the given curve.

    Returns:
        CardiacCycles; with no beat, ``kind == "unknown"`` and ``reason`` says why.

    Raises:
        ConfigError: an explicit frame outside ``0..T-1``, or ED and ES lists of different lengths.
    """
    v = np.asarray(volumes_ml, dtype=np.float64).ravel()
    n = len(v)
    eds_given = _check_frames(ed_frames, n, "ed_frames")
    ess_given = _check_frames(es_frames, n, "es_frames")
    s = robust_smooth(v)
    if eds_given is not None and ess_given is not None:
        return _given_cycles(s, eds_given, ess_given)

    finite = np.isfinite(v)
    nothing = lambda why: CardiacCycles((), (), (), "unknown", why, "detected", s)  # noqa: E731
    if finite.sum() < max(min_frames, 2):
        return nothing(f"too short: {int(finite.sum())} measurable frames, at least {min_frames} needed "
                       "to tell ED from ES")
    span = float(s.max() - s.min())
    top = float(np.nanmax(np.abs(v)))
    if not span > min_relative_range * top:
        return nothing(f"flat: the volume curve varies by {span:.3g} mL, under {100 * min_relative_range:g} % "
                       "of its largest value")
    if eds_given is not None or ess_given is not None:
        return _partner(v, s, eds_given, ess_given)

    extrema = _smoothed_extrema(s, prominence_fraction * span, max(1, min_frames // 2))
    refined = _refine_extrema(v, s, finite, span, extrema, refine_frames)
    eds, ess, ends = _pair_beats(refined, n)
    if not eds:
        return nothing("no ED followed by an ES: the curve rises or falls less than "
                       f"{100 * prominence_fraction:g} % of its range between extrema")
    return CardiacCycles(tuple(eds), tuple(ess), tuple(ends), _kind(len(eds), eds, ess, ends), None, "detected", s)


def _given_cycles(s: np.ndarray, eds_given: list[int], ess_given: list[int]) -> CardiacCycles:
    """Beats from explicit ED and ES frames, paired in time order; ``s``: (T,) smoothed curve, mL."""
    n = len(s)
    if len(eds_given) != len(ess_given):
        raise ConfigError(
            f"ed_frames {eds_given} and es_frames {ess_given} have different lengths; give one ED and one "
            "ES per beat, or only one of them"
        )
    order = np.argsort([min(a, b) for a, b in zip(eds_given, ess_given)], kind="stable")
    eds = [eds_given[i] for i in order]
    ess = [ess_given[i] for i in order]
    ends = [eds[k + 1] if k + 1 < len(eds) and ess[k] < eds[k + 1] else
            (eds[k] if ess[k] < eds[k] else _closing_ed(s, ess[k], n)) for k in range(len(eds))]
    return CardiacCycles(tuple(eds), tuple(ess), tuple(ends), _kind(len(eds), eds, ess, ends), None, "given", s)


def _smoothed_extrema(s: np.ndarray, threshold: float, distance: int) -> list[tuple[int, bool]]:
    """Alternating (frame, is_max) extrema of the (T,) smoothed curve ``s``, end frames included.

    Interior extrema are peaks of prominence ``threshold`` (mL) at least ``distance`` frames apart.
    The extremum of the leading (trailing) segment is one when the curve moves away from it by the
    threshold before the first (after the last) interior extremum: an end frame, or a trough/peak too
    close to the end for find_peaks to see its prominence.
    """
    n = len(s)
    peaks, _ = find_peaks(s, prominence=threshold, distance=distance)
    troughs, _ = find_peaks(-s, prominence=threshold, distance=distance)
    extrema = _alternate([(int(p), True) for p in peaks] + [(int(q), False) for q in troughs], s)
    first_other = extrema[0][0] if extrema else n - 1
    head = s[: first_other + 1]
    if (not extrema or not extrema[0][1]) and head.max() - head[int(np.argmax(head)):].min() >= threshold:
        extrema.insert(0, (int(np.argmax(head)), True))
    elif (not extrema or extrema[0][1]) and head[int(np.argmin(head)):].max() - head.min() >= threshold:
        extrema.insert(0, (int(np.argmin(head)), False))
    last_other = extrema[-1][0]
    tail = s[last_other:]
    if not extrema[-1][1] and tail.max() - tail[: int(np.argmax(tail)) + 1].min() >= threshold:
        extrema.append((last_other + int(np.argmax(tail)), True))
    elif extrema[-1][1] and tail[: int(np.argmin(tail)) + 1].max() - tail.min() >= threshold:
        extrema.append((last_other + int(np.argmin(tail)), False))
    return _alternate(extrema, s)


def _refine_extrema(v: np.ndarray, s: np.ndarray, finite: np.ndarray, span: float,
                    extrema: list[tuple[int, bool]], radius: int) -> list[tuple[int, bool]]:
    """Each extremum moved to the extremum of the (T,) given curve ``v`` within ``radius`` frames,
    among the frames that agree with the smoothed curve ``s`` (mL) and between its neighbours."""
    n = len(v)
    residual = v - s
    scale = 1.4826 * np.median(np.abs(residual[finite] - np.median(residual[finite])))
    trusted = finite & (np.abs(residual) <= max(4.0 * scale, 0.05 * span))
    refined: list[tuple[int, bool]] = []
    for k, (frame, is_max) in enumerate(extrema):
        lo = extrema[k - 1][0] + 1 if k > 0 else 0
        hi = extrema[k + 1][0] - 1 if k + 1 < len(extrema) else n - 1
        refined.append((_refine(v, s, trusted, frame, radius, lo, hi, is_max), is_max))
    return refined


def _pair_beats(refined: list[tuple[int, bool]], n: int) -> tuple[list[int], list[int], list[int]]:
    """(ED frames, ES frames, end frames) of the beats of alternating extrema: each ES with the ED
    before it; a curve of only an ES then an ED is one ES → ED beat."""
    eds, ess, ends = [], [], []
    for k, (frame, is_max) in enumerate(refined):
        if is_max or k == 0:
            continue
        eds.append(refined[k - 1][0])
        ess.append(frame)
        ends.append(refined[k + 1][0] if k + 1 < len(refined) else n - 1)
    if not eds and len(refined) == 2 and not refined[0][1]:
        eds, ess, ends = [refined[1][0]], [refined[0][0]], [refined[1][0]]  # stored ES -> ED
    return eds, ess, ends


def _closing_ed(s: np.ndarray, es: int, n: int) -> int:
    """End of the filling after an ES with no next beat: the largest volume after it (the last frame if
    the curve never rises)."""
    if es >= n - 1:
        return es
    after = s[es:]
    return es + int(np.argmax(after)) if after.max() > after[0] else n - 1


def _partner(v: np.ndarray, s: np.ndarray, eds: list[int] | None, ess: list[int] | None) -> CardiacCycles:
    """Beats from only ED or only ES frames: the missing partner is the extremum of the given curve
    between the given frames (NaN frames ignored; ties as in ``_refine``)."""
    n = len(s)
    high = np.where(np.isfinite(v), v, -np.inf)
    low = np.where(np.isfinite(v), v, np.inf)
    if eds is not None:
        eds = sorted(eds)
        ess_found = []
        for k, ed in enumerate(eds):
            stop = eds[k + 1] if k + 1 < len(eds) else n
            after = low[ed:stop]
            ess_found.append(ed + len(after) - 1 - int(np.argmin(after[::-1])))
        ess = ess_found
    else:
        ess = sorted(ess)  # type: ignore[arg-type]
        eds = []
        for k, es in enumerate(ess):
            start = ess[k - 1] if k > 0 else 0
            eds.append(start + int(np.argmax(high[start : es + 1])))
    ends = [eds[k + 1] if k + 1 < len(eds) else _closing_ed(s, ess[k], n) for k in range(len(eds))]
    return CardiacCycles(tuple(eds), tuple(ess), tuple(ends), _kind(len(eds), eds, ess, ends), None, "given", s)
