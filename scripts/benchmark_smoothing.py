"""Benchmark the correction methods on failure sets that look like real segmenters' (DESIGN.md §9, issue 13).

Sets (seeded, held out: parametric seeds far from training's, real shapes of the upstream ``test``
split; the model trains on ``train``):

* ``sparse``: isolated glitches (``phantoms.corrupt_sequence``, 1-3 per sequence) on expert-like
  jittered sequences, half parametric, half real-shape;
* ``clean``: the same sequences without glitches;
* ``coherent``: runs of 5-15 frames failing smoothly in time, 30-70 % of the frames broken, about
  half without the LA label (``phantoms.failure_set.coherent_failure_case``);
* ``near-total``: the same with 90-100 % of the frames broken, in runs of 8-20 frames that mostly
  overlap two kinds (``phantoms.failure_set.benchmark_near_total_case``): nothing may be trusted;
* ``segmenter``: a small U-Net's predictions on simulated B-mode images of held-out real-shape
  sequences (``scripts/make_segmenter_set.py -o DIR``, read with ``--segmenter-dir DIR``);
  ``--segmenter-cycles`` makes each half-sequence a full cycle (``es``: started at ES; ``beats``:
  two beats and the next ED, an ED mid-sequence), with ``--detect`` a recording without Info cfg;
  ``--segmenter-blank K[@place]`` blanks a run of K predicted frames per case (a segmenter that found
  nothing there), at a seeded random place or through the first or last frame.

Methods, all given ED/ES as an Info cfg would: ``none`` (the input), ``gaussian`` (temporal Gaussian
of one-hot maps, sigma = 0.05·T), ``lcc-gaussian`` (largest component per label and holes filled,
then the Gaussian), ``arvae`` (``correct.smooth_sequence``), and ``arvae-plain`` (arvae with
``robust: false``, for comparison).

Per sequence: Dice and Hausdorff (mm) of LV and MYO against the truth (mean over frames);
inconsistent and invalid frames after; |EF| and |GLS| errors against the truth's indices (same
ED/ES); the volume-curve error max_t |V_t − V_t^truth| in mL and in % of the true EDV; Dice of the
frames the corruption did not touch, against the truth and against the input (preservation), and of
those it did, against the truth (with ``--segmenter-blank``: the blank frames); and
whether the output scores worse than the input on the project's own checks (outcome "worse";
arvae then returns the input, counted as "kept input"; the baselines run unprotected).

Usage::

    python scripts/benchmark_smoothing.py [--sets sparse,clean,coherent,segmenter] [--n 40]
        [--segmenter-dir DIR [--segmenter-cycles [ed|es|beats]] [--segmenter-blank K[@random|start|end]]]
        [--methods none,gaussian,lcc-gaussian,arvae] [--workers 2]
        [--set KEY=VALUE ...] [--csv rows.csv]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

# SEED_BASE: the held-out sets figures are reported on; TUNING_SEED_BASE (``--tuning``): other seeds
# and the ``val`` patients, for choosing constants (no constant was chosen on the held-out sets).
from echotemporal.phantoms.failure_set import HELD_OUT_SEED_BASE as SEED_BASE, TUNING_SEED_BASE  # noqa: E402
METHODS = ("none", "gaussian", "lcc-gaussian", "arvae", "arvae-plain")
SETS = ("sparse", "sparse-exact", "clean", "coherent", "near-total", "segmenter")

_STATE: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------------
# data


def _real_pairs(real: Any) -> list[tuple[int, int]]:
    index = {str(n): i for i, n in enumerate(real.names)}
    return sorted((i, index[n[:-3] + "_ES"]) for n, i in index.items() if n.endswith("_ED") and n[:-3] + "_ES" in index)


def make_case(index: int, corrupt: bool, real_split: str = "test", jitter: bool = True) -> dict[str, Any]:
    """One ``sparse`` (corrupt) or ``clean`` case: truth, input, spacing, ED/ES, untouched frames.

    ``jitter=False`` (``sparse-exact``) glitches the exact truth, as the shipped demo does: every
    frame the glitches did not touch is then the truth itself.
    """
    from echotemporal.phantoms import (
        REAL_SHAPE_JITTER_PX,
        annotation_jitter,
        corrupt_sequence,
        generate_sequence,
        load_real_shapes,
        real_shape_sequence,
        real_shape_spacing_mm,
    )

    seed = _STATE.get("seed_base", SEED_BASE) + 2 * index + (0 if corrupt else 1)
    rng = np.random.default_rng(seed)
    view = ("2CH", "4CH")[int(rng.integers(2))]
    source = "parametric"
    if index % 2 == 1:
        if "real" not in _STATE:
            _STATE["real"] = load_real_shapes(real_split)
            _STATE["real_pairs"] = _real_pairs(_STATE["real"])
        real, pairs = _STATE["real"], _STATE["real_pairs"]
        ed_i, es_i = pairs[int(rng.integers(len(pairs)))]
        spacing = real_shape_spacing_mm(aspect=float(rng.uniform(1.2, 1.4)))
        phantom = real_shape_sequence(
            real.labels[ed_i], real.labels[es_i], int(rng.integers(10, 31)), spacing_mm=spacing, rng=rng,
            view=str(real.views[ed_i]),
        )
        source = f"real-{real_split}"
    else:
        phantom = generate_sequence(seed, view=view)
    truth = phantom.labels
    # One native pixel of expert jitter: real-shape sequences are on the 224 grid (2 native pixels).
    labels = annotation_jitter(truth, phantom.spacing_mm, rng,
                               amplitude_px=REAL_SHAPE_JITTER_PX if source != "parametric" else 1.0)
    if not jitter:
        labels = truth.copy()
    touched = np.zeros(len(truth), dtype=bool)
    if corrupt:
        labels, records = corrupt_sequence(labels, phantom.spacing_mm, rng, n_corruptions=int(rng.integers(1, 4)))
        touched[[r.frame for r in records]] = True
    return {
        "index": index, "set": ("sparse" if jitter else "sparse-exact") if corrupt else "clean", "source": source,
        "truth": truth,
        "labels": labels, "spacing_mm": tuple(float(s) for s in phantom.spacing_mm),
        "ed_frame": int(phantom.ed_frame), "es_frame": int(phantom.es_frame), "touched": touched,
    }


def coherent_case(index: int, real_split: str = "test", set_name: str = "coherent") -> dict[str, Any]:
    """One ``coherent`` or ``near-total`` case (``phantoms.failure_set``)."""
    from echotemporal.phantoms import load_real_shapes
    from echotemporal.phantoms.failure_set import benchmark_coherent_case, benchmark_near_total_case

    if "real" not in _STATE:
        _STATE["real"] = load_real_shapes(real_split)
        _STATE["real_pairs"] = _real_pairs(_STATE["real"])
    make = benchmark_near_total_case if set_name == "near-total" else benchmark_coherent_case
    case = make(index, _STATE.get("seed_base", SEED_BASE), real=_STATE["real"])
    touched = case.broken
    return {
        "index": index, "set": set_name, "source": case.source, "truth": case.truth, "labels": case.labels,
        "spacing_mm": tuple(float(s) for s in case.spacing_mm), "ed_frame": int(case.ed_frame),
        "es_frame": int(case.es_frame), "touched": touched,
    }


def segmenter_case(index: int, directory: str) -> dict[str, Any]:
    """One ``segmenter`` case: a held-out U-Net prediction and its truth (``make_segmenter_set.py``)."""
    from echotemporal.phantoms.segmenter_set import load_segmenter_set

    if "segmenter_cases" not in _STATE:
        _STATE["segmenter_cases"] = load_segmenter_set(directory)
    case = _STATE["segmenter_cases"][index]
    predicted, truth = case.predicted, case.truth
    ed, es = int(case.ed_frame), int(case.es_frame)
    if _STATE.get("segmenter_cycles"):  # ED -> ES -> ED: ES mid-sequence, as in a full cycle
        from echotemporal.phantoms.failure_set import mirror_half_sequence

        predicted, truth = mirror_half_sequence(predicted), mirror_half_sequence(truth)
        if _STATE["segmenter_cycles"] == "es":  # ES -> ED -> ES: a recording started at ES, ED mid-sequence
            shift = len(case.predicted) - 1
            predicted, truth = np.roll(predicted, -shift, axis=0), np.roll(truth, -shift, axis=0)
            ed, es = shift, 0
        elif _STATE["segmenter_cycles"] == "beats":  # two beats and the third ED: ED -> ES -> ED -> ES -> ED
            predicted, truth = (np.concatenate([x, x, x[:1]]) for x in (predicted, truth))
    # Every predicted frame differs from the truth: "untouched" frames are those within one pixel
    # of it (LV and MYO Dice >= 0.97), where a good correction has nothing to change.
    touched = np.array([min(_dice(p == v, t == v) for v in (1, 2)) < 0.97 for p, t in zip(predicted, truth)])
    if _STATE.get("segmenter_blank"):  # the segmenter found nothing in a run: those frames are "touched"
        from echotemporal.phantoms.segmenter_set import blank_run

        length, place = _STATE["segmenter_blank"]
        blank = blank_run(len(predicted), length, place, seed=1000 * index + length)
        predicted = predicted.copy()
        predicted[blank] = 0
        touched = blank
    return {
        "index": index, "set": "segmenter", "source": case.name, "truth": truth, "labels": predicted,
        "spacing_mm": tuple(float(s) for s in case.spacing_mm), "ed_frame": ed, "es_frame": es, "touched": touched,
    }


def _blank_option(text: str) -> tuple[int, str]:
    """``--segmenter-blank`` value ``K`` or ``K@place`` -> (K, place)."""
    from echotemporal.phantoms.segmenter_set import BLANK_PLACES

    count, _, place = text.partition("@")
    place = place or "random"
    if not count.isdigit() or int(count) < 1 or place not in BLANK_PLACES:
        raise argparse.ArgumentTypeError(f"{text!r}: give K or K@place, K >= 1 frames, place one of {', '.join(BLANK_PLACES)}")
    return int(count), place


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def build_case(task: tuple[str, int]) -> dict[str, Any]:
    set_name, index = task
    if set_name in ("sparse", "clean", "sparse-exact"):
        return make_case(index, set_name != "clean", _STATE.get("real_split", "test"), jitter=set_name != "sparse-exact")
    if set_name in ("coherent", "near-total"):
        return coherent_case(index, _STATE.get("real_split", "test"), set_name)
    return segmenter_case(index, _STATE["segmenter_dir"])


# --------------------------------------------------------------------------------------------------
# metrics


def dice_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = np.logical_and(a, b).reshape(len(a), -1).sum(1)
    total = a.reshape(len(a), -1).sum(1) + b.reshape(len(b), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * inter / total, 1.0)


def hausdorff_per_frame_mm(a: np.ndarray, b: np.ndarray, spacing_mm: tuple[float, float]) -> np.ndarray:
    """Symmetric Hausdorff distance (mm) per frame between (T, H, W) masks; NaN where one is empty."""
    out = np.full(len(a), np.nan)
    both = np.flatnonzero(a.reshape(len(a), -1).any(1) & b.reshape(len(b), -1).any(1))
    if both.size == 0:
        return out
    union = (a | b).any(axis=0)
    rows, cols = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
    sl = (slice(max(rows[0] - 2, 0), rows[-1] + 3), slice(max(cols[0] - 2, 0), cols[-1] + 3))
    for t in both:
        fa, fb = a[t][sl], b[t][sl]
        ba, bb = fa & ~ndimage.binary_erosion(fa), fb & ~ndimage.binary_erosion(fb)
        da = ndimage.distance_transform_edt(~bb, sampling=spacing_mm)
        db = ndimage.distance_transform_edt(~ba, sampling=spacing_mm)
        out[t] = max(float(da[ba].max()), float(db[bb].max()))
    return out


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


def score(case: dict[str, Any], out: np.ndarray, result: Any, truth_ci: Any) -> dict[str, Any]:
    """Per-sequence metrics of one method's output (module docstring)."""
    from echotemporal.core.labels import LV, MYO

    truth, labels, spacing, touched = case["truth"], case["labels"], case["spacing_mm"], case["touched"]
    s = result.summary
    row: dict[str, Any] = {"n_frames": len(out)}
    for name, value in (("lv", LV), ("myo", MYO)):
        dice = dice_per_frame(out == value, truth == value)
        row[f"dice_{name}"] = float(dice.mean())
        row[f"hd_{name}_mm"] = float(np.nanmean(hausdorff_per_frame_mm(out == value, truth == value, spacing)))
        kept = ~touched
        row[f"untouched_dice_{name}"] = float(dice[kept].mean()) if kept.any() else float("nan")
        row[f"touched_dice_{name}"] = float(dice[touched].mean()) if touched.any() else float("nan")
        row[f"untouched_keep_{name}"] = (
            float(dice_per_frame(out[kept] == value, labels[kept] == value).mean()) if kept.any() else float("nan")
        )
    same = [bool((o == i).all()) or min(_dice(o == v, i == v) for v in (LV, MYO)) >= 0.995 for o, i in zip(out, labels)]
    row["frames_kept"] = int(np.sum(same))
    row["inconsistent_frames"] = s["n_inconsistent_after"]
    row["invalid_frames"] = s["n_invalid_after"]
    row["inconsistent_before"] = s["n_inconsistent_before"]
    row["invalid_before"] = s["n_invalid_before"]
    row["worse"] = s.get("outcome") == "worse"
    row["kept_input"] = bool(s.get("kept_input_because_worse"))
    row["ef_abs_err"] = abs(_f(s["ef_percent_after"]) - truth_ci.ef_percent)
    row["gls_abs_err"] = abs(_f(s["gls_percent_after"]) - truth_ci.gls_percent)
    # Signed errors (output − truth), for the CSV: a bias shows where an absolute error hides it.
    row["ef_err"] = _f(s["ef_percent_after"]) - truth_ci.ef_percent
    row["gls_err"] = _f(s["gls_percent_after"]) - truth_ci.gls_percent
    row["edv_err_ml"] = _f(s.get("edv_ml_after")) - truth_ci.edv_ml
    row["esv_err_ml"] = _f(s.get("esv_ml_after")) - truth_ci.esv_ml
    volumes = np.asarray(result.columns["lv_volume_ml_after"], dtype=float)
    error = np.abs(volumes - np.asarray(truth_ci.volumes_ml, dtype=float))
    row["vol_max_err_ml"] = float(np.nanmax(error)) if np.isfinite(error).any() else float("nan")
    row["vol_max_err_pct"] = 100.0 * row["vol_max_err_ml"] / truth_ci.edv_ml
    at_glitch = error[touched]
    row["vol_touched_err_ml"] = float(np.nanmax(at_glitch)) if np.isfinite(at_glitch).any() else float("nan")
    return row


