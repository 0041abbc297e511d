"""Worker side of a batch: one patient per task, run in a pool process or on a Dask worker.

Each view goes through ``pipeline.smooth_file`` (the function behind ``echotemporal smooth``); then
the patient's biplane curve is measured while both views' labels are still in memory. Only small
results travel back to the parent: rows, the per-frame table as CSV text, and the biplane curve.
Everything that goes wrong with one sequence ends up in its row; only a model that cannot be loaded
(a batch-wide problem) raises.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import warnings
from typing import Any

import numpy as np

from echotemporal.batch.biplane import ViewData, info_values, patient_indices
from echotemporal.batch.cache import worker_model, worker_thresholds
from echotemporal.batch.environment import WORKER_ENV, prepare_worker, worker_environment
from echotemporal.batch.signals import die_with_parent, time_limit
from echotemporal.batch.rows import base_row, beat_rows, nan, one_line, row_from_summary
from echotemporal.batch.tables import PATIENT_COLUMNS, FramesPart
from echotemporal.batch.tasks import PatientResult, PatientTask, ViewTask

__all__ = [
    "ViewTask",
    "PatientTask",
    "PatientResult",
    "WORKER_ENV",
    "worker_environment",
    "init_pool_worker",
    "process_patient",
    "process_patient_on_dask",
    "failed_result",
    "one_line",
]


def init_pool_worker(method: str, weights: str | None, pids: Any = None) -> None:
    """ProcessPoolExecutor initializer: threads, Ctrl-C, model (load errors resurface in the tasks).

    Args:
        method, weights: the model every task of this worker uses (loaded once, here).
        pids: a multiprocessing ``SimpleQueue`` this worker puts its process id into, so that the
            parent can stop it on SIGTERM/SIGHUP (the executor has no public list of its processes).
    """
    # The parent owns Ctrl-C: it lets running patients finish and writes the tables. SIGTERM keeps
    # its default (the parent terminates its workers on SIGTERM/SIGHUP); a parent that dies takes us along.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if pids is not None:
        pids.put(os.getpid())
    prepare_worker(method)
    try:
        worker_model(method, weights)
    except Exception:  # noqa: BLE001 - re-raised by worker_model in the first task, with its message
        pass


def _read_input(view: ViewTask) -> Any:
    """The view's input: its sequence file, or a CAMUS-2019 ED/ES pair as a 2-frame sequence."""
    from echotemporal.io import read_sequence

    if view.es_input is None:
        return read_sequence(view.input)
    from echotemporal.io.camus_pairs import read_ed_es_pair

    return read_ed_es_pair(view.input, view.es_input)


def _smooth_view(
    task: PatientTask, view: ViewTask, model: Any
) -> tuple[dict[str, Any], FramesPart | None, ViewData | None]:
    """One sequence through ``pipeline.smooth_file``; any failure becomes a failed row with its message."""
    from echotemporal.outputs import sequence_file

    start = time.perf_counter()
    row = base_row(task, view)
    frames = data = None
    try:
        view.output.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), time_limit(task.time_limit_s):
            # Degenerate frames warn inside the pipeline; in a batch the tables record them instead.
            warnings.simplefilter("ignore")
            before = _read_input(view)  # read once: smooth_file takes it, the biplane needs it
            pair = view.es_input is not None  # frame 1 ED, frame 2 ES, whatever the Info cfg's frames
            result = sequence_file.smooth_file(
                view.input,
                view.output,
                method=task.config.method,
                model=model,
                config=task.config,
                info_path=view.info,
                report_dir=None,  # the smooth report (frames CSV, summary JSON) beside each output
                plot=False,
                overwrite=task.overwrite,
                thresholds=worker_thresholds(),
                sequence=before,
                fps=task.fps,
                spacing_mm=task.spacing_mm,
                allow_implausible=task.allow_implausible,
                ed_frame=0 if pair else None,
                es_frame=1 if pair else None,
            )
        row.update(row_from_summary(result.summary))
        row["beats"] = beat_rows(task.patient, view.view, result.summary)
        table = result.frames.reset_index(drop=result.frames.index.name is None)
        table.insert(0, "view", view.view)
        table.insert(0, "patient", task.patient)
        frames = FramesPart.from_table(table)
        data = ViewData(before.labels, np.asarray(result.labels), _spacing(task, before), row, result.clinical)
        row["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a batch records any failure of one case and goes on
        row["error"] = one_line(exc)
    row["seconds"] = time.perf_counter() - start
    return row, frames, data


def _spacing(task: PatientTask, sequence: Any) -> tuple[float, float]:
    """(row_mm, col_mm) a view was measured at: the batch's ``spacing_mm``, else its header's."""
    return sequence.spacing_mm if task.spacing_mm is None else task.spacing_mm


def _done_view_data(task: PatientTask, view: ViewTask) -> ViewData | None:
    """Labels of a view finished by an earlier run (resume), for the patient's biplane indices."""
    from echotemporal.io import read_sequence

    try:
        before = _read_input(view)
        after = read_sequence(view.output)
    except Exception:  # noqa: BLE001 - without them the patient falls back to monoplane
        return None
    return ViewData(before.labels, after.labels, _spacing(task, before), dict(view.done or {}))


def process_patient(task: PatientTask) -> PatientResult:
    """Worker entry point: smooth every pending view of one patient, then the patient's indices.

    Raises only when the model cannot be loaded (a batch-wide error); everything that concerns one
    sequence ends up in its row.
    """
    model = worker_model(task.config.method, task.weights)
    info = info_values(task.views)
    rows: list[dict[str, Any]] = []
    beats: dict[str, list[dict[str, Any]]] = {}
    frames: dict[str, FramesPart] = {}
    data: dict[str, ViewData] = {}
    for view in task.views:
        if view.done is not None:
            done = _done_view_data(task, view)
            if done is not None:
                data[view.view] = done
            continue
        row, view_frames, view_data = _smooth_view(task, view, model)
        row["info_ef_percent"] = info["info_ef_percent"]
        beats[view.view] = row.pop("beats", [])
        rows.append(row)
        if view_frames is not None:
            frames[view.view] = view_frames
        if view_data is not None:
            data[view.view] = view_data
    for source, destination in task.info_copies:
        # The mirror is a CAMUS tree of its own: a later batch can run on OUT.
        try:
            if not destination.exists() or task.overwrite:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
        except OSError as exc:
            warnings.warn(f"{destination}: Info cfg not copied ({exc})", RuntimeWarning)
    patient_row, curve = patient_indices(task.patient, data, info, beats)
    return PatientResult(
        patient=task.patient,
        rows=rows,
        frames=frames,
        patient_row=patient_row,
        curve=curve,
        weights_sha256=getattr(model, "sha256", None),
        beats=beats,
    )


def process_patient_on_dask(task: PatientTask) -> PatientResult:
    """Dask entry point: the worker process is prepared (threads) on its first task."""
    prepare_worker(task.config.method)
    return process_patient(task)


def failed_result(task: PatientTask, exc: BaseException) -> PatientResult:
    """A patient whose task died as a whole (worker killed, cancelled): failed rows, nothing lost."""
    message = f"worker failed: {one_line(exc)}"
    rows = [dict(base_row(task, v), error=message) for v in task.views if v.done is None]
    row: dict[str, Any] = {name: nan() for name in PATIENT_COLUMNS}
    row.update(patient=task.patient, mode="none", views="", view_outcomes="", error=message)
    return PatientResult(task.patient, rows, {}, row, None)


