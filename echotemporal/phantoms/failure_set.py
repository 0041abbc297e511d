"""Failure sets for benchmarks: clean held-out sequences and their coherently broken versions.

Half of the cases are parametric phantoms, half real-shape sequences built from expert CAMUS ED/ES
masks of a measurement split (``val`` or ``test``, never ``train``); about half carry no LA label
(0/1/2-only, as most segmenters output). The input gets expert-like annotation jitter everywhere and
coherent failures (`coherent.coherent_failures`) on 30-70 % of its frames; the truth is the exact,
jitter-free sequence. Everything is a function of the seed and the case index, so a benchmark worker
can build its own case from ``(index, seed)`` alone.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echotemporal.core.labels import drop_la
from echotemporal.phantoms.coherent import broken_frames, coherent_failures
from echotemporal.phantoms.corruption import annotation_jitter
from echotemporal.phantoms.parametric import VIEWS, generate_sequence
from echotemporal.phantoms.real_shapes import (
    REAL_SHAPE_JITTER_PX,
    RealShapes,
    load_real_shapes,
    real_shape_sequence,
    real_shape_spacing_mm,
)
from echotemporal.phantoms.records import CorruptionRun

__all__ = [
    "HELD_OUT_SEED_BASE", "SOURCES", "TUNING_SEED_BASE", "FailureCase", "benchmark_coherent_case", "coherent_failure_case",
    "coherent_failure_set", "mirror_half_sequence", "write_failure_tree",
]

SOURCES: tuple[str, ...] = ("mixed", "parametric", "real")
#: Seed bases of the benchmark's generated sets (``scripts/benchmark_smoothing.py``): the held-out
#: sets that figures are reported on, and the ``--tuning`` sets that constants are chosen on.
HELD_OUT_SEED_BASE = 10_000_000
TUNING_SEED_BASE = 20_000_000
_MEASUREMENT_SPLITS = ("val", "test")


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields
class FailureCase:
    """One benchmark case: exact truth, broken input and what was broken.

    Attributes:
        index: case index within its set.
        source: "parametric" or "real-<split>".
        view: "2CH" or "4CH".
        truth: (T, H, W) uint8 exact labels (no LA when ``with_la`` is False).
        labels: (T, H, W) uint8 input: jittered truth with coherent failures.
        spacing_mm: (row_mm, col_mm).
        ed_frame: 0-based ED index.
        es_frame: 0-based ES index.
        runs: the coherent failures, sorted by first frame.
        with_la: whether the sequence carries the LA label.
    """

    index: int
    source: str
    view: str
    truth: np.ndarray
    labels: np.ndarray
    spacing_mm: tuple[float, float]
    ed_frame: int
    es_frame: int
    runs: tuple[CorruptionRun, ...]
    with_la: bool

    @property
    def broken(self) -> np.ndarray:
        """(T,) bool: frames inside a failure run (the others differ from the truth by jitter only)."""
        return broken_frames(list(self.runs), int(self.truth.shape[0]))


def mirror_half_sequence(labels: np.ndarray) -> np.ndarray:
    """(T, ...) ED -> ES half-sequence to a (2T - 2, ...) full cycle ED -> ES -> just before ED (ES at T - 1)."""
    return np.concatenate([labels, labels[-2:0:-1]])


def coherent_failure_case(
    index: int,
    seed: int,
    *,
    source: str = "mixed",
    with_la: bool | None = None,
    real: RealShapes | None = None,
    jitter_px: float | None = None,
    full_cycle: bool = False,
    broken_fraction: tuple[float, float] = (0.3, 0.7),
    run_frames: tuple[int, int] = (5, 15),
    combine_probability: float = 0.35,
) -> FailureCase:
    """Case ``index`` of the coherent failure set of ``seed``.

    Args:
        index: case index (>= 0); with ``source="mixed"`` odd indices are real-shape sequences.
        seed: set seed; the case draws from ``default_rng([seed, index])``.
        source: "mixed", "parametric" or "real".
        with_la: keep the LA label (True), drop it (False), or draw it per case (None: about half).
        real: measurement-split masks for real-shape cases (``load_real_shapes("val")`` or
            ``"test"``); required unless the case is parametric.
        jitter_px: RMS expert-annotation jitter of the input in pixels (0 for none); None: one
            native pixel, i.e. 1 on the parametric phantoms' native-like grid and
            ``REAL_SHAPE_JITTER_PX`` on the 224 grid of real-shape sequences.
        full_cycle: mirror the ED -> ES half-sequence into a full cycle (ES in the middle).
        broken_fraction, run_frames, combine_probability: how hard it fails (``coherent_failures``).

    Returns:
        The case.

    Raises:
        ValueError: unknown source, or a real-shape case without ``real`` or with training masks.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not one of {SOURCES}")
    rng = np.random.default_rng([int(seed), int(index)])
    view = VIEWS[int(rng.integers(len(VIEWS)))]
    keep_la = bool(rng.random() < 0.5) if with_la is None else bool(with_la)
    is_real = source == "real" or (source == "mixed" and index % 2 == 1)
    if is_real:
        if real is None or len(real) == 0:
            raise ValueError("real-shape cases need real=load_real_shapes('val') or load_real_shapes('test')")
        splits = set(np.unique(real.splits).tolist())
        if not splits <= set(_MEASUREMENT_SPLITS):
            raise ValueError(f"real holds masks of the {sorted(splits)} splits; measurement sets take only "
                             f"{_MEASUREMENT_SPLITS} patients (load_real_shapes('val') or 'test')")
        pairs = real.pairs()
        patient, view = pairs[int(rng.integers(len(pairs)))]
        spacing = real_shape_spacing_mm(aspect=float(rng.uniform(1.2, 1.4)))
        ed, es = real.pair(patient, view)
        phantom = real_shape_sequence(ed, es, int(rng.integers(10, 31)), spacing_mm=spacing, rng=rng, view=view)
        origin = f"real-{real.splits[0]}"
    else:
        phantom = generate_sequence(rng, view=view)
        origin = "parametric"
    truth = phantom.labels if keep_la else drop_la(phantom.labels)
    es_frame = int(phantom.es_frame)
    if full_cycle:
        truth = mirror_half_sequence(truth)
    if jitter_px is None:
        jitter_px = REAL_SHAPE_JITTER_PX if is_real else 1.0
    labels = annotation_jitter(truth, phantom.spacing_mm, rng, amplitude_px=jitter_px) if jitter_px > 0 else truth
    labels, runs = coherent_failures(labels, phantom.spacing_mm, rng, broken_fraction=broken_fraction,
                                     run_frames=run_frames, combine_probability=combine_probability)
    return FailureCase(
        index=int(index),
        source=origin,
        view=str(view),
        truth=truth,
        labels=labels,
        spacing_mm=(float(phantom.spacing_mm[0]), float(phantom.spacing_mm[1])),
        ed_frame=int(phantom.ed_frame),
        es_frame=es_frame,
        runs=tuple(runs),
        with_la=keep_la,
    )


