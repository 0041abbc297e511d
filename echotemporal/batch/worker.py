"""Worker side of a batch: one patient per task, run in a pool process or on a Dask worker.

Each view goes through ``pipeline.smooth_file`` (the function behind ``echotemporal smooth``); then
the patient's biplane curve is measured while both views' labels are still in memory. Only small
results travel back to the parent: rows, the per-frame table as CSV text, and the biplane curve.
Everything that goes wrong with one sequence ends up in its row; only a model that cannot be loaded
(a batch-wide problem) raises.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from echotemporal.batch.tables import PATIENT_COLUMNS, SUMMARY_COLUMNS, FramesPart
from echotemporal.core.config import SmoothingConfig
from echotemporal.core.errors import EchoTemporalError
from echotemporal.measure.sequence import THREADS_ENV

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


@dataclass(frozen=True)
class ViewTask:
    """One sequence of a patient: where it is, where its correction goes."""

    view: str
    input: Path
    info: Path | None
    output: Path
    out_relative: str  # output path relative to OUT, as written in the tables
    done: dict[str, Any] | None = None  # sequences.csv row of an earlier run: only read for biplane


@dataclass(frozen=True)
class PatientTask:
    """The unit of work: a patient's views (picklable, it travels to pool processes and Dask workers)."""

    patient: str
    views: tuple[ViewTask, ...]
    config: SmoothingConfig
    weights: str | None
    overwrite: bool
    info_copies: tuple[tuple[Path, Path], ...] = ()  # (source, destination) Info cfg files

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


_MODELS: dict[tuple[str, str | None], Any] = {}
_MODELS_LOCK = threading.Lock()
_THRESHOLDS: list[Any] = []  # the packaged consistency thresholds, read once per worker process
_WORKER_READY = False

#: One thread per worker process for every thread pool (OpenMP, BLAS, torch, the per-frame measures):
#: a batch's parallelism is its processes; threads on top only compete for the same cores. The pool's
#: parent sets these while it spawns its workers, so that they hold before numpy/torch are imported.
WORKER_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    THREADS_ENV: "1",
}


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """:data:`WORKER_ENV` in ``os.environ`` for the duration (worker processes spawned inside inherit it)."""
    saved = {name: os.environ.get(name) for name in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: glibc mallopt parameters, and the values glibc's own dynamic thresholds reach on 64-bit Linux.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 << 20


def _tune_allocator() -> None:
    """Keep freed array memory in the process for reuse (glibc's dynamic behaviour, made explicit).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap
    threshold at 128 kB: every array of a frame or more is then mapped and unmapped anew, and the
    page faults cost ~0.4 s of system time per CAMUS sequence (+50 %). The thresholds glibc itself
    would settle on (32 MB mmap, trim above 2x that) remove the faults; the memory kept is bounded.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


def _prepare_worker(method: str) -> None:
    """One thread per worker process (torch included), parallelism coming from the processes; and an
    allocator that reuses freed arrays."""
    global _WORKER_READY
    if _WORKER_READY:
        return
    os.environ.update(WORKER_ENV)  # a Dask worker was not spawned by us: at least the later imports
    _tune_allocator()
    # The shipped model runs with ONNX Runtime (one thread per session) and needs no torch; a torch
    # already imported, or imported later for a checkpoint without ONNX export, reads WORKER_ENV.
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)
    _WORKER_READY = True


def _thresholds() -> Any:
    if not _THRESHOLDS:
        from echotemporal.measure.temporal import load_thresholds

        _THRESHOLDS.append(load_thresholds())
    return _THRESHOLDS[0]


def _load_model(method: str, weights: str | None) -> Any:
    """The shape model of this worker process, loaded once and cached by weights path."""
    if method != "arvae":
        return None
    key = (method, weights)
    with _MODELS_LOCK:  # Dask workers may run several tasks in threads of one process
        if key not in _MODELS:
            from echotemporal.model.registry import load_model

            _MODELS[key] = load_model(weights)
        return _MODELS[key]


def init_pool_worker(method: str, weights: str | None) -> None:
    """ProcessPoolExecutor initializer: threads, Ctrl-C, model (load errors resurface in the tasks)."""
    # The parent owns Ctrl-C: it lets running patients finish and writes the tables.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prepare_worker(method)
    try:
        _load_model(method, weights)
    except Exception:  # noqa: BLE001 - re-raised by _load_model in the first task, with its message
        pass


def one_line(exc: BaseException) -> str:
    """A failure as one line: library errors carry their own message; others get their type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, EchoTemporalError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def nan() -> float:
    return float("nan")


def _as_float(value: Any) -> float:
    try:
        return float(value) if value is not None else nan()
    except (TypeError, ValueError):
        return nan()


def _as_frame_index(value: Any) -> int | None:
    f = _as_float(value)
    return int(f) if math.isfinite(f) else None


def _row_from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The sequences.csv columns that come from the pipeline's JSON summary (same key names)."""
    row = {}
    for name in SUMMARY_COLUMNS:
        value = summary.get(name)
        if value is None and name.startswith(("n_inconsistent_", "n_invalid_")):
            value = summary.get(name.replace("_before", "_frames_before").replace("_after", "_frames_after"))
        row[name] = _as_float(value)
    residue = summary.get("residue") or {}
    row["residue_clean"] = bool(residue.get("clean", False))
    return row


def _read_info(path: Path | None) -> Any:
    """Info cfg of a view, or None (a broken cfg costs the Info EF column, not the sequence)."""
    if path is None:
        return None
    from echotemporal.io import read_info_cfg

    try:
        return read_info_cfg(path)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"{path}: Info cfg not usable ({one_line(exc)}); Info EF left empty", RuntimeWarning)
        return None


