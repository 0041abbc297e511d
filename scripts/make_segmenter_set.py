"""Make the segmenter-in-the-loop failure set: a small U-Net's predictions on held-out B-mode renders.

1. Real-shape half-sequences (ED -> ES) from the CAMUS ``train`` patients are rendered as B-mode-like
   images (`echotemporal.phantoms.bmode`), downsampled to ``--size`` pixels, and a small 2D U-Net
   (`echotemporal.phantoms.segmenter`) is trained on them on the CPU for ``--steps`` steps (fixed, so
   the set is reproducible; ``--max-minutes`` is only a safety cap and the manifest says if it hit).
   Half of the training frames ask for labels 0/1/2 (LA as background), half for 0..3.
2. Held-out sequences from the ``val``/``test`` patients are rendered the same way and segmented frame
   by frame; the class probabilities are upsampled to the 224x224 label grid before the arg-max.
   Alternate sequences are segmented with and without the LA.
3. Each held-out sequence is written to ``-o DIR`` with its truth (`segmenter_set.write_segmenter_case`),
   with a ``manifest.json``; the script prints Dice LV/MYO, the share of anatomically invalid frames
   (`anatomy.check_validity`) and of temporally inconsistent ones (`temporal.detect_inconsistent_frames`,
   as `report.check_sequence` counts them), for the predictions and for the truth.

Usage::

    PYTHONPATH=. python scripts/make_segmenter_set.py -o /tmp/segmenter-set
    # read it back: echotemporal.phantoms.segmenter_set.load_segmenter_set("/tmp/segmenter-set")

Needs torch and the shared real-shape data (``$ECHOTEMPORAL_REAL_SHAPES``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from skimage.transform import resize

from echotemporal.core.labels import LA, drop_la
from echotemporal.phantoms import load_real_shapes, real_shape_sequence, real_shape_spacing_mm
from echotemporal.phantoms.bmode import render_bmode
from echotemporal.phantoms.segmenter_set import SegmenterCase, write_manifest, write_segmenter_case

SEED = 20261203


def downsample(images: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) float images -> (T, size, size) with anti-aliasing."""
    return resize(images, (len(images), size, size), order=1, anti_aliasing=True).astype(np.float32)


def downsample_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) labels -> (T, size, size) by nearest neighbour."""
    return resize(labels, (len(labels), size, size), order=0, anti_aliasing=False,
                  preserve_range=True).astype(np.uint8)


def real_sequence(ed: np.ndarray, es: np.ndarray, n_frames: int, rng: np.random.Generator, view: str):
    """A real-shape half-sequence on the 224 grid with a random CAMUS aspect and depth."""
    spacing = real_shape_spacing_mm(aspect=float(rng.uniform(1.2, 1.4)), depth_mm=float(rng.uniform(120, 150)))
    return real_shape_sequence(ed, es, n_frames, spacing_mm=spacing, rng=rng, view=view)


def training_pool(n_pairs: int, frames: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rendered frames of ``train``-split real-shape sequences: (N, size, size) images, labels, LA flags."""
    shapes = load_real_shapes("train")
    pairs = shapes.pairs()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pairs), size=min(n_pairs, len(pairs)), replace=False)
    images, labels, flags = [], [], []
    for k in chosen:
        patient, view = pairs[int(k)]
        seq = real_sequence(*shapes.pair(patient, view), frames, rng, view)
        image = render_bmode(seq.labels, seq.spacing_mm, rng)
        with_la = bool(rng.random() < 0.5)
        target = seq.labels if with_la else drop_la(seq.labels)
        images.append(downsample(image, size))
        labels.append(downsample_labels(target, size))
        flags.append(np.full(frames, with_la))
    return np.concatenate(images), np.concatenate(labels), np.concatenate(flags)


def heldout_sequences(n_cases: int, seed: int) -> list[dict]:
    """``val``/``test`` real-shape sequences with their rendered images; alternate cases without the LA."""
    rng = np.random.default_rng(seed)
    pool = []
    for split in ("val", "test"):
        shapes = load_real_shapes(split)
        pool += [(split, shapes, patient, view) for patient, view in shapes.pairs()]
    chosen = rng.choice(len(pool), size=min(n_cases, len(pool)), replace=False)
    cases = []
    for i, k in enumerate(chosen):
        split, shapes, patient, view = pool[int(k)]
        seq = real_sequence(*shapes.pair(patient, view), int(rng.integers(15, 26)), rng, view)
        with_la = i % 2 == 0
        truth = seq.labels if with_la else drop_la(seq.labels)
        cases.append({"name": f"{i:03d}_{patient}_{view}_{'la' if with_la else 'nola'}", "split": split,
                      "patient": patient, "view": view, "with_la": with_la, "truth": truth,
                      "spacing_mm": seq.spacing_mm, "ed_frame": seq.ed_frame, "es_frame": seq.es_frame,
                      "image": render_bmode(seq.labels, seq.spacing_mm, rng)})
    return cases


