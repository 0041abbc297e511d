"""Parent side of a batch: discovery, resume, dispatch (process pool, Dask, inline), progress, tables."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from echotemporal import __version__
from echotemporal.batch.tables import (
    BEAT_COLUMNS,
    BEATS_CSV,
    BIPLANE_COLUMNS,
    BIPLANE_CSV,
    CONFIG_YAML,
    FRAMES_CSV,
    PATIENT_COLUMNS,
    PATIENTS_CSV,
    SEQUENCE_COLUMNS,
    SEQUENCES_CSV,
    FramesPart,
    frames_csv,
    read_tables,
    row_from_csv,
    sort_key,
    write_csv,
)
from echotemporal.batch.cleanup import remove_previous_outputs
from echotemporal.batch.dispatch import dispatch, fatal
from echotemporal.batch.lock import output_lock
from echotemporal.batch.signals import SEQUENCE_TIME_LIMIT_S, terminate_as_interrupt
from echotemporal.batch.tasks import PatientResult, PatientTask, ViewTask
from echotemporal.batch.worker import failed_result
from echotemporal.core.config import SmoothingConfig, config_to_dict
from echotemporal.core.errors import ConfigError, InputFileError
from echotemporal.io.atomic import check_overwrite, write_atomic
from echotemporal.measure.inputs import given_spacing
from echotemporal.model.registry import file_sha256

__all__ = ["BatchSummary", "run_batch"]

#: The parent rewrites the tables after this many seconds even when fewer than flush_every finished.
FLUSH_EVERY_SECONDS = 30.0


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did.

    Attributes:
        out: output folder (holds the tables and the corrected tree).
        n_sequences: sequences discovered under the root.
        n_ok: sequences finished successfully (this run and, with resume, earlier runs).
        n_failed: sequences that failed (their rows carry the message).
        n_skipped: sequences skipped because an earlier run finished them (``resume``).
        seconds: wall-clock time of this run.
        tables: table name -> path (sequences, frames, patients, biplane, beats, config).
        outcomes: outcome ("clean", "residue", "worse", "failed") -> number of sequences.
        modes: patient mode ("biplane", "monoplane", "none") -> number of patients.
        n_warned: sequences whose row carries warnings (the ``warnings`` column of sequences.csv).
    """

    out: Path
    n_sequences: int
    n_ok: int
    n_failed: int
    n_skipped: int
    seconds: float
    tables: dict[str, Path]
    outcomes: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    n_warned: int = 0


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class BatchState:
    """Everything the parent keeps: small rows and per-frame tables, never label maps."""

    out: Path
    views: tuple[str, ...]
    config_doc: dict[str, Any]
    order: dict[str, int] = field(default_factory=dict)  # patient -> discovery rank
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    frames: dict[tuple[str, str], FramesPart] = field(default_factory=dict)
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    beats: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, result: PatientResult) -> None:
        for row in result.rows:
            key = (row["patient"], row["view"])
            self.rows[key] = row
            self.frames.pop(key, None)
            self.beats[key] = list(result.beats.get(row["view"], []))
        for view, part in result.frames.items():
            self.frames[(result.patient, view)] = part
        self.patients[result.patient] = result.patient_row
        if result.curve is not None:
            self.curves[result.patient] = result.curve
        else:
            self.curves.pop(result.patient, None)
        if result.weights_sha256 and not self.config_doc.get("weights_sha256"):
            self.config_doc["weights_sha256"] = result.weights_sha256

    def sequences_table(self) -> pd.DataFrame:
        keys = sorted(self.rows, key=sort_key(self.order, self.views))
        table = pd.DataFrame([self.rows[k] for k in keys], columns=list(SEQUENCE_COLUMNS))
        table[["error", "warnings"]] = table[["error", "warnings"]].fillna("")
        return table

    def write(self) -> None:
        """Write all tables; sequences.csv last, since resume trusts it."""
        self.out.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.frames, key=sort_key(self.order, self.views))
        text = frames_csv([self.frames[k] for k in keys])
        write_atomic(self.out / FRAMES_CSV, lambda tmp: tmp.write_text(text), overwrite=True, durable=True)
        patients = sorted(self.curves, key=sort_key(self.order, self.views))
        curves = pd.concat([self.curves[p] for p in patients], ignore_index=True) if patients else pd.DataFrame(
            columns=list(BIPLANE_COLUMNS)
        )
        write_csv(self.out / BIPLANE_CSV, curves[list(BIPLANE_COLUMNS)])
        order = sorted(self.patients, key=sort_key(self.order, self.views))
        patient_table = pd.DataFrame([self.patients[p] for p in order], columns=list(PATIENT_COLUMNS))
        write_csv(self.out / PATIENTS_CSV, patient_table)
        keys = sorted(self.beats, key=sort_key(self.order, self.views))
        beats = pd.DataFrame([b for k in keys for b in self.beats[k]], columns=list(BEAT_COLUMNS))
        write_csv(self.out / BEATS_CSV, beats)
        text = yaml.safe_dump(self.config_doc, sort_keys=False)
        write_atomic(self.out / CONFIG_YAML, lambda tmp: tmp.write_text(text), overwrite=True, durable=True)
        write_csv(self.out / SEQUENCES_CSV, self.sequences_table())


