"""Contraction profile of whole cardiac cycles: ejection, isovolumic relaxation, rapid filling, diastasis,
atrial kick, with its exact time derivative (phantom ground truth for ED/ES frames and volume rates).

The profile ``p`` is the contraction state the phantom generators interpolate on: 0 at ED, 1 at the ES
of the deepest beat. Each phase is a raised-cosine ramp, so ``p`` is C¹ (zero slope at every phase
boundary) and its derivative is analytic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["BeatTiming", "CycleProfile", "cycle_profile", "sample_beat_timing"]


@dataclass(frozen=True)
class BeatTiming:
    """Timing of one beat as fractions of its period, and its depth.

    Attributes:
        ejection: ED → ES duration (about 1/3 of the cycle).
        relaxation: isovolumic relaxation after ES (volume constant).
        rapid_filling: duration of the rapid filling wave (E wave).
        rapid_fraction: part of the stroke refilled by the rapid wave.
        diastasis_fraction: part of the stroke refilled during diastasis (slowly).
        atrial: duration of the atrial kick (A wave), ending at the next ED.
        depth: contraction at ES, 0..1 (1 for the deepest beat; shallower beats eject less).
    """

    ejection: float
    relaxation: float
    rapid_filling: float
    rapid_fraction: float
    diastasis_fraction: float
    atrial: float
    depth: float


def sample_beat_timing(rng: np.random.Generator, depth: float = 1.0) -> BeatTiming:
    """Realistic random beat timing (fractions of the period) at the given depth."""
    rapid_fraction = rng.uniform(0.6, 0.75)
    return BeatTiming(
        ejection=float(rng.uniform(0.30, 0.38)),
        relaxation=float(rng.uniform(0.06, 0.10)),
        rapid_filling=float(rng.uniform(0.15, 0.22)),
        rapid_fraction=float(rapid_fraction),
        diastasis_fraction=float(rng.uniform(0.02, 0.08)),
        atrial=float(rng.uniform(0.12, 0.18)),
        depth=float(depth),
    )


def _ramp(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raised cosine 0 → 1 on x in [0, 1] (clipped outside) and its derivative d/dx."""
    xc = np.clip(x, 0.0, 1.0)
    inside = (x > 0) & (x < 1)
    return 0.5 * (1 - np.cos(np.pi * xc)), np.where(inside, 0.5 * np.pi * np.sin(np.pi * xc), 0.0)


def _beat(tau: np.ndarray, b: BeatTiming) -> tuple[np.ndarray, np.ndarray]:
    """Contraction and d/dtau of one beat at phase tau in [0, 1]."""
    t_es = b.ejection
    t_rf = t_es + b.relaxation
    t_ds = t_rf + b.rapid_filling
    t_a = 1.0 - b.atrial
    r_ej, d_ej = _ramp(tau / t_es)
    r_rf, d_rf = _ramp((tau - t_rf) / b.rapid_filling)
    r_ds, d_ds = _ramp((tau - t_ds) / (t_a - t_ds))
    r_a, d_a = _ramp((tau - t_a) / b.atrial)
    f_rf, f_ds = b.rapid_fraction, b.diastasis_fraction
    f_a = 1.0 - f_rf - f_ds
    p = r_ej - f_rf * r_rf - f_ds * r_ds - f_a * r_a
    dp = d_ej / t_es - f_rf * d_rf / b.rapid_filling - f_ds * d_ds / (t_a - t_ds) - f_a * d_a / b.atrial
    return b.depth * p, b.depth * dp


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields
class CycleProfile:
    """A sampled multi-beat contraction profile.

    Attributes:
        values: (T,) contraction per frame, 0 at ED, ``depth`` at each beat's ES.
        rates_per_frame: (T,) exact d(values)/d(frame).
        frames_per_beat: frames per beat period (frame ``k·frames_per_beat`` is beat k's ED).
        ed_frames: (B,) 0-based ED frame of each beat.
        es_frames: (B,) 0-based ES frame of each beat: the first frame at or after the end of ejection
            (the volume stays at its minimum through isovolumic relaxation).
        es_plateau_frames: (B,) last frame of each beat's isovolumic relaxation (same volume as ES).
        beats: the timing of each beat.
        offset: sequence start, in beats (0: starts at ED; 0.35: starts near ES, ...).
    """

    values: np.ndarray
    rates_per_frame: np.ndarray
    frames_per_beat: int
    ed_frames: tuple[int, ...]
    es_frames: tuple[int, ...]
    es_plateau_frames: tuple[int, ...]
    beats: tuple[BeatTiming, ...]
    offset: float

    def evaluate(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contraction and its derivative per frame at (fractional) frame positions."""
        return _evaluate(np.asarray(frame, dtype=np.float64), self.frames_per_beat, self.beats, self.offset)

    def to_json(self) -> dict:
        """JSON-able description."""
        return {"frames_per_beat": self.frames_per_beat, "offset_beats": self.offset,
                "beats": [asdict(b) for b in self.beats]}


def _evaluate(frame: np.ndarray, frames_per_beat: int, beats: tuple[BeatTiming, ...], offset: float
              ) -> tuple[np.ndarray, np.ndarray]:
    phase = frame / frames_per_beat + offset
    k = np.clip(np.floor(phase).astype(int), 0, len(beats) - 1)
    tau = phase - k
    p = np.empty_like(phase)
    dp = np.empty_like(phase)
    for i, b in enumerate(beats):
        sel = k == i
        p[sel], dp[sel] = _beat(tau[sel], b)
    return p, dp / frames_per_beat


def cycle_profile(beats: tuple[BeatTiming, ...] | list[BeatTiming], frames_per_beat: int, *,
                  offset: float = 0.0, n_frames: int | None = None) -> CycleProfile:
    """Contraction profile of consecutive beats sampled once per frame.

    Args:
        beats: timing of each beat.
        frames_per_beat: frames per period (≥ 8).
        offset: phase of frame 0, in beats, within [0, 1) (0: frame 0 is ED).
        n_frames: frames of the sequence; default the beats plus the closing ED frame.

    Returns:
        CycleProfile with the ED and ES frames of every beat whose ED and ES lie inside the sequence.

    Raises:
        ValueError: too few frames per beat, no beat, or an offset outside [0, 1).
    """
    if frames_per_beat < 8:
        raise ValueError(f"frames_per_beat={frames_per_beat}: a cycle needs at least 8 frames")
    if not beats:
        raise ValueError("beats is empty: give at least one BeatTiming")
    if not 0.0 <= offset < 1.0:
        raise ValueError(f"offset={offset}: must lie in [0, 1) beats")
    beats = tuple(beats)
    n = int(n_frames) if n_frames is not None else int(round((len(beats) - offset) * frames_per_beat)) + 1
    values, rates = _evaluate(np.arange(n, dtype=np.float64), frames_per_beat, beats, offset)
    eds, ess, plateaus = [], [], []
    for i, b in enumerate(beats):
        start = (i - offset) * frames_per_beat
        ed = int(round(start))
        es = int(np.ceil(start + b.ejection * frames_per_beat - 1e-9))
        plateau = int(np.floor(start + (b.ejection + b.relaxation) * frames_per_beat + 1e-9))
        if ed >= 0 and es <= n - 1 and abs(ed - start) < 1e-9:
            eds.append(ed)
            ess.append(es)
            plateaus.append(max(min(plateau, n - 1), es))
    return CycleProfile(values, rates, int(frames_per_beat), tuple(eds), tuple(ess), tuple(plateaus), beats,
                        float(offset))
