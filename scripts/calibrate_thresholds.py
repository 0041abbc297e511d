"""Calibrate the temporal-consistency bounds and thresholds; writes echotemporal/data/thresholds.yaml.

DESIGN.md §4.1. Reference population: clean half-sequences that carry realistic expert-annotation
jitter (``annotation_jitter``, ~1 native pixel of smooth border noise, every frame drawn anew):

* parametric phantoms (``generate_sequence``, both views, CAMUS-like sizes and spacings), seeds
  ``seed * 1_000_000 + i`` (the detection benchmark uses other seeds);
* real-shape sequences: signed-distance interpolation between the ED and ES masks of ``train``
  patients only (``load_real_shapes("train")``), 10-30 frames, random CAMUS aspect/depth, resampled
  to a 448x448 grid (~0.3-0.4 mm pixels, native-like, so that "1 pixel" of jitter means what it
  means on native CAMUS masks).

For every attribute (``echotemporal.measure.attributes.ATTRIBUTE_NAMES``):

* ``lo, hi``: 1st-99th percentile of all frames' values, widened by ``--widen`` × that range on
  each side (normalization only: the physical tolerance ``tau·(hi − lo)`` does not depend on it);
* ``tau``: ``margin`` × the largest ``|m_t|`` over all frames of all clean sequences.

Usage (a few minutes; CPU-bound)::

    nohup python scripts/calibrate_thresholds.py > /tmp/calib.log 2>&1 &
    python scripts/calibrate_thresholds.py --n-parametric 4 --n-real 4 -o /tmp/t.yaml   # smoke test
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from echotemporal.measure.attributes import ATTRIBUTE_NAMES, compute_attributes  # noqa: E402
from echotemporal.phantoms import (  # noqa: E402
    NATIVE_LIKE_GRID,
    generate_sequence,
    load_real_shapes,
    real_shape_sequence,
    real_shape_spacing_mm,
)
from echotemporal.phantoms.corruption import annotation_jitter  # noqa: E402
from echotemporal.measure.temporal import consistency_metric, default_thresholds_path
from echotemporal.measure.temporal import load_thresholds  # noqa: E402

REAL_SHAPE_GRID = (NATIVE_LIKE_GRID, NATIVE_LIKE_GRID)
LV_AREA_SANITY_MM2 = 70.0  # DESIGN §4.1: the reference's LV-area threshold, in physical terms


def parametric_clean(seed: int, amplitude_px: float) -> tuple[str, np.ndarray]:
    """Attributes (T, 7) of one jittered parametric phantom; the view alternates with the seed."""
    rng = np.random.default_rng(seed)
    view = ("2CH", "4CH")[seed % 2]
    seq = generate_sequence(rng, view=view)
    labels = annotation_jitter(seq.labels, seq.spacing_mm, rng, amplitude_px=amplitude_px)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmeasurable frames are NaN: counted and reported below
        return f"parametric seed={seed} {view}", compute_attributes(labels, seq.spacing_mm)


def real_clean(ed: np.ndarray, es: np.ndarray, name: str, seed: int, amplitude_px: float,
               view: str = "") -> tuple[str, np.ndarray]:
    """Attributes (T, 7) of one jittered real-shape sequence between a patient's ED and ES masks."""
    rng = np.random.default_rng(seed)
    spacing = real_shape_spacing_mm(aspect=float(rng.uniform(1.2, 1.4)), depth_mm=float(rng.uniform(120, 150)))
    seq = real_shape_sequence(ed, es, int(rng.integers(10, 31)), spacing_mm=spacing, rng=rng,
                              output_shape=REAL_SHAPE_GRID, view=view)
    labels = annotation_jitter(seq.labels, seq.spacing_mm, rng, amplitude_px=amplitude_px)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f"real {name}", compute_attributes(labels, seq.spacing_mm)


def _run(job: tuple) -> tuple[str, np.ndarray]:
    fn, *args = job
    return fn(*args)