def _load_previous(state: BatchState, out: Path, result_keys: dict[str, Any]) -> set[tuple[str, str]]:
    """Resume: keep the rows of sequences an earlier run finished; return their keys."""
    config_path = out / CONFIG_YAML
    if config_path.is_file():
        previous = yaml.safe_load(config_path.read_text()) or {}
        differ = [k for k, v in result_keys.items() if k in previous and previous[k] != v]
        if differ:
            shown = "; ".join(f"{k}: {previous[k]!r} there, {result_keys[k]!r} now" for k in differ)
            raise ConfigError(
                f"{config_path}: cannot resume with different settings ({shown}); "
                "resume with the same options, or write to a new -o folder"
            )
    tables = read_tables(out)
    finished: set[tuple[str, str]] = set()
    for record in tables.sequences.to_dict("records"):
        record = row_from_csv(record)
        key = (str(record["patient"]), str(record["view"]))
        if record.get("status") == "ok" and (out / str(record["output"])).is_file():
            state.rows[key] = record
            finished.add(key)
    if not tables.frames.empty:
        for key, part in tables.frames.groupby(["patient", "view"], sort=False):
            if key in finished:
                state.frames[key] = FramesPart.from_table(part)
    if tables.beats is not None and not tables.beats.empty:
        for key, part in tables.beats.groupby(["patient", "view"], sort=False):
            if key in finished:
                state.beats[key] = part.to_dict("records")
    for record in tables.patients.to_dict("records"):
        state.patients[str(record["patient"])] = row_from_csv(record)
    if not tables.biplane.empty:
        for patient, part in tables.biplane.groupby("patient", sort=False):
            state.curves[str(patient)] = part.reset_index(drop=True)
    return finished


def _build_tasks(
    cases: Iterable[Any],
    root: Path,
    out: Path,
    config: SmoothingConfig,
    weights: str | None,
    overwrite: bool,
    finished: set[tuple[str, str]],
    state: BatchState,
    pair_suffix: str = "_gt",
) -> list[PatientTask]:
    by_patient: dict[str, list[Any]] = {}
    for case in cases:
        by_patient.setdefault(case.patient, []).append(case)
    tasks = []
    for patient, patient_cases in by_patient.items():
        views = []
        copies = []
        for case in patient_cases:
            # Absolute but not resolved: a patient folder may be a symbolic link, the mirror keeps its name.
            path = Path(os.path.abspath(case.path))
            info_path = None if case.info_path is None else Path(os.path.abspath(case.info_path))
            relative = path.relative_to(root)
            es_input = None if case.es_path is None else Path(os.path.abspath(case.es_path))
            if es_input is not None:  # a CAMUS-2019 pair: one 2-frame sequence beside the ED mask's place
                from echotemporal.io.camus_pairs import pair_output_name

                relative = relative.with_name(pair_output_name(case, pair_suffix))
            key = (patient, case.view)
            views.append(
                ViewTask(
                    view=case.view,
                    input=path,
                    info=info_path,
                    output=out / relative,
                    out_relative=relative.as_posix(),
                    done=state.rows.get(key) if key in finished else None,
                    es_input=es_input,
                )
            )
            if info_path is not None:
                copies.append((info_path, out / info_path.relative_to(root)))
        task = PatientTask(patient, tuple(views), config, weights, overwrite, tuple(copies))
        if task.n_todo or patient not in state.patients:
            tasks.append(task)
    return tasks


