"""Benchmark temporal-inconsistency detection (DESIGN.md §4.1) on held-out corrupted and clean sequences.

Sequences (none used by the calibration):

* parametric phantoms with seeds ``7_000_000 + i`` (calibration uses 0..n), 2CH/4CH alternating;
* real-shape sequences from every ``val``-split patient x view (``load_real_shapes("val")``),
  10-30 frames on a 448x448 grid, as in the calibration.

Each sequence gets realistic annotation jitter (``annotation_jitter``, 1 px): that is the *clean*
sequence. One recorded corruption (``corrupt_sequence``, kinds cycled so that each appears about
equally, temporal kinds twice as often) applied to the clean sequence gives the *corrupted* one.

Reported, with the packaged thresholds (or ``--thresholds``):

* recall over corrupted frames whose corruption is *measurable*: some attribute's metric at that
  frame moves by more than its tau versus the clean sequence (or the attribute becomes
  unmeasurable), i.e. the frames the metric is able to see;
* recall over all corrupted frames of the temporal kinds (contraction, dilation, vertical and
  horizontal shifts), measurable or not, and per kind;
* false positives on the clean sequences: flagged frames / frames, and the fraction of sequences
  with any flag; also flags on corrupted sequences away from the corrupted frames and their
  neighbours (which move by −δ/2 by construction).

Usage: ``python scripts/benchmark_detection.py [--n-parametric 110] [--workers 1]`` (~5 min).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from echotemporal.measure.attributes import compute_attributes  # noqa: E402
from echotemporal.phantoms import (  # noqa: E402
    CORRUPTION_KINDS,
    NATIVE_LIKE_GRID,
    generate_sequence,
    load_real_shapes,
    real_shape_sequence,
    real_shape_spacing_mm,
)
from echotemporal.phantoms.corruption import annotation_jitter, corrupt_sequence  # noqa: E402
from echotemporal.phantoms.records import TEMPORAL_CORRUPTION_KINDS  # noqa: E402
from echotemporal.measure.temporal import consistency_metric, detect_inconsistent_frames
from echotemporal.measure.temporal import load_thresholds  # noqa: E402

PARAMETRIC_SEED0 = 7_000_000
REAL_SEED0 = 8_000_000
REAL_SHAPE_GRID = (NATIVE_LIKE_GRID, NATIVE_LIKE_GRID)
#: Temporal kinds twice, so that they make up most of the corrupted set.
KIND_CYCLE = TEMPORAL_CORRUPTION_KINDS * 2 + tuple(k for k in CORRUPTION_KINDS if k not in TEMPORAL_CORRUPTION_KINDS)


def _clean_sequence(job: tuple) -> tuple[str, np.ndarray, tuple[float, float], np.random.Generator]:
    source, seed, payload = job
    rng = np.random.default_rng(seed)
    if source == "parametric":
        seq = generate_sequence(rng, view=("2CH", "4CH")[seed % 2])
    else:
        ed, es = payload
        spacing = real_shape_spacing_mm(aspect=float(rng.uniform(1.2, 1.4)), depth_mm=float(rng.uniform(120, 150)))
        seq = real_shape_sequence(ed, es, int(rng.integers(10, 31)), spacing_mm=spacing, rng=rng,
                                  output_shape=REAL_SHAPE_GRID)
    return source, seq.labels, seq.spacing_mm, rng


def run_case(job: tuple) -> dict:
    """Clean (jittered) and corrupted attributes of one held-out sequence."""
    source, labels, spacing, rng = _clean_sequence(job[:3])
    kind = job[3]
    clean = annotation_jitter(labels, spacing, rng, amplitude_px=1.0)
    corrupted, records = corrupt_sequence(clean, spacing, rng, kinds=(kind,), n_corruptions=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmeasurable frames are NaN, which detection handles
        a_clean = compute_attributes(clean, spacing)
        a_corr = compute_attributes(corrupted, spacing)
    return {"source": source, "name": job[4], "kind": kind, "frames": sorted({r.frame for r in records}),
            "a_clean": a_clean, "a_corr": a_corr}


def make_jobs(n_parametric: int, n_real: int) -> list[tuple]:
    jobs = []
    for i in range(n_parametric):
        seed = PARAMETRIC_SEED0 + i
        jobs.append(("parametric", seed, None, KIND_CYCLE[i % len(KIND_CYCLE)], f"parametric seed={seed}"))
    shapes = load_real_shapes("val")
    for j, (patient, view) in enumerate(shapes.pairs()[:n_real]):
        jobs.append(("real", REAL_SEED0 + j, shapes.pair(patient, view), KIND_CYCLE[(j + 5) % len(KIND_CYCLE)],
                     f"real {patient} {view}"))
    return jobs


def evaluate(cases: list[dict], thresholds) -> None:
    """Print the detection table."""
    lo, hi, tau = thresholds.lo, thresholds.hi, thresholds.tau
    rows = []  # one per corrupted frame: (kind, source, measurable, detected)
    clean_flags = clean_frames = clean_seq_flagged = 0
    off_flags = off_frames = 0
    clean_by_attr = np.zeros(len(tau), dtype=int)
    for c in cases:
        f_clean = detect_inconsistent_frames(c["a_clean"], thresholds)
        f_corr = detect_inconsistent_frames(c["a_corr"], thresholds)
        clean_flags += int(f_clean.any(axis=1).sum())
        clean_by_attr += f_clean.sum(axis=0)
        clean_frames += f_clean.shape[0]
        clean_seq_flagged += int(f_clean.any())
        m_clean = consistency_metric(c["a_clean"], lo, hi)
        m_corr = consistency_metric(c["a_corr"], lo, hi)
        with np.errstate(invalid="ignore"):
            moved = np.abs(m_corr - m_clean) > tau
        vanished = np.isnan(c["a_corr"]) & ~np.isnan(c["a_clean"]) & (~np.isnan(c["a_corr"])).any(axis=0)
        measurable = (moved | vanished).any(axis=1)
        for t in c["frames"]:
            rows.append((c["kind"], c["source"], bool(measurable[t]), bool(f_corr[t].any())))
        if c["kind"] != "boundary_noise":
            near = set()
            for t in c["frames"]:
                near |= {t - 1, t, t + 1}
            away = [t for t in range(f_corr.shape[0]) if t not in near]
            off_flags += int(f_corr[away].any(axis=1).sum())
            off_frames += len(away)
    kinds = np.array([r[0] for r in rows])
    src = np.array([r[1] for r in rows])
    meas = np.array([r[2] for r in rows])
    det = np.array([r[3] for r in rows])

    def rec(sel: np.ndarray) -> str:
        return f"{det[sel].mean() * 100:6.1f}% ({det[sel].sum()}/{sel.sum()})" if sel.any() else "     -"

    print(f"\n{'corruption kind':20s} {'frames':>6s} {'measurable':>10s}  "
          f"{'recall (measurable)':>20s}  {'recall (all)':>18s}")
    for kind in CORRUPTION_KINDS:
        sel = kinds == kind
        if sel.any():
            print(f"{kind:20s} {sel.sum():6d} {meas[sel].sum():10d}  {rec(sel & meas):>20s}  {rec(sel):>18s}")
    temporal = np.isin(kinds, TEMPORAL_CORRUPTION_KINDS)
    print(f"{'-' * 80}")
    print(f"{'ALL measurable':20s} {meas.size:6d} {meas.sum():10d}  {rec(meas):>20s}")
    print(f"{'temporal kinds':20s} {temporal.sum():6d} {meas[temporal].sum():10d}  {rec(temporal & meas):>20s}  "
          f"{rec(temporal):>18s}")
    for s in ("parametric", "real"):
        sel = temporal & (src == s)
        print(f"{'  temporal, ' + s:20s} {sel.sum():6d} {meas[sel].sum():10d}  {rec(sel & meas):>20s}  {rec(sel):>18s}")
    n_seq = len(cases)
    print(f"\nclean sequences: {n_seq} ({sum(c['source'] == 'parametric' for c in cases)} parametric, "
          f"{sum(c['source'] == 'real' for c in cases)} real-shape val), {clean_frames} frames")
    print(f"  false-positive frames: {clean_flags}/{clean_frames} = {100 * clean_flags / clean_frames:.2f} %")
    print(f"  sequences with any flag: {clean_seq_flagged}/{n_seq} = {100 * clean_seq_flagged / n_seq:.1f} %")
    print("  flags by attribute: " + ", ".join(f"{n}={int(v)}" for n, v in zip(thresholds.names, clean_by_attr)))
    print(f"corrupted sequences, frames away from the corruption (not t-1, t, t+1; boundary_noise excluded): "
          f"{off_flags}/{off_frames} flagged = {100 * off_flags / max(off_frames, 1):.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-parametric", type=int, default=110)
    parser.add_argument("--n-real", type=int, default=100, help="val patient x view pairs (100 exist)")
    parser.add_argument("--thresholds", type=Path, default=None, help="thresholds YAML (default: packaged)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    th = load_thresholds(args.thresholds)
    jobs = make_jobs(args.n_parametric, args.n_real)
    t0 = time.perf_counter()
    cases = []
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    results = pool.map(run_case, jobs, chunksize=1) if pool else map(run_case, jobs)
    for i, c in enumerate(results):
        cases.append(c)
        if (i + 1) % 20 == 0 or i + 1 == len(jobs):
            print(f"  {i + 1}/{len(jobs)} sequences, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if pool:
        pool.shutdown()
    print(f"thresholds: {args.thresholds or 'packaged'}; tau = "
          + ", ".join(f"{n}={t:.4g}" for n, t in zip(th.names, th.tau)))
    evaluate(cases, th)


if __name__ == "__main__":
    main()
