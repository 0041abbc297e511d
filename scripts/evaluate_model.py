#!/usr/bin/env python
"""Measure a shape model (issue 3 figures): reconstruction at native resolution, Spearman, speed.

* Real: held-out CAMUS ED/ES masks of the upstream ``test`` patients (224×224 grid, depth stretch
  compensated with aspect 1.3), each patient/view an [ED, ES] sequence with one alignment.
* Phantoms: parametric phantom sequences at CAMUS-like native size (seeds disjoint from training).
* Each sequence: align → to_grid → encode → decode → probabilities back to native → argmax; Dice and
  symmetric Hausdorff distance (mm) of LV and MYO against the input, per frame.
* Spearman ρ between each regularized dim (posterior mean) and its attribute measured on the grid
  frame, on test frames with the training-time per-frame perturbation ("augmented") and with the
  per-sequence alignment only ("canonical").
* Speed: encode+decode of 20 frames; align + un-align of a 20-frame phantom sequence.

Usage: python scripts/evaluate_model.py [--weights PATH] [--phantoms 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from echotemporal.model.alignment import fit_alignment, probabilities_to_native_labels, to_grid  # noqa: E402
from echotemporal.core.config import AlignmentConfig  # noqa: E402
from echotemporal.training.dataset import (  # noqa: E402
    NO_AUGMENTATION,
    AlignedSequence,
    Augmentation,
    aligned_frames,
    phantom_sequences,
    real_shape_sequences,
)
from echotemporal.model.registry import load_model  # noqa: E402
from echotemporal.phantoms.real_shapes import load_real_shapes, real_shape_spacing_mm  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def hausdorff_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]) -> float:
    """Symmetric Hausdorff distance (mm) between the boundaries of two masks (cropped to their box)."""
    from scipy import ndimage

    if not a.any() or not b.any():
        return float("nan")
    both = a | b
    rr, cc = np.flatnonzero(both.any(1)), np.flatnonzero(both.any(0))
    r0, r1, c0, c1 = max(rr[0] - 2, 0), rr[-1] + 3, max(cc[0] - 2, 0), cc[-1] + 3
    a, b = a[r0:r1, c0:c1], b[r0:r1, c0:c1]
    ba = a & ~ndimage.binary_erosion(a)
    bb = b & ~ndimage.binary_erosion(b)
    da = ndimage.distance_transform_edt(~ba, sampling=spacing)
    db = ndimage.distance_transform_edt(~bb, sampling=spacing)
    return float(max(da[bb].max(), db[ba].max()))


def reconstruct_native(model, labels: np.ndarray, spacing, cfg: AlignmentConfig) -> np.ndarray:
    al = fit_alignment(labels, spacing, cfg)
    grid = to_grid(labels, al)
    probs = model.decode(model.encode(grid))
    return probabilities_to_native_labels(probs, al)


def score(model, seqs, cfg) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"dice_lv": [], "dice_myo": [], "hd_lv_mm": [], "hd_myo_mm": []}
    for seq in seqs:
        rec = reconstruct_native(model, seq.labels, seq.spacing_mm, cfg)
        for t in range(seq.labels.shape[0]):
            for c, name in ((1, "lv"), (2, "myo")):
                a, b = seq.labels[t] == c, rec[t] == c
                out[f"dice_{name}"].append(dice(a, b))
                out[f"hd_{name}_mm"].append(hausdorff_mm(a, b, seq.spacing_mm))
    return out


def summarize(name: str, d: dict[str, list[float]]) -> dict[str, float]:
    s = {}
    for k, v in d.items():
        v = np.asarray(v, dtype=float)
        s[k + "_mean"] = float(np.nanmean(v))
        s[k + ("_p05" if k.startswith("dice") else "_p95")] = float(np.nanpercentile(v, 5 if k.startswith("dice") else 95))
    s["n_frames"] = len(d["dice_lv"])
    print(f"[{name}] n={s['n_frames']} frames: Dice LV {s['dice_lv_mean']:.4f} (p05 {s['dice_lv_p05']:.4f}), "
          f"MYO {s['dice_myo_mean']:.4f} (p05 {s['dice_myo_p05']:.4f}); HD LV {s['hd_lv_mm_mean']:.2f} mm "
          f"(p95 {s['hd_lv_mm_p95']:.2f}), MYO {s['hd_myo_mm_mean']:.2f} mm (p95 {s['hd_myo_mm_p95']:.2f})", flush=True)
    return s


def spearman(model, seqs, cfg, aug, seed=0) -> dict[str, float]:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    frames, attrs = [], []
    for seq in seqs:
        f, a, _ = aligned_frames(seq, cfg, aug, rng)
        frames.append(f)
        attrs.append(a)
    f, a = np.concatenate(frames), np.concatenate(attrs)
    mu = model.encode(f)
    out = {}
    for k, name in enumerate(model.attribute_names):
        ok = np.isfinite(a[:, k])
        out[name] = float(spearmanr(mu[ok, k], a[ok, k]).statistic)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="checkpoint path or registered name [default: shipped]")
    p.add_argument("--phantoms", type=int, default=40, help="held-out phantom sequences")
    p.add_argument("--aspect", type=float, default=1.3, help="depth-stretch compensation of the real masks")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    model = load_model(args.weights)
    cfg = AlignmentConfig(**{k: v for k, v in model.checkpoint.get("alignment_config", {}).items()})
    print(f"weights sha256 {model.sha256}", flush=True)
    results: dict[str, object] = {"sha256": model.sha256}

    # Held-out real masks: [ED, ES] of each test patient/view, one alignment per pair.
    shapes = load_real_shapes("test")
    labels, names = shapes.labels, shapes.names
    idx = {str(n): i for i, n in enumerate(names)}
    spacing = real_shape_spacing_mm(args.aspect)
    real = []
    for key in sorted({str(n).rsplit("_", 1)[0] for n in names}):
        if f"{key}_ED" in idx and f"{key}_ES" in idx:
            pair = np.stack([labels[idx[f"{key}_ED"]], labels[idx[f"{key}_ES"]]])
            real.append(AlignedSequence(pair, spacing, key.rsplit("_", 1)[0], key.rsplit("_", 1)[1], "real", "test"))
    t0 = time.time()
    results["real_test"] = summarize("real CAMUS test ED/ES", score(model, real, cfg))
    phantoms = list(phantom_sequences(args.phantoms, seed=9001, split="test"))
    results["phantom_test"] = summarize("held-out phantoms", score(model, phantoms, cfg))
    print(f"(reconstruction scoring took {time.time() - t0:.0f} s)", flush=True)

    # Spearman on test frames: interpolated real test sequences + phantoms.
    real_seqs = list(real_shape_sequences(("test",), copies=1, seed=123, aspect=(args.aspect, args.aspect)))
    for tag, aug in (("augmented", Augmentation()), ("canonical", NO_AUGMENTATION)):
        rho = spearman(model, real_seqs + phantoms, cfg, aug)
        results[f"spearman_{tag}"] = rho
        print(f"[Spearman, {tag}] " + ", ".join(f"{k} {v:+.3f}" for k, v in rho.items()), flush=True)

    # Speed: 20 frames.
    seq = next(phantom_sequences(1, seed=4242, n_frames=(20, 20), split="test"))
    al = fit_alignment(seq.labels, seq.spacing_mm, cfg)
    grid = to_grid(seq.labels, al)
    model.decode(model.encode(grid))  # warm-up
    reps = []
    for _ in range(5):
        t = time.perf_counter()
        probs = model.decode(model.encode(grid))
        reps.append(time.perf_counter() - t)
    ta = []
    for _ in range(3):
        t = time.perf_counter()
        al = fit_alignment(seq.labels, seq.spacing_mm, cfg)
        to_grid(seq.labels, al)
        probabilities_to_native_labels(probs, al)
        ta.append(time.perf_counter() - t)
    results["speed"] = {
        "encode_decode_20_frames_s": float(np.median(reps)),
        "per_frame_ms": float(np.median(reps) / 20 * 1000),
        "align_and_unalign_20_frames_s": float(np.median(ta)),
        "native_shape": list(seq.labels.shape[1:]),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"[speed] encode+decode 20 frames {np.median(reps) * 1000:.0f} ms ({np.median(reps) / 20 * 1000:.1f} ms/frame); "
          f"fit+to_grid+to_native {np.median(ta) * 1000:.0f} ms for {seq.labels.shape} (threads {torch.get_num_threads()})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