# --------------------------------------------------------------------------------------------------
# runs


def init_worker(overrides: dict[str, Any], methods: tuple[str, ...], segmenter_dir: str | None, tuning: bool = False,
                detect: bool = False, segmenter_cycles: str | None = None,
                segmenter_blank: tuple[int, str] | None = None) -> None:
    warnings.simplefilter("ignore")  # degenerate frames warn by design; the table records them
    from echotemporal.measure.temporal import load_thresholds
    from echotemporal.model.registry import load_model

    _STATE.update(thresholds=load_thresholds(), overrides=overrides, methods=methods, segmenter_dir=segmenter_dir)
    if tuning:
        _STATE.update(seed_base=TUNING_SEED_BASE, real_split="val")
    _STATE["detect"] = detect
    _STATE["segmenter_cycles"] = segmenter_cycles
    _STATE["segmenter_blank"] = segmenter_blank
    _STATE["model"] = load_model()


def run_case(task: tuple[str, int]) -> list[dict[str, Any]]:
    from echotemporal.core.config import SmoothingConfig
    from echotemporal.correct.smoothing import smooth_sequence
    from echotemporal.measure.clinical import clinical_indices

    case = build_case(task)
    labels, spacing, ed, es = case["labels"], case["spacing_mm"], case["ed_frame"], case["es_frame"]
    truth_ci = clinical_indices(case["truth"], spacing, ed_frame=ed, es_frame=es)
    rows = []
    for method in _STATE["methods"]:
        if method.startswith("arvae"):
            cfg = SmoothingConfig(method="arvae", **{**_STATE["overrides"], **({"robust": False} if method == "arvae-plain" else {})})
        else:  # the baselines as users run them: no protection by our own checks
            cfg = SmoothingConfig(method=method, on_worse="keep_output")
        t0 = time.perf_counter()
        result = smooth_sequence(labels, spacing, config=cfg, model=_STATE["model"], thresholds=_STATE["thresholds"],
                                 ed_frame=None if _STATE.get("detect") else ed, es_frame=None if _STATE.get("detect") else es)
        row = {"set": case["set"], "index": case["index"], "source": case["source"], "method": method,
               "seconds": time.perf_counter() - t0}
        row.update(score(case, result.labels, result, truth_ci))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# report