def dice_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,) Dice of two (T, H, W) bool masks; 1 where both are empty."""
    inter = np.logical_and(a, b).reshape(len(a), -1).sum(1)
    total = a.reshape(len(a), -1).sum(1) + b.reshape(len(b), -1).sum(1)
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)


def measure(cases: list[SegmenterCase]) -> dict:
    """Dice LV/MYO/LA over frames; invalid and inconsistent frame shares of predictions and truth."""
    from echotemporal.measure.check import check_sequence

    dice = {"lv": [], "myo": [], "la": []}
    counts = {"frames": 0, "invalid_pred": 0, "inconsistent_pred": 0, "invalid_truth": 0, "inconsistent_truth": 0,
              "seq_invalid_pred": 0, "seq_inconsistent_pred": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate predicted frames warn by design
        for c in cases:
            dice["lv"].append(dice_per_frame(c.predicted == 1, c.truth == 1))
            dice["myo"].append(dice_per_frame(c.predicted == 2, c.truth == 2))
            if c.with_la:
                dice["la"].append(dice_per_frame(c.predicted == LA, c.truth == LA))
            pred = check_sequence(c.predicted, c.spacing_mm, ed_frame=c.ed_frame, es_frame=c.es_frame)
            true = check_sequence(c.truth, c.spacing_mm, ed_frame=c.ed_frame, es_frame=c.es_frame)
            counts["frames"] += len(c.truth)
            counts["invalid_pred"] += pred["n_invalid_frames"]
            counts["inconsistent_pred"] += pred["n_inconsistent_frames"]
            counts["invalid_truth"] += true["n_invalid_frames"]
            counts["inconsistent_truth"] += true["n_inconsistent_frames"]
            counts["seq_invalid_pred"] += pred["n_invalid_frames"] > 0
            counts["seq_inconsistent_pred"] += pred["n_inconsistent_frames"] > 0
    out = {f"dice_{k}_mean": float(np.mean(np.concatenate(v))) for k, v in dice.items() if v}
    out.update({f"dice_{k}_median": float(np.median(np.concatenate(v))) for k, v in dice.items() if v})
    out.update({k: int(v) for k, v in counts.items()})
    out["n_sequences"] = len(cases)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, type=Path, help="folder for the set (created)")
    parser.add_argument("--n-heldout", type=int, default=40, help="held-out sequences (val/test patients)")
    parser.add_argument("--n-train", type=int, default=400, help="train-patient sequences rendered for training")
    parser.add_argument("--train-frames", type=int, default=3, help="frames per training sequence (ED .. ES)")
    parser.add_argument("--size", type=int, default=96, help="U-Net input size (pixels, divisible by 8)")
    parser.add_argument("--steps", type=int, default=150, help="training steps (fixes the set)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128], help="U-Net channels per level")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared machine 2 threads spin on each other, ~10x slower)")
    parser.add_argument("--max-minutes", type=float, default=6.0, help="wall-time cap on training (safety)")
    parser.add_argument("--seed", type=int, default=SEED)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from echotemporal.phantoms.segmenter import predict_labels, train_segmenter

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    images, labels, flags = training_pool(args.n_train, args.train_frames, args.size, args.seed)
    t_pool = time.perf_counter() - start
    print(f"training pool: {len(images)} frames from {args.n_train} train-patient sequences ({t_pool:.0f} s)",
          file=sys.stderr)
    net, log = train_segmenter(images, labels, flags, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                               widths=tuple(args.widths),
                               max_seconds=60.0 * args.max_minutes)
    print(f"trained {log.steps} steps in {log.seconds:.0f} s; loss {log.losses[:10].mean():.3f} -> "
          f"{log.losses[-10:].mean():.3f}" + (" (stopped by --max-minutes)" if log.stopped_by_time else ""),
          file=sys.stderr)
    args.output.mkdir(parents=True, exist_ok=True)
    cases = []
    for raw in heldout_sequences(args.n_heldout, args.seed + 1):
        predicted = predict_labels(net, downsample(raw["image"], args.size), raw["with_la"], raw["truth"].shape[1:])
        case = SegmenterCase(
            name=raw["name"], predicted=predicted, truth=raw["truth"],
            image=np.round(raw["image"] * 255).astype(np.uint8), spacing_mm=tuple(raw["spacing_mm"]),
            ed_frame=int(raw["ed_frame"]), es_frame=int(raw["es_frame"]), view=raw["view"],
            with_la=bool(raw["with_la"]), patient=raw["patient"], split=raw["split"],
        )
        write_segmenter_case(args.output, case)
        cases.append(case)
    summary = measure(cases)
    summary["seconds_total"] = round(time.perf_counter() - start, 1)
    info = {
        "generator": "scripts/make_segmenter_set.py",
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "output"},
        "training": {"steps": log.steps, "seconds": round(log.seconds, 1), "stopped_by_time": log.stopped_by_time,
                     "loss_first10": float(log.losses[:10].mean()), "loss_last10": float(log.losses[-10:].mean()),
                     "pool_frames": int(len(images))},
        "measured": summary,
    }
    write_manifest(args.output, cases, info)
    frames = summary["frames"]
    print(f"{summary['n_sequences']} sequences, {frames} frames -> {args.output}")
    print(f"  Dice LV {summary['dice_lv_mean']:.3f} (median {summary['dice_lv_median']:.3f}), "
          f"MYO {summary['dice_myo_mean']:.3f} (median {summary['dice_myo_median']:.3f}), "
          f"LA {summary.get('dice_la_mean', float('nan')):.3f} (LA cases)")
    print(f"  invalid frames: predicted {summary['invalid_pred']}/{frames} "
          f"({100 * summary['invalid_pred'] / frames:.0f} %), truth {summary['invalid_truth']}")
    print(f"  inconsistent frames: predicted {summary['inconsistent_pred']}/{frames} "
          f"({100 * summary['inconsistent_pred'] / frames:.0f} %), truth {summary['inconsistent_truth']}")
    print(f"  sequences with an invalid frame {summary['seq_invalid_pred']}, with an inconsistent frame "
          f"{summary['seq_inconsistent_pred']}; total {summary['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