def clean_reference_attributes(n_parametric: int, n_real: int, seed: int, amplitude_px: float,
                               workers: int, split: str = "train") -> list[tuple[str, np.ndarray]]:
    """Attributes of clean jittered reference sequences: list of (description, (T, 7) array)."""
    jobs: list[tuple] = [(parametric_clean, seed * 1_000_000 + i, amplitude_px)
                         for i in range(n_parametric)]
    if n_real:
        shapes = load_real_shapes(split)
        pairs = shapes.pairs()
        pick = np.random.default_rng(seed).permutation(len(pairs))[:n_real]
        for j, k in enumerate(pick):
            patient, view = pairs[k]
            ed, es = shapes.pair(patient, view)
            jobs.append((real_clean, ed, es, f"{patient} {view}", seed * 1_000_000 + 500_000 + j,
                         amplitude_px, view))
    out = []
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_run, jobs, chunksize=1)
            for i, item in enumerate(results):
                out.append(item)
                _progress(i, len(jobs), t0)
    else:
        for i, job in enumerate(jobs):
            out.append(_run(job))
            _progress(i, len(jobs), t0)
    return out


def _progress(i: int, n: int, t0: float) -> None:
    if (i + 1) % 10 == 0 or i + 1 == n:
        print(f"  {i + 1}/{n} sequences, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def calibrate(sequences: list[tuple[str, np.ndarray]], margin: float, percentiles: tuple[float, float],
              widen: float) -> dict:
    """Bounds, thresholds and the statistics behind them."""
    all_frames = np.concatenate([a for _, a in sequences])
    p_lo, p_hi = np.nanpercentile(all_frames, percentiles, axis=0)
    span = p_hi - p_lo
    lo, hi = p_lo - widen * span, p_hi + widen * span
    metric = np.concatenate([np.abs(consistency_metric(a, lo, hi)) for _, a in sequences])
    max_m = np.nanmax(metric, axis=0)
    worst = []
    for k in range(all_frames.shape[1]):
        per_seq = [np.nanmax(np.abs(consistency_metric(a[:, k], lo[k], hi[k])), initial=0.0) for _, a in sequences]
        worst.append(sequences[int(np.argmax(per_seq))][0])
    ed_lv_area = np.array([a[0, 0] for _, a in sequences])
    return {
        "lo": lo, "hi": hi, "tau": margin * max_m, "max_abs_m": max_m,
        "p99_abs_m": np.nanpercentile(metric, 99, axis=0), "p999_abs_m": np.nanpercentile(metric, 99.9, axis=0),
        "nan_frames": np.isnan(all_frames).sum(axis=0), "n_frames": all_frames.shape[0], "worst": worst,
        "median_ed_lv_area_mm2": float(np.nanmedian(ed_lv_area)),
    }


def _fmt(x: float) -> str:
    return f"{float(x):.6g}"