def coherent_failure_set(
    n: int,
    seed: int,
    *,
    source: str = "mixed",
    with_la: bool | None = None,
    real_split: str = "test",
    real: RealShapes | None = None,
    jitter_px: float | None = None,
    full_cycle: bool = False,
) -> list[FailureCase]:
    """``n`` coherent failure cases (see `coherent_failure_case`), built in memory.

    Args:
        n: number of cases.
        seed: set seed.
        source: "mixed" (alternating parametric / real-shape), "parametric" or "real".
        with_la: keep, drop or draw (None) the LA label per case.
        real_split: "val" or "test": the split loaded when ``real`` is None and real cases are needed.
        real: preloaded measurement-split masks (saves the load when sets are built repeatedly).
        jitter_px: RMS annotation jitter of the inputs in pixels; None: one native pixel (see
            `coherent_failure_case`).
        full_cycle: mirror each half-sequence into a full cycle.

    Returns:
        The cases, index 0..n-1.

    Raises:
        ValueError: a training split, or an unknown source.
    """
    if real_split not in _MEASUREMENT_SPLITS:
        raise ValueError(f"real_split={real_split!r}: measurement sets take only {_MEASUREMENT_SPLITS} patients")
    needs_real = source == "real" or (source == "mixed" and n > 1)
    if needs_real and real is None:
        real = load_real_shapes(real_split)
    return [coherent_failure_case(i, seed, source=source, with_la=with_la, real=real, jitter_px=jitter_px,
                                  full_cycle=full_cycle) for i in range(n)]


