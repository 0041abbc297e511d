"""The ``sequences.csv`` row of one view: its fixed columns, the values read from the correction's
summary, and one-line failure messages."""

from __future__ import annotations

import math
from typing import Any

from echotemporal.batch.tables import BEAT_COLUMNS, SUMMARY_COLUMNS
from echotemporal.batch.tasks import PatientTask, ViewTask
from echotemporal.core.errors import EchoTemporalError
from echotemporal.core.os_errors import describe_os_error

__all__ = ["WARNING_SEPARATOR", "one_line", "nan", "as_float", "as_frame_index", "row_from_summary", "base_row", "beat_rows"]


#: Between the warnings of one sequence in the ``warnings`` column of sequences.csv.
WARNING_SEPARATOR = " | "


def one_line(exc: BaseException) -> str:
    """A failure as one line: library errors carry their own message; others get their type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, EchoTemporalError) and text:
        return text
    if isinstance(exc, OSError) and exc.errno is not None:
        return describe_os_error(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def nan() -> float:
    return float("nan")


def as_float(value: Any) -> float:
    try:
        return float(value) if value is not None else nan()
    except (TypeError, ValueError):
        return nan()


def as_frame_index(value: Any) -> int | None:
    f = as_float(value)
    return int(f) if math.isfinite(f) else None


def row_from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The sequences.csv columns that come from the pipeline's JSON summary (same key names)."""
    row = {}
    for name in SUMMARY_COLUMNS:
        value = summary.get(name)
        if value is None and name.startswith(("n_inconsistent_", "n_invalid_")):
            value = summary.get(name.replace("_before", "_frames_before").replace("_after", "_frames_after"))
        row[name] = as_float(value)
    residue = summary.get("residue") or {}
    row["residue_clean"] = bool(residue.get("clean", False))
    row["outcome"] = summary.get("outcome", "clean")
    row["warnings"] = WARNING_SEPARATOR.join(summary.get("input_warnings") or [])
    return row


def beat_rows(patient: str, view: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The beats.csv rows of one sequence: every beat before and after, beats and frames numbered from 1."""
    rows = []
    for when in ("before", "after"):
        for beat in summary.get(f"beats_{when}") or []:
            row = {name: beat.get(name) for name in BEAT_COLUMNS if name in beat}
            row.update(patient=patient, view=view, when=when, beat=int(beat["beat"]) + 1,
                       ed_frame=int(beat["ed_frame"]) + 1, es_frame=int(beat["es_frame"]) + 1,
                       units=beat.get("rate_unit", ""))
            rows.append(row)
    return rows


def base_row(task: PatientTask, view: ViewTask) -> dict[str, Any]:
    return {
        "patient": task.patient,
        "view": view.view,
        "status": "failed",
        "outcome": "failed",
        "error": "",
        "warnings": "",
        "seconds": nan(),
        "input": str(view.input),
        "info": "" if view.info is None else str(view.info),
        "output": view.out_relative,
        "method": task.config.method,
    }
