"""Failure sets for benchmarks: clean held-out sequences and their coherently broken versions.

Half of the cases are parametric phantoms, half real-shape sequences built from expert CAMUS ED/ES
masks of a measurement split (``val`` or ``test``, never ``train``); about half carry no LA label
(0/1/2-only, as most segmenters output). The input gets expert-like annotation jitter everywhere and
coherent failures (`coherent.coherent_failures`) on 30-70 % of its frames; the truth is the exact,
jitter-free sequence. Everything is a function of the seed and the case index, so a benchmark worker
can build its own case from ``(index, seed)`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echotemporal.core.labels import drop_la
from echotemporal.phantoms.coherent import broken_frames, coherent_failures
from echotemporal.phantoms.corruption import annotation_jitter
from echotemporal.phantoms.parametric import VIEWS, generate_sequence
from echotemporal.phantoms.real_shapes import RealShapes, load_real_shapes, real_shape_sequence, real_shape_spacing_mm
from echotemporal.phantoms.records import CorruptionRun

__all__ = ["SOURCES", "FailureCase", "coherent_failure_case", "coherent_failure_set"]

SOURCES: tuple[str, ...] = ("mixed", "parametric", "real")
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


def _mirror(labels: np.ndarray) -> np.ndarray:
    """ED -> ES half-sequence to a full cycle ED -> ES -> just before ED."""
    return np.concatenate([labels, labels[-2:0:-1]])


def coherent_failure_case(
    index: int,
    seed: int,
    *,
    source: str = "mixed",
    with_la: bool | None = None,
    real: RealShapes | None = None,
    jitter_px: float = 1.0,
    full_cycle: bool = False,
) -> FailureCase:
    """Case ``index`` of the coherent failure set of ``seed``.

    Args:
        index: case index (>= 0); with ``source="mixed"`` odd indices are real-shape sequences.
        seed: set seed; the case draws from ``default_rng([seed, index])``.
        source: "mixed", "parametric" or "real".
        with_la: keep the LA label (True), drop it (False), or draw it per case (None: about half).
        real: measurement-split masks for real-shape cases (``load_real_shapes("val")`` or
            ``"test"``); required unless the case is parametric.
        jitter_px: RMS expert-annotation jitter of the input in pixels (0 for none).
        full_cycle: mirror the ED -> ES half-sequence into a full cycle (ES in the middle).

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
        truth = _mirror(truth)
    labels = annotation_jitter(truth, phantom.spacing_mm, rng, amplitude_px=jitter_px) if jitter_px > 0 else truth
    labels, runs = coherent_failures(labels, phantom.spacing_mm, rng)
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
    jitter_px: float = 1.0,
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
        jitter_px: RMS annotation jitter of the inputs in pixels.
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