def _discover(
    root: Path, out: Path, suffix: str, views: Sequence[str], workers: int, *, resume: bool, overwrite: bool,
    ed_es_pairs: bool = False,
) -> list[Any]:
    """The CAMUS cases under ``root``, after checking the arguments that fail before any work starts."""
    from echotemporal.io import discover_camus
    from echotemporal.io.camus_pairs import discover_camus_pairs

    if int(workers) < 0:
        raise ConfigError(f"workers={workers}: use --workers 1 or more (0 runs in this process)")
    if out == root:
        raise ConfigError(
            f"{out}: the output folder must not be the CAMUS root (the mirror keeps file names); pick another -o"
        )
    if ed_es_pairs:
        cases = discover_camus_pairs(root, suffix=suffix, views=tuple(views))
        if not cases:
            raise InputFileError(
                f"{root}: no CAMUS-2019 ED/ES pairs patient*/patient*_{{{','.join(views)}}}_{{ED,ES}}{suffix}.mhd "
                "found; check the CAMUS root and --suffix/--views"
            )
        return cases
    cases = discover_camus(root, suffix=suffix, views=tuple(views))
    if not cases and discover_camus_pairs(root, views=tuple(views)):
        raise InputFileError(
            f"{root}: CAMUS-2019 ED/ES masks (patient*_{{2CH,4CH}}_{{ED,ES}}_gt.mhd) but no {suffix} sequences; "
            "add --ed-es-pairs to process each view's ED and ES masks as a 2-frame sequence"
        )
    if not cases:
        raise InputFileError(
            f"{root}: no sequences patient*/patient*_{{{','.join(views)}}}{suffix}.nii.gz|.mhd found; "
            "check the CAMUS root and --suffix/--views"
        )
    return cases


def _weights_argument(weights: str | Path | None) -> str | None:
    """A weights file as an absolute path (workers may run elsewhere); anything else is a model name
    for pretrained.load_model, which reports a bad one in the first task."""
    if weights is None:
        return None
    candidate = Path(weights).expanduser()
    return str(candidate.resolve()) if candidate.is_file() else str(weights)


def _config_document(
    root: Path, views: Sequence[str], settings: dict[str, Any], config: SmoothingConfig, workers: int, scheduler: Any
) -> dict[str, Any]:
    """The ``config.yaml`` of a batch: settings, weights hash when known now, versions."""
    weights_str = settings["weights"]
    weights_file = weights_str is not None and config.method == "arvae" and Path(weights_str).is_file()
    return {
        "echotemporal_version": __version__,
        "command": "batch",
        "root": str(root),
        "views": list(views),
        **settings,
        # Known now for a weights file; for the shipped model, the first worker result reports it.
        "weights_sha256": file_sha256(weights_str) if weights_file else None,
        "workers": int(workers),
        "scheduler": scheduler if isinstance(scheduler, str) or scheduler is None else repr(scheduler),
        "versions": {d: _version(d) for d in ("numpy", "scipy", "pandas", "torch", "SimpleITK", "distributed")},
        "python": sys.version.split()[0],
    }


class _Progress:
    """Collects finished patients into the state, updates the bar and rewrites the tables now and then."""

    def __init__(self, state: BatchState, n_todo: int, n_before: int, progress: bool, flush_every: int) -> None:
        from tqdm import tqdm

        self.state = state
        self.flush_every = flush_every
        self.bar = tqdm(
            total=n_todo,
            unit="seq",
            desc=f"batch ({n_before} done before)" if n_before else "batch",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self.since_flush = 0
        self.failed = 0
        self.flushed_at = time.monotonic()

    def __call__(self, task: PatientTask, outcome: PatientResult | BaseException) -> None:
        if isinstance(outcome, BaseException):
            if fatal(outcome):
                raise outcome
            outcome = failed_result(task, outcome)
        self.state.add(outcome)
        self.failed += sum(row["status"] != "ok" for row in outcome.rows)
        self.since_flush += len(outcome.rows)
        self.bar.update(len(outcome.rows))
        if self.failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)
        if self.since_flush >= self.flush_every or time.monotonic() - self.flushed_at > FLUSH_EVERY_SECONDS:
            self.state.write()
            self.since_flush = 0
            self.flushed_at = time.monotonic()


