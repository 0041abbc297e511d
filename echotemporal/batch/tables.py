"""Batch output tables: file names, columns, reading them back, atomic writes.

The column sets are part of the batch's interface: the review figures, users' notebooks and
``resume`` read them. See :mod:`echotemporal.batch` for the layout of an output folder.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from echotemporal.core.errors import InputFileError
from echotemporal.io.atomic import write_atomic

__all__ = [
    "SEQUENCES_CSV",
    "FRAMES_CSV",
    "PATIENTS_CSV",
    "BIPLANE_CSV",
    "CONFIG_YAML",
    "BEATS_CSV",
    "BEAT_COLUMNS",
    "SUMMARY_COLUMNS",
    "SEQUENCE_COLUMNS",
    "PATIENT_COLUMNS",
    "BIPLANE_COLUMNS",
    "BatchTables",
    "read_tables",
    "FramesPart",
    "frames_csv",
    "write_csv",
    "sort_key",
    "row_from_csv",
]

SEQUENCES_CSV = "sequences.csv"
FRAMES_CSV = "frames.csv"
PATIENTS_CSV = "patients.csv"
BIPLANE_CSV = "biplane.csv"
CONFIG_YAML = "config.yaml"


#: Indices copied from the pipeline's JSON summary, under the summary's own key names.
INDEX_NAMES = ("edv_ml", "esv_ml", "ef_percent", "gls_percent", "n_inconsistent", "n_invalid")
SUMMARY_COLUMNS: tuple[str, ...] = (
    "n_frames",
    "ed_frame",
    "es_frame",
    "ed_frame_before",
    "es_frame_before",
    *(f"{name}_{when}" for when in ("before", "after") for name in INDEX_NAMES),
    "n_changed_frames",
    "rounds",
    "frame_time_ms",
    *(f"{name}_{when}" for when in ("before", "after") for name in (
        "n_beats", "ef_percent_sd", "peak_ejection_rate_mean", "peak_filling_rate_mean",
        "time_to_peak_filling_mean")),
)

SEQUENCE_COLUMNS: tuple[str, ...] = (
    "patient",
    "view",
    "status",
    "outcome",  # clean, residue, worse (the correction scored worse than the input) or failed
    "error",
    "warnings",  # one-line warnings joined by " | ": implausible values accepted, detected ED/ES giving no EF
    "seconds",
    "input",
    "info",
    "output",
    "method",
    *SUMMARY_COLUMNS,
    "residue_clean",
    "info_ef_percent",
)

PATIENT_COLUMNS: tuple[str, ...] = (
    "patient",
    "mode",  # "biplane", "monoplane" or "none"
    "views",  # views that contributed, e.g. "2CH+4CH"
    "view_outcomes",  # the outcome of each view the row rests on, e.g. "2CH clean, 4CH worse"
    "edv_ml_before",
    "esv_ml_before",
    "ef_percent_before",
    "edv_ml_after",
    "esv_ml_after",
    "ef_percent_after",
    "gls_percent_before",
    "gls_percent_after",
    "n_beats_biplane",  # beats paired across the views (several-beat sequences; 1 for half-sequences)
    "ef_percent_beats_before",  # biplane EF of each paired beat, "55.1;56.3" (EF above is their mean)
    "ef_percent_beats_after",
    "info_ef_percent",
    "info_edv_ml",
    "info_esv_ml",
    "error",
)

BIPLANE_COLUMNS: tuple[str, ...] = ("patient", "t", "volume_ml_before", "volume_ml_after")

BEATS_CSV = "beats.csv"
#: One row per beat of each sequence's volume curve, before and after ("when"); frames numbered from 1.
BEAT_COLUMNS: tuple[str, ...] = (
    "patient", "view", "when", "beat", "ed_frame", "es_frame", "edv_ml", "esv_ml", "sv_ml", "ef_percent",
    "gls_percent", "peak_ejection_rate", "peak_filling_rate", "peak_ejection_rate_edv", "peak_filling_rate_edv",
    "time_to_peak_filling", "units",
)

@dataclass(frozen=True)
class BatchTables:
    """The tables of a batch output folder, as read back by :func:`read_tables`."""

    sequences: pd.DataFrame
    frames: pd.DataFrame
    patients: pd.DataFrame
    biplane: pd.DataFrame
    config: dict[str, Any]
    beats: pd.DataFrame | None = None


def read_tables(out: str | Path) -> BatchTables:
    """Read the tables written by :func:`run_batch`.

    Args:
        out: batch output folder.

    Raises:
        InputFileError: ``out`` holds no ``sequences.csv`` (not a batch output folder).
    """
    out = Path(out)
    if not (out / SEQUENCES_CSV).is_file():
        raise InputFileError(
            f"{out}: no {SEQUENCES_CSV} here; pass the -o folder of an 'echotemporal batch' run"
        )

    def read(name: str, columns: Sequence[str] = ()) -> pd.DataFrame:
        path = out / name
        if not path.is_file() or path.stat().st_size == 0:
            return pd.DataFrame(columns=list(columns))
        return pd.read_csv(path, dtype={"patient": str, "view": str}, keep_default_na=True)

    config_path = out / CONFIG_YAML
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    return BatchTables(
        sequences=read(SEQUENCES_CSV, SEQUENCE_COLUMNS),
        frames=read(FRAMES_CSV, ("patient", "view")),
        patients=read(PATIENTS_CSV, PATIENT_COLUMNS),
        biplane=read(BIPLANE_CSV, BIPLANE_COLUMNS),
        config=config or {},
        beats=read(BEATS_CSV, BEAT_COLUMNS),
    )




@dataclass(frozen=True)
class FramesPart:
    """One sequence's rows of frames.csv, rendered to CSV text by the worker (no header).

    Text rather than a DataFrame: the worker does the formatting in parallel, and the parent writes
    frames.csv by joining strings, so a flush costs milliseconds and memory stays a few kB a sequence.
    """

    columns: tuple[str, ...]
    text: str

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> FramesPart:
        return cls(tuple(map(str, table.columns)), table.to_csv(index=False, header=False))


def _integers_as_integers(table: pd.DataFrame) -> pd.DataFrame:
    """Float columns that hold only whole numbers (counts, frames; NaN where missing) as nullable
    integers, so that a person reads 25, not 25.0."""
    out = table.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype.kind == "f":
            finite = column.dropna()
            if len(finite) and np.isfinite(finite).all() and (finite == np.round(finite)).all():
                out[name] = column.astype("Int64")
    return out


def write_csv(path: Path, table: pd.DataFrame) -> None:
    table = _integers_as_integers(table)
    write_atomic(path, lambda tmp: table.to_csv(tmp, index=False), overwrite=True, durable=True)


def sort_key(patients: dict[str, int], views: Sequence[str]) -> Callable[[Any], tuple]:
    """Discovery order (patients numerically, then views as given): stable across runs and schedulers."""
    view_order = {v: i for i, v in enumerate(views)}

    def key(item: Any) -> tuple:
        patient, view = (item, "") if isinstance(item, str) else item
        return (patients.get(patient, len(patients)), patient, view_order.get(view, len(view_order)), view)

    return key


def frames_csv(parts: list[FramesPart]) -> str:
    """frames.csv text: one header and every part's rows (parts with other columns are aligned)."""
    if not parts:
        return "patient,view\n"
    columns = parts[0].columns
    if all(part.columns == columns for part in parts):
        return pd.DataFrame(columns=list(columns)).to_csv(index=False) + "".join(part.text for part in parts)
    # Mixed column sets (e.g. resumed with another package version): align through pandas.
    tables = [pd.read_csv(io.StringIO(part.text), header=None, names=list(part.columns)) for part in parts]
    return pd.concat(tables, ignore_index=True).to_csv(index=False)


def row_from_csv(record: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if k in ("error", "warnings", "info") and (v is None or (isinstance(v, float) and math.isnan(v))) else v)
            for k, v in record.items()}