def benchmark_coherent_case(index: int, seed_base: int = HELD_OUT_SEED_BASE, real: RealShapes | None = None) -> FailureCase:
    """Case ``index`` of the benchmark's ``coherent`` set: cases 2 and 3 of every 4 are full cycles.

    Args:
        index: case index.
        seed_base: ``HELD_OUT_SEED_BASE`` (``test`` patients) or ``TUNING_SEED_BASE`` (``val``).
        real: the measurement split's masks (``load_real_shapes``): ``test`` for the held-out set,
            ``val`` for the tuning set.
    """
    return coherent_failure_case(index, seed_base + 3, real=real, full_cycle=index % 4 >= 2)


#: How the ``near-total`` benchmark set fails: nearly every frame broken, in long runs that mostly
#: overlap two kinds (a segmenter that lost the sequence, as in the seed-23 U-Net case 9).
NEAR_TOTAL = {"broken_fraction": (0.9, 1.0), "run_frames": (8, 20), "combine_probability": 0.7}


def benchmark_near_total_case(index: int, seed_base: int = HELD_OUT_SEED_BASE, real: RealShapes | None = None) -> FailureCase:
    """Case ``index`` of the benchmark's ``near-total`` set: ``coherent`` with 90-100 % of the frames broken
    (``NEAR_TOTAL``); cases 2 and 3 of every 4 are full cycles (arguments as ``benchmark_coherent_case``)."""
    return coherent_failure_case(index, seed_base + 5, real=real, full_cycle=index % 4 >= 2, **NEAR_TOTAL)


def write_failure_tree(root: str | os.PathLike[str], cases: list[FailureCase], *, overwrite: bool = False) -> Path:
    """Write failure cases in the CAMUS layout, so ``echotemporal smooth`` and ``batch`` read them as they are.

    Layout (one folder per case; a full cycle keeps the half-sequence name so that ``batch`` finds it)::

        ROOT/patientNNNN/patientNNNN_<view>_half_sequence_gt.nii.gz     the broken input (case NNNN - 1)
        ROOT/patientNNNN/patientNNNN_<view>_half_sequence_truth.nii.gz  the exact, unbroken labels
        ROOT/patientNNNN/Info_<view>.cfg                                ED, ES (1-based), NbFrame
        ROOT/manifest.csv                                               case, view, kind, first/last frame (0-based), detail
        ROOT/manifest.json                                              per case: source, LA or not, frames, ED/ES, runs

    Args:
        root: output folder (created).
        cases: the cases (``coherent_failure_set``, ``benchmark_coherent_case``).
        overwrite: replace existing files.

    Returns:
        ``root`` as a Path.
    """
    from echotemporal.io import InfoCfg, write_info_cfg, write_sequence
    from echotemporal.phantoms.tree import GT_SUFFIX, TRUTH_SUFFIX

    root = Path(root)
    rows, entries = [], []
    for case in cases:
        name = f"patient{case.index + 1:04d}"  # the CAMUS naming, so that `batch` finds the case
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        write_sequence(folder / f"{name}_{case.view}{GT_SUFFIX}.nii.gz", case.labels, spacing_mm=case.spacing_mm, overwrite=overwrite)
        write_sequence(folder / f"{name}_{case.view}{TRUTH_SUFFIX}.nii.gz", case.truth, spacing_mm=case.spacing_mm, overwrite=overwrite)
        n_frames = int(case.truth.shape[0])
        write_info_cfg(folder / f"Info_{case.view}.cfg", InfoCfg(ed_frame=case.ed_frame, es_frame=case.es_frame, n_frames=n_frames),
                       overwrite=overwrite)
        runs = [{"kind": r.kind, "first_frame": r.first_frame, "last_frame": r.last_frame, "detail": r.detail} for r in case.runs]
        rows += [{"case": name, "view": case.view, **run} for run in runs]
        entries.append({"case": name, "index": case.index, "source": case.source, "view": case.view, "with_la": case.with_la,
                        "n_frames": n_frames, "ed_frame": case.ed_frame, "es_frame": case.es_frame,
                        "broken_frames": int(case.broken.sum()), "runs": runs})
    columns = ("case", "view", "kind", "first_frame", "last_frame", "detail")
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (root / "manifest.json").write_text(json.dumps({"cases": entries}, indent=2) + "\n", encoding="utf-8")
    return root