def _summary(out: Path, state: BatchState, n_sequences: int, n_skipped: int, start: float) -> BatchSummary:
    statuses = [row.get("status") for row in state.rows.values()]
    outcomes = {name: 0 for name in ("clean", "residue", "worse", "failed")}
    for row in state.rows.values():
        outcome = row.get("outcome")
        name = "failed" if row.get("status") != "ok" else outcome if isinstance(outcome, str) and outcome else "clean"
        outcomes[name] = outcomes.get(name, 0) + 1
    modes: dict[str, int] = {}
    for row in state.patients.values():
        modes[str(row.get("mode"))] = modes.get(str(row.get("mode")), 0) + 1
    return BatchSummary(
        out=out,
        n_sequences=n_sequences,
        n_ok=sum(s == "ok" for s in statuses),
        n_failed=sum(s != "ok" for s in statuses),
        n_skipped=n_skipped,
        seconds=time.perf_counter() - start,
        tables={
            "sequences": out / SEQUENCES_CSV,
            "frames": out / FRAMES_CSV,
            "patients": out / PATIENTS_CSV,
            "biplane": out / BIPLANE_CSV,
            "beats": out / BEATS_CSV,
            "config": out / CONFIG_YAML,
        },
        outcomes=outcomes,
        modes=modes,
        n_warned=sum(bool(row.get("warnings")) for row in state.rows.values()),
    )


def run_batch(
    root: str | Path,
    out: str | Path,
    *,
    suffix: str = "_half_sequence_gt",
    views: Sequence[str] = ("2CH", "4CH"),
    method: str | None = None,
    weights: str | Path | None = None,
    config: SmoothingConfig | None = None,
    workers: int = 1,
    scheduler: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    flush_every: int = 20,
    fps: float | None = None,
    spacing_mm: Sequence[float] | None = None,
    allow_implausible: bool = False,
    ed_es_pairs: bool = False,
    time_limit_s: float | None = SEQUENCE_TIME_LIMIT_S,
) -> BatchSummary:
    """Smooth every sequence of a CAMUS tree and write corrected files and tables under ``out``.

    Args:
        root: CAMUS root (``patientNNNN/patientNNNN_{VIEW}{suffix}.nii.gz|.mhd`` + ``Info_{VIEW}.cfg``).
        out: output folder: a mirror of ``root`` with the corrected sequences, plus the tables
            (module docstring). Must not be ``root`` itself.
        suffix: file-name suffix of the sequences, e.g. ``_half_sequence_gt`` or your segmenter's.
        views: views to process.
        method: "arvae", "gaussian" or "none"; default ``config.method``.
        weights: model weights file or shipped-model name for "arvae"; default the shipped model.
        config: smoothing configuration (defaults: ``SmoothingConfig()``).
        workers: local worker processes (ignored when ``scheduler`` is given); 0 runs everything
            in the calling process, without a pool (debugging, tests).
        scheduler: Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``; the
            work then runs on that cluster, whose workers must have echotemporal installed.
        resume: keep the sequences an earlier run into ``out`` finished (status ok, file present)
            and process the others.
        overwrite: allow a fresh run into a folder that already holds batch results.
        progress: show a progress bar (rate, ETA) on stderr.
        flush_every: rewrite the tables after this many finished sequences (and every 30 s).
        fps: frames per second of every sequence (None: each file's header), for rates in mL/s.
        spacing_mm: (row_mm, col_mm) pixel size of every sequence, replacing each header's (also
            where a header has none); None: each file's header, and a sequence whose header has no
            plausible spacing fails.
        allow_implausible: sequences with implausible ED/ES or orientation are processed with a
            warning instead of failing.
        ed_es_pairs: the native CAMUS-2019 layout: each view's ``_ED{suffix}.mhd`` and
            ``_ES{suffix}.mhd`` masks read as a 2-frame sequence (frame 1 ED, frame 2 ES; indices and
            per-frame checks, no temporal step), written as ``<patient>_<view>_EDES{suffix}.nii.gz``.
        time_limit_s: wall time (s) a sequence may take before it is stopped and recorded as failed
            (a sequence takes seconds; this bounds one that would not end); None or 0: no limit. Enforced
            in local worker processes and with ``workers=0``, not on a Dask cluster.

    While it runs, ``out`` is locked (:mod:`echotemporal.batch.lock`): a second batch on it stops at
    once. SIGTERM and SIGHUP stop it like Ctrl-C, except that running workers are stopped too; the
    tables then hold what finished. With ``overwrite`` the files an earlier batch wrote into ``out``
    (its tables, corrected sequences and reports, review files) are removed first.

    Returns:
        BatchSummary; failed sequences are rows of ``sequences.csv`` with their message.

    Raises:
        InputFileError: no sequence found under ``root``, or a ``spacing_mm`` no echo produces.
        OutputExistsError: ``out`` already holds a batch and neither ``resume`` nor ``overwrite``.
        OutputLockedError: another batch is running on ``out``.
        ConfigError: bad method/workers, ``out`` equal to ``root``, or resuming with other settings.
        WeightsError: the model cannot be loaded (the batch stops; finished rows are written).
        KeyboardInterrupt: re-raised after the tables of what finished have been written
            (:class:`echotemporal.batch.signals.Terminated` for SIGTERM/SIGHUP).
    """
    start = time.perf_counter()
    root = Path(root).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    base = config if config is not None else SmoothingConfig()
    config = dataclasses.replace(base, method=method or base.method)
    weights_str = _weights_argument(weights)
    spacing = None if spacing_mm is None else given_spacing(spacing_mm)  # checked once, before any work
    cases = _discover(root, out, suffix, views, workers, resume=resume, overwrite=overwrite, ed_es_pairs=ed_es_pairs)
    with output_lock(out) as note, terminate_as_interrupt():
        if note is not None:
            warnings.warn(f"{out}: {note}", RuntimeWarning, stacklevel=2)
        # A folder that holds a batch's table holds its results: continue them, or redo them.
        check_overwrite(out / SEQUENCES_CSV, resume or overwrite, alternative=", or --resume to continue that batch")
        if overwrite and not resume:
            remove_previous_outputs(out)
        return _run_locked(root, out, cases, suffix, views, config, weights_str, workers, scheduler, resume,
                           overwrite, progress, flush_every, fps, spacing, allow_implausible, start, time_limit_s)


