#!/usr/bin/env python
"""Build the default training set and train the shipped AR-VAE weights on CPU.

Recipe (configs/default_model.yaml):
  data: real CAMUS ED/ES masks of the upstream ``train`` patients (``val`` patients for validation;
        ``test`` patients never touched), two ED→ES signed-distance-interpolated sequences per patient
        and view, depth stretch compensated with an aspect drawn in 1.2-1.4; plus parametric phantom
        sequences; each sequence aligned once, each frame perturbed (shift/rotation/scale);
  model: AR-VAE of echotemporal.model.network; training: echotemporal.training.loop.train_model.

Usage:
  python scripts/train_default_weights.py --workdir runs/default [--minutes 55] [--phantoms 400]
  python scripts/train_default_weights.py --workdir runs/default --resume
The best checkpoint is written to <workdir>/arvae.pt while training; ``--install`` copies it to
echotemporal/weights/arvae-camus-v1.pt at the end, exports its ONNX graphs beside it and prints the
sha256 values for ``pretrained.REGISTRY``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from echotemporal.core.config import AlignmentConfig, ModelConfig, TrainingConfig, load_config  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO / "runs" / "default")
    p.add_argument("--config", type=Path, default=REPO / "configs" / "default_model.yaml")
    p.add_argument("--copies", type=int, default=2, help="sequences per real patient and view")
    p.add_argument("--phantoms", type=int, default=400, help="parametric phantom sequences")
    p.add_argument("--minutes", type=float, default=None, help="override TrainingConfig.max_minutes")
    p.add_argument("--limit", type=int, default=None, help="real (patient, view) pairs per split (smoke runs)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--install", action="store_true", help="copy the result to echotemporal/weights/arvae-camus-v1.pt")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()

    align_cfg = load_config(args.config, AlignmentConfig, "alignment")
    model_cfg = load_config(args.config, ModelConfig, "model")
    train_cfg = load_config(args.config, TrainingConfig, "training")
    if args.minutes is not None:
        train_cfg = dataclasses.replace(train_cfg, max_minutes=args.minutes)
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / "train.h5"
    out = args.workdir / "arvae.pt"

    t0 = time.time()
    if not data.exists():
        from echotemporal.training.dataset import phantom_sequences, prepare_dataset, real_shape_sequences

        sources = [real_shape_sequences(("train", "val"), copies=args.copies, seed=train_cfg.seed, limit=args.limit)]
        if args.phantoms > 0:
            sources.append(phantom_sequences(args.phantoms, seed=train_cfg.seed))
        counts = prepare_dataset(
            itertools.chain(*sources), data, config=align_cfg, seed=train_cfg.seed, progress=not args.no_progress,
            description=f"default recipe: real-shapes train/val x{args.copies} + {args.phantoms} phantoms",
        )
        print(f"prepared {data} in {time.time() - t0:.0f} s: {counts}", file=sys.stderr, flush=True)

    from echotemporal.training.loop import train_model

    summary = train_model(
        data, out, model_config=model_cfg, config=train_cfg, resume=args.resume, overwrite=not args.resume,
        progress=not args.no_progress,
        provenance={
            "recipe": "scripts/train_default_weights.py + configs/default_model.yaml",
            "data": "CAMUS ED/ES expert masks (upstream train split; val split for validation), "
            "signed-distance ED->ES interpolation, depth-stretch compensation 1.2-1.4, "
            f"+ {args.phantoms} parametric phantom sequences",
            "data_license": "CAMUS: CC BY-NC-SA 4.0, non-commercial research use; cite Leclerc et al., IEEE TMI 38(9):2198-2210, 2019",
            "prepare_seconds": round(time.time() - t0, 1),
        },
    )
    print(summary, flush=True)
    if args.install:
        target = REPO / "echotemporal" / "weights" / "arvae-camus-v1.pt"
        shutil.copyfile(out, target)
        from echotemporal.model.export import export_onnx
        from echotemporal.model.registry import file_sha256

        graphs = export_onnx(target, overwrite=True)  # the ONNX Runtime backend's copy of the new weights
        print(f"installed {target} and {', '.join(g.name for g in graphs)}; set their sha256 in "
              "echotemporal.model.registry.REGISTRY:", flush=True)
        for path in (target, *graphs):
            print(f'    "{path.name}": "{file_sha256(path)}",', flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