def _median(values: Any) -> float:
    """Median with NaN counted as the worst value (an index a method could not measure)."""
    return float(np.median(np.where(np.isnan(values), np.inf, values)))


def table(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    lines = [
        "| set | method | n | Dice LV | Dice MYO | HD LV | HD MYO | seqs 0 invalid & 0 inconsistent | "
        "invalid (frames) | inconsistent (frames) | EF err med | GLS err med | vol max err mL med / p90 | "
        "% EDV med / p90 | at broken frames mL med | broken frames Dice LV/MYO | untouched Dice LV/MYO vs truth | "
        "untouched kept LV/MYO | "
        "frames kept (identical or Dice >= 0.995 to the input) | worse | s/seq |",
        "|---" * 21 + "|",
    ]
    for (set_name, method), g in df.groupby(["set", "method"], sort=False):
        perfect = ((g.invalid_frames == 0) & (g.inconsistent_frames == 0)).mean()
        lines.append(
            f"| {set_name} | {method} | {len(g)} | {g.dice_lv.mean():.3f} | {g.dice_myo.mean():.3f} | "
            f"{g.hd_lv_mm.mean():.2f} | {g.hd_myo_mm.mean():.2f} | {perfect:.0%} | "
            f"{g.invalid_frames.sum()}/{g.n_frames.sum()} | {g.inconsistent_frames.sum()}/{g.n_frames.sum()} | "
            f"{_median(g.ef_abs_err):.2f} | {_median(g.gls_abs_err):.2f} | "
            f"{g.vol_max_err_ml.median():.2f} / {g.vol_max_err_ml.quantile(0.9):.2f} | "
            f"{g.vol_max_err_pct.median():.1f} / {g.vol_max_err_pct.quantile(0.9):.1f} | "
            f"{g.vol_touched_err_ml.median():.2f} | "
            f"{g.touched_dice_lv.mean():.3f} / {g.touched_dice_myo.mean():.3f} | "
            f"{g.untouched_dice_lv.median():.3f} / {g.untouched_dice_myo.median():.3f} | "
            f"{g.untouched_keep_lv.median():.3f} / {g.untouched_keep_myo.median():.3f} | "
            f"{100 * g.frames_kept.sum() / g.n_frames.sum():.1f} % | "
            f"{int(g.worse.sum())} ({int(g.kept_input.sum())} kept input) | {g.seconds.mean():.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="sparse,clean,coherent", help=f"comma-separated subset of {', '.join(SETS)}")
    p.add_argument("--n", type=int, default=40, help="sequences per generated set")
    p.add_argument("--segmenter-dir", default=None, help="folder written by scripts/make_segmenter_set.py")
    p.add_argument("--methods", default="none,gaussian,lcc-gaussian,arvae", help=f"subset of {', '.join(METHODS)}")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--csv", default=None, help="also write the per-sequence rows here")
    p.add_argument("--tuning", action="store_true",
                   help="generated sets of other seeds on the val patients: for choosing constants, not for reporting")
    p.add_argument("--detect", action="store_true",
                   help="give the methods no ED/ES: each detects them on its own curve (a full cycle without an Info cfg); "
                        "the truth's indices still use the true ED/ES")
    p.add_argument("--segmenter-cycles", nargs="?", const="ed", choices=("ed", "es", "beats"), default=None,
                   help="mirror each segmenter case into a full cycle (ED -> ES -> ED, predictions and truth alike; "
                        "'es': rolled to start at ES, ES -> ED -> ES, ED mid-sequence; 'beats': two cycles and the "
                        "next ED, ED -> ES -> ED -> ES -> ED, the indices on the first; "
                        "with --detect: a real segmenter's full cycle without an Info cfg)")
    p.add_argument("--segmenter-blank", type=_blank_option, default=None, metavar="K[@PLACE]",
                   help="blank K consecutive frames of each segmenter case (after --segmenter-cycles), as a segmenter "
                        "that found nothing: PLACE random (seeded per case, the default), start or end; the table's "
                        "'broken frames Dice' is then taken on those frames")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a SmoothingConfig field of arvae (repeatable; value read as YAML)")
    args = p.parse_args()
    import yaml

    from echotemporal.core.config import SmoothingConfig

    sets = tuple(s for s in args.sets.split(",") if s)
    methods = tuple(m for m in args.methods.split(",") if m)
    for name, chosen, valid in (("set", sets, SETS), ("method", methods, METHODS)):
        if set(chosen) - set(valid):
            p.error(f"unknown {name}(s) {', '.join(sorted(set(chosen) - set(valid)))}; pick from {', '.join(valid)}")
    if args.segmenter_blank and "segmenter" not in sets:
        p.error("--segmenter-blank needs --sets segmenter")
    overrides = {k.strip(): yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    SmoothingConfig(**overrides)  # bad fields fail here, before any work
    tasks = []
    for name in sets:
        if name == "segmenter":
            if not args.segmenter_dir:
                p.error("--sets segmenter needs --segmenter-dir (scripts/make_segmenter_set.py -o DIR)")
            tasks += [(name, i) for i in range(len(sorted(Path(args.segmenter_dir).glob("*.npz"))))]
        else:
            tasks += [(name, i) for i in range(args.n)]
    start = time.perf_counter()
    init = (overrides, methods, args.segmenter_dir, args.tuning, args.detect, args.segmenter_cycles, args.segmenter_blank)
    if args.workers <= 1:
        init_worker(*init)
        results = map(run_case, tasks)
    else:
        pool = mp.get_context("spawn").Pool(args.workers, initializer=init_worker, initargs=init)
        results = pool.imap_unordered(run_case, tasks, chunksize=1)
    rows: list[dict[str, Any]] = []
    for k, case_rows in enumerate(results, 1):
        rows.extend(case_rows)
        if k % 10 == 0:
            print(f"{k}/{len(tasks)} sequences, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if args.workers > 1:
        pool.close()
        pool.join()
    rows.sort(key=lambda r: (SETS.index(r["set"]), METHODS.index(r["method"]), r["index"]))
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    print(table(rows))
    print(f"\n{len(tasks)} sequences, {args.workers} workers, {time.perf_counter() - start:.0f} s total.")


if __name__ == "__main__":
    main()