@dataclass
class _ViewData:
    """One view's labels before/after, kept in the worker only until the patient's biplane is done."""

    before: np.ndarray  # (T, H, W) uint8 input
    after: np.ndarray  # (T, H, W) uint8 corrected
    spacing_mm: tuple[float, float]
    row: dict[str, Any]  # its sequences.csv row
    measures: dict[str, Any] | None = None  # {"before", "after"}: clinical.FrameMeasures, if known

    def ed_es(self, when: str) -> tuple[int, int] | None:
        """The (ED, ES) the pipeline used for this view's "before" or "after" indices."""
        tail = "_before" if when == "before" else ""
        ed = _as_frame_index(self.row.get(f"ed_frame{tail}"))
        es = _as_frame_index(self.row.get(f"es_frame{tail}"))
        return None if ed is None or es is None else (ed, es)


def base_row(task: PatientTask, view: ViewTask) -> dict[str, Any]:
    return {
        "patient": task.patient,
        "view": view.view,
        "status": "failed",
        "error": "",
        "seconds": nan(),
        "input": str(view.input),
        "info": "" if view.info is None else str(view.info),
        "output": view.out_relative,
        "method": task.config.method,
    }


def _smooth_view(
    task: PatientTask, view: ViewTask, model: Any
) -> tuple[dict[str, Any], FramesPart | None, _ViewData | None]:
    """One sequence through ``pipeline.smooth_file``; any failure becomes a failed row with its message."""
    from echotemporal.outputs import sequence_file
    from echotemporal.io import read_sequence

    start = time.perf_counter()
    row = base_row(task, view)
    frames = data = None
    try:
        view.output.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # Degenerate frames warn inside the pipeline; in a batch the tables record them instead.
            warnings.simplefilter("ignore")
            before = read_sequence(view.input)  # read once: smooth_file takes it, the biplane needs it
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
                thresholds=_thresholds(),
                sequence=before,
            )
        row.update(_row_from_summary(result.summary))
        table = result.frames.reset_index(drop=result.frames.index.name is None)
        table.insert(0, "view", view.view)
        table.insert(0, "patient", task.patient)
        frames = FramesPart.from_table(table)
        data = _ViewData(before.labels, np.asarray(result.labels), before.spacing_mm, row, result.frame_measures)
        row["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a batch records any failure of one case and goes on
        row["error"] = one_line(exc)
    row["seconds"] = time.perf_counter() - start
    return row, frames, data


def _done_view_data(view: ViewTask) -> _ViewData | None:
    """Labels of a view finished by an earlier run (resume), for the patient's biplane indices."""
    from echotemporal.io import read_sequence

    try:
        before = read_sequence(view.input)
        after = read_sequence(view.output)
    except Exception:  # noqa: BLE001 - without them the patient falls back to monoplane
        return None
    return _ViewData(before.labels, after.labels, before.spacing_mm, dict(view.done or {}))


#: Pixels kept around the heart when cropping for the biplane measure (hinges look 1-2 px outside).
_CROP_MARGIN_PX = 4


def _heart_crops(*sequences: np.ndarray) -> list[np.ndarray]:
    """(T, H, W) label sequences of one view cropped to one box: LV∪MYO of all of them, plus a margin.

    Volumes depend on distances only (each frame is measured in its own coordinates), so the crop
    changes no number and saves most of the per-pixel work on CAMUS-size frames; one box for the
    versions of a view lets their identical frames be recognised and measured once.
    """
    arrays = [np.asarray(labels, dtype=np.uint8) for labels in sequences]
    # LV (1) or MYO (2) in any frame, in one pass: uint8 wrap-around sends background to 255.
    heart = np.zeros(arrays[0].shape[1:], dtype=bool)
    for labels in arrays:
        heart |= ((labels - np.uint8(1)) < 2).any(axis=0)
    rows = np.flatnonzero(heart.any(axis=1))
    cols = np.flatnonzero(heart.any(axis=0))
    if rows.size == 0:
        return arrays
    r0, c0 = max(int(rows[0]) - _CROP_MARGIN_PX, 0), max(int(cols[0]) - _CROP_MARGIN_PX, 0)
    r1, c1 = int(rows[-1]) + _CROP_MARGIN_PX + 1, int(cols[-1]) + _CROP_MARGIN_PX + 1
    return [np.ascontiguousarray(labels[:, r0:r1, c0:c1]) for labels in arrays]


def _view_measures(view: _ViewData) -> dict[str, Any]:
    """Per-frame clinical measures of a view before and after: the pipeline's, or measured again
    (a view finished by an earlier run; frames left unchanged measured once)."""
    from echotemporal.measure import clinical

    if view.measures is not None:
        return view.measures

    before, after = _heart_crops(view.before, view.after)
    measures = {"before": clinical.measure_frames(before, view.spacing_mm)}
    if after.shape == before.shape:
        measures["after"] = clinical.measure_frames(after, view.spacing_mm, reference=(before, measures["before"]))
    else:
        measures["after"] = clinical.measure_frames(after, view.spacing_mm)
    return measures


def _patient_indices(
    patient: str, data: dict[str, _ViewData], info: dict[str, float]
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Patient row (biplane when 2CH and 4CH are both available, else monoplane) and biplane curve.

    Args:
        patient: patient id.
        data: view -> labels and row of the views that finished ok.
        info: Info cfg reference values (info_ef_percent, info_edv_ml, info_esv_ml), NaN if absent.
    """
    from echotemporal.measure import clinical

    row: dict[str, Any] = {name: nan() for name in PATIENT_COLUMNS}
    row.update(info)
    row.update(patient=patient, mode="none", views="+".join(sorted(data)), error="")
    curve = None
    if not data:
        return row, curve
    for when in ("before", "after"):
        gls = [_as_float(d.row.get(f"gls_percent_{when}")) for d in data.values()]
        # Two-view GLS is the mean of the views (DESIGN.md §5); a NaN view makes it NaN, honestly.
        row[f"gls_percent_{when}"] = float(np.mean(gls))
    if "2CH" in data and "4CH" in data:
        row["mode"] = "biplane"
        two, four = data["2CH"], data["4CH"]
        try:
            curves = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NaN volumes are the record
                measures = {"2CH": _view_measures(two), "4CH": _view_measures(four)}
                for when in ("before", "after"):
                    unchanged = (
                        when == "after"
                        and two.ed_es("after") == two.ed_es("before")
                        and four.ed_es("after") == four.ed_es("before")
                        and np.array_equal(two.before, two.after)
                        and np.array_equal(four.before, four.after)
                    )
                    if unchanged:  # nothing corrected: the same curve, without measuring it again
                        volumes = curves["before"]
                    else:
                        t, volumes = clinical.biplane_volumes_from_measures(
                            measures["2CH"][when],
                            measures["4CH"][when],
                            ed_es_2ch=two.ed_es(when),
                            ed_es_4ch=four.ed_es(when),
                        )
                    curves[when] = volumes
                    # biplane_volumes_ml's grid runs from ED (t = 0) to ES (t = 1).
                    row[f"edv_ml_{when}"] = float(volumes[0])
                    row[f"esv_ml_{when}"] = float(volumes[-1])
                    row[f"ef_percent_{when}"] = clinical.ejection_fraction_percent(volumes[0], volumes[-1])
            curve = pd.DataFrame(
                {"patient": patient, "t": t, "volume_ml_before": curves["before"], "volume_ml_after": curves["after"]}
            )
        except Exception as exc:  # noqa: BLE001 - a failed biplane costs this patient's row only
            row["error"] = f"biplane: {one_line(exc)}"
    else:
        (only,) = data.values()
        row["mode"] = "monoplane"
        for when in ("before", "after"):
            for name in ("edv_ml", "esv_ml", "ef_percent"):
                row[f"{name}_{when}"] = _as_float(only.row.get(f"{name}_{when}"))
    return row, curve


def _info_values(views: Sequence[ViewTask]) -> dict[str, float]:
    """Reference EF/EDV/ESV from the Info cfg files (CAMUS repeats them in both views; 4CH first)."""
    values = {"info_ef_percent": nan(), "info_edv_ml": nan(), "info_esv_ml": nan()}
    for view in sorted(views, key=lambda v: v.view != "4CH"):
        info = _read_info(view.info)
        for key, attr in (("info_ef_percent", "ef_percent"), ("info_edv_ml", "edv_ml"), ("info_esv_ml", "esv_ml")):
            if math.isnan(values[key]):
                values[key] = _as_float(getattr(info, attr, None))
    return values


def process_patient(task: PatientTask) -> PatientResult:
    """Worker entry point: smooth every pending view of one patient, then the patient's indices.

    Raises only when the model cannot be loaded (a batch-wide error); everything that concerns one
    sequence ends up in its row.
    """
    model = _load_model(task.config.method, task.weights)
    info = _info_values(task.views)
    rows: list[dict[str, Any]] = []
    frames: dict[str, FramesPart] = {}
    data: dict[str, _ViewData] = {}
    for view in task.views:
        if view.done is not None:
            done = _done_view_data(view)
            if done is not None:
                data[view.view] = done
            continue
        row, view_frames, view_data = _smooth_view(task, view, model)
        row["info_ef_percent"] = info["info_ef_percent"]
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
    patient_row, curve = _patient_indices(task.patient, data, info)
    return PatientResult(
        patient=task.patient,
        rows=rows,
        frames=frames,
        patient_row=patient_row,
        curve=curve,
        weights_sha256=getattr(model, "sha256", None),
    )


def process_patient_on_dask(task: PatientTask) -> PatientResult:
    """Dask entry point: the worker process is prepared (threads) on its first task."""
    _prepare_worker(task.config.method)
    return process_patient(task)




def failed_result(task: PatientTask, exc: BaseException) -> PatientResult:
    """A patient whose task died as a whole (worker killed, cancelled): failed rows, nothing lost."""
    message = f"worker failed: {one_line(exc)}"
    rows = [dict(base_row(task, v), error=message) for v in task.views if v.done is None]
    row: dict[str, Any] = {name: nan() for name in PATIENT_COLUMNS}
    row.update(patient=task.patient, mode="none", views="", error=message)
    return PatientResult(task.patient, rows, {}, row, None)


