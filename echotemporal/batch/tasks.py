"""The units of a batch's work and what comes back: picklable, they travel to pool processes and Dask workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from echotemporal.batch.tables import FramesPart
from echotemporal.core.config import SmoothingConfig

__all__ = ["ViewTask", "PatientTask", "PatientResult"]


@dataclass(frozen=True)
class ViewTask:
    """One sequence of a patient: where it is, where its correction goes."""

    view: str
    input: Path
    info: Path | None
    output: Path
    out_relative: str  # output path relative to OUT, as written in the tables
    done: dict[str, Any] | None = None  # sequences.csv row of an earlier run: only read for biplane
    es_input: Path | None = None  # CAMUS-2019 pair: the ES mask file (``input`` is then the ED one)


@dataclass(frozen=True)
class PatientTask:
    """The unit of work: a patient's views (picklable, it travels to pool processes and Dask workers)."""

    patient: str
    views: tuple[ViewTask, ...]
    config: SmoothingConfig
    weights: str | None
    overwrite: bool
    info_copies: tuple[tuple[Path, Path], ...] = ()  # (source, destination) Info cfg files
    fps: float | None = None  # frames per second for every sequence (None: each file's header)
    allow_implausible: bool = False  # implausible ED/ES or orientation: warning instead of failure
    spacing_mm: tuple[float, float] | None = None  # (row_mm, col_mm) for every sequence (None: each header's)
    time_limit_s: float | None = None  # wall time per sequence before it is stopped and failed (None: none)

    @property
    def n_todo(self) -> int:
        return sum(v.done is None for v in self.views)


@dataclass
class PatientResult:
    """What a worker sends back: small rows and text, never label maps."""

    patient: str
    rows: list[dict[str, Any]]
    frames: dict[str, FramesPart]  # view -> its frames.csv rows
    patient_row: dict[str, Any]
    curve: pd.DataFrame | None
    weights_sha256: str | None = None
    beats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # view -> its beats.csv rows