def _run_locked(
    root: Path, out: Path, cases: list[Any], suffix: str, views: Sequence[str], config: SmoothingConfig,
    weights_str: str | None, workers: int, scheduler: Any, resume: bool, overwrite: bool, progress: bool,
    flush_every: int, fps: float | None, spacing_mm: tuple[float, float] | None, allow_implausible: bool, start: float,
    time_limit_s: float | None = None,
) -> BatchSummary:
    """The batch proper, with OUT locked and SIGTERM/SIGHUP raising like Ctrl-C."""
    settings = {"suffix": suffix, "method": config.method, "weights": weights_str, "smoothing": config_to_dict(config),
                "fps": fps, "spacing_mm": None if spacing_mm is None else list(spacing_mm)}
    config_doc = _config_document(root, views, settings, config, workers, scheduler)
    order: dict[str, int] = {}
    for case in cases:
        order.setdefault(case.patient, len(order))
    state = BatchState(out=out, views=tuple(views), config_doc=config_doc, order=order)
    # The root too: resumed from another tree, the tables would mix the two trees' sequences.
    compared = {"root": str(root), **settings}
    finished = _load_previous(state, out, compared) if resume and (out / SEQUENCES_CSV).exists() else set()
    if resume and not config_doc["weights_sha256"] and finished:
        config_doc["weights_sha256"] = read_tables(out).config.get("weights_sha256")
    tasks = _build_tasks(cases, root, out, config, weights_str, overwrite or resume, finished, state, suffix)
    tasks = [dataclasses.replace(task, fps=fps, spacing_mm=spacing_mm, allow_implausible=allow_implausible,
                                 time_limit_s=time_limit_s) for task in tasks]
    out.mkdir(parents=True, exist_ok=True)
    state.write()
    on_result = _Progress(state, sum(task.n_todo for task in tasks), len(finished), progress, flush_every)
    try:
        dispatch(tasks, scheduler, workers, config, weights_str, on_result)
    finally:
        # Whatever happened (Ctrl-C included), what finished is on disk and consistent.
        on_result.bar.close()
        state.write()
    return _summary(out, state, len(cases), len(finished), start)
