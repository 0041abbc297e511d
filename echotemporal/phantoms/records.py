"""Result records shared by the phantom generators: sequences with ground truth and corruptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "COHERENT_KINDS",
    "CORRUPTION_KINDS",
    "TEMPORAL_CORRUPTION_KINDS",
    "Corruption",
    "CorruptionRun",
    "PhantomSequence",
]

#: Every corruption `corrupt_sequence` knows, in a fixed order (manifest and CLI use these names).
CORRUPTION_KINDS: tuple[str, ...] = (
    "contraction",
    "dilation",
    "shift_vertical",
    "shift_horizontal",
    "blob",
    "hole",
    "broken_myo",
    "boundary_noise",
    "missing_structure",
)
#: Corruptions the temporal metric must see; never placed on the first or last frame, where the
#: second-difference metric is 0 by definition.
TEMPORAL_CORRUPTION_KINDS: tuple[str, ...] = ("contraction", "dilation", "shift_vertical", "shift_horizontal")
#: Coherent failure kinds of `coherent_failures`: runs of frames broken the way CNN segmenters fail.
COHERENT_KINDS: tuple[str, ...] = (
    "wall_dropout",
    "lv_split",
    "base_leak",
    "apex_cut",
    "over_under",
    "base_swap",
    "myo_fragments",
)


@dataclass(frozen=True)
class Corruption:
    """One corrupted frame.

    Attributes:
        frame: 0-based frame index that was changed.
        kind: one of `CORRUPTION_KINDS`.
        detail: human-readable parameters (e.g. "lv_area_change=-11.2%").
    """

    frame: int
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class CorruptionRun:
    """One coherent failure: a run of consecutive frames whose error evolves smoothly.

    Attributes:
        kind: one of `COHERENT_KINDS`.
        first_frame: 0-based first frame of the run.
        last_frame: 0-based last frame of the run (included).
        detail: human-readable parameters (e.g. "side=right angle=70->85deg gap_max=21.0mm").
    """

    kind: str
    first_frame: int
    last_frame: int
    detail: str = ""

    @property
    def frames(self) -> range:
        """The run's frame indices."""
        return range(self.first_frame, self.last_frame + 1)


@dataclass(frozen=True)
class PhantomSequence:
    """A synthetic sequence (half-sequence ED -> ES, full cycle or several beats) with its exact ground truth.

    Attributes:
        labels: (T, H, W) uint8 exact label map (0 bg, 1 LV, 2 MYO, 3 LA), apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel size.
        view: "2CH" or "4CH".
        ed_frame: 0-based ED index (0 for a half-sequence; the first beat's otherwise).
        es_frame: 0-based ES index (T - 1 for a half-sequence; the first beat's otherwise).
        lv_volume_ml: (T,) analytic LV volume in mL: the disk integral (volume of revolution) of the
            exact continuous LV contour about its long axis (hinge midpoint -> apex). NaN for
            real-shape sequences, which have no continuous truth.
        ef_percent: analytic EF in % from `lv_volume_ml` (NaN where undefined); the first beat's.
        gls_percent: analytic endocardial (hinge -> apex -> hinge) length strain at ES in % (NaN where
            undefined).
        params: JSON-able generation parameters (physiology, geometry, provenance).
        beat_ed_frames: (B,) 0-based ED frame of each beat of a full-cycle or multi-beat sequence;
            empty for a half-sequence (then `beats` is ``((ed_frame, es_frame),)``).
        beat_es_frames: (B,) 0-based ES frame of each beat (the first frame of the ES volume plateau).
        frame_time_ms: time between frames, ms; None when the phantom has no time scale.
    """

    labels: np.ndarray
    spacing_mm: tuple[float, float]
    view: str
    ed_frame: int
    es_frame: int
    lv_volume_ml: np.ndarray
    ef_percent: float
    gls_percent: float
    params: dict[str, Any] = field(default_factory=dict)
    beat_ed_frames: tuple[int, ...] = ()
    beat_es_frames: tuple[int, ...] = ()
    frame_time_ms: float | None = None

    @property
    def beats(self) -> tuple[tuple[int, int], ...]:
        """(ED, ES) frame pairs of every beat (one pair for a half-sequence)."""
        if self.beat_ed_frames:
            return tuple(zip(self.beat_ed_frames, self.beat_es_frames))
        return ((self.ed_frame, self.es_frame),)

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.labels.shape[0])