def write_thresholds(path: Path, result: dict, header: list[str]) -> None:
    """YAML with a header comment; one flow mapping per attribute, read by load_thresholds."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines += ["format_version: 1", "attributes:"]
    for k, name in enumerate(ATTRIBUTE_NAMES):
        tol = result["tau"][k] * (result["hi"][k] - result["lo"][k])
        lines.append(f"  {name}: {{lo: {_fmt(result['lo'][k])}, hi: {_fmt(result['hi'][k])}, "
                     f"tau: {_fmt(result['tau'][k])}, tolerance: {_fmt(tol)}}}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-parametric", type=int, default=50, help="parametric phantoms (views alternate)")
    parser.add_argument("--n-real", type=int, default=120, help="real-shape train sequences (patient x view)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=1.25, help="tau = margin x max |m_t| on clean data")
    parser.add_argument("--amplitude-px", type=float, default=1.0, help="annotation jitter, native pixels (RMS)")
    parser.add_argument("--widen", type=float, default=0.1, help="bounds: percentile range widened by this x range")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=default_thresholds_path())
    args = parser.parse_args()
    percentiles = (1.0, 99.0)
    t0 = time.perf_counter()
    print(f"calibrating on {args.n_parametric} parametric + {args.n_real} real-shape train sequences "
          f"(jitter {args.amplitude_px} px, seed {args.seed})", file=sys.stderr)
    seqs = clean_reference_attributes(args.n_parametric, args.n_real, args.seed, args.amplitude_px, args.workers)
    res = calibrate(seqs, args.margin, percentiles, args.widen)
    date = datetime.date.today().isoformat()
    header = [
        "Temporal-consistency bounds and thresholds (DESIGN.md §4.1), physical units; tau dimensionless.",
        "m_t = ã_t − (ã_{t−1} + ã_{t+1})/2 with ã = (a − lo)/(hi − lo); a frame is flagged if |m_t| > tau.",
        "tolerance = tau·(hi − lo): how far (physical units) a frame may sit from its neighbours' mean.",
        f"Written by scripts/calibrate_thresholds.py on {date}; do not edit by hand.",
        f"Data: {args.n_parametric} parametric phantoms (echotemporal.phantoms.generate_sequence, seeds "
        f"{args.seed * 1_000_000}..+{args.n_parametric - 1}, 2CH/4CH alternating)",
        f"  + {args.n_real} real-shape sequences from CAMUS *train* patients (load_real_shapes('train'),",
        f"  real_shape_sequence, 10-30 frames, {REAL_SHAPE_GRID[0]}x{REAL_SHAPE_GRID[1]} grid); every sequence "
        f"clean but with annotation_jitter amplitude {args.amplitude_px} px;",
        f"  {res['n_frames']} frames in all. Seed {args.seed}.",
        f"lo/hi: {percentiles[0]:g}-{percentiles[1]:g}th percentile over all frames, widened by "
        f"{args.widen:g} x range each side.",
        f"tau: margin {args.margin:g} x max |m_t| over all frames of the clean jittered sequences.",
        f"Sanity (DESIGN §4.1): LV-area tolerance {res['tau'][0] * (res['hi'][0] - res['lo'][0]):.1f} mm² "
        f"(reference ≈ {LV_AREA_SANITY_MM2:g} mm²); median ED LV area {res['median_ed_lv_area_mm2']:.0f} mm².",
        "CAMUS data: Leclerc et al., IEEE TMI 2019 (CC BY-NC-SA 4.0).",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_thresholds(args.output, res, header)
    th = load_thresholds(args.output)  # round trip: the file must load
    print(f"\nwrote {args.output} in {time.perf_counter() - t0:.0f} s ({res['n_frames']} frames)")
    print(f"{'attribute':20s} {'lo':>9s} {'hi':>9s} {'tau':>8s} {'tolerance':>10s} {'max|m|':>8s} "
          f"{'p99.9':>8s} {'p99':>8s} {'NaN fr':>6s}  worst sequence")
    for k, name in enumerate(th.names):
        print(f"{name:20s} {th.lo[k]:9.2f} {th.hi[k]:9.2f} {th.tau[k]:8.5f} {th.tolerance[k]:10.2f} "
              f"{res['max_abs_m'][k]:8.5f} {res['p999_abs_m'][k]:8.5f} {res['p99_abs_m'][k]:8.5f} "
              f"{int(res['nan_frames'][k]):6d}  {res['worst'][k]}")
    lv_tol = th.tolerance[0]
    print(f"\nLV-area tolerance {lv_tol:.1f} mm² = {100 * lv_tol / res['median_ed_lv_area_mm2']:.1f} % of the median "
          f"ED LV area ({res['median_ed_lv_area_mm2']:.0f} mm²); "
          f"DESIGN sanity value ≈ {LV_AREA_SANITY_MM2:g} mm² (≈3 %)")


if __name__ == "__main__":
    main()
