"""Export a checkpoint's encoder and decoder as ONNX graphs beside it (or into ``--out-dir``).

``echotemporal.model.registry.load_model`` then runs them with ONNX Runtime instead of torch (no torch
import: the whole ``echotemporal smooth`` command starts ~2.5 s sooner). Prints the graphs, their
sha256 (for ``pretrained.REGISTRY`` when they are shipped) and the largest difference to the torch
model on a phantom sequence. Needs torch and ``pip install onnx``.

Usage::

    python scripts/export_onnx.py [CHECKPOINT] [--out-dir DIR] [--overwrite]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="checkpoint .pt (default: the shipped weights)")
    parser.add_argument("--out-dir", default=None, help="folder of the graphs (default: beside the checkpoint)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing graphs")
    args = parser.parse_args()

    from echotemporal.model.alignment import fit_alignment, to_grid
    from echotemporal.model.export import export_onnx
    from echotemporal.model.onnx_runtime import OnnxShapeModel
    from echotemporal.phantoms import generate_sequence
    from echotemporal.model.registry import file_sha256, load_model

    encoder, decoder = export_onnx(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    for path in (encoder, decoder):
        print(f'"{path.name}": "{file_sha256(path)}",')
    reference = load_model(args.checkpoint, backend="torch")
    exported = OnnxShapeModel(encoder, decoder)
    phantom = generate_sequence(7, view="2CH", n_frames=20)
    alignment = fit_alignment(phantom.labels, phantom.spacing_mm, reference.alignment_config)
    grid = to_grid(phantom.labels, alignment)
    z_ref, z_onnx = reference.encode(grid), exported.encode(grid)
    p_ref, p_onnx = reference.decode(z_ref), exported.decode(z_ref)
    print(f"max |latent difference| {np.abs(z_ref - z_onnx).max():.2e}, "
          f"max |probability difference| {np.abs(p_ref - p_onnx).max():.2e} (20 phantom frames)")


if __name__ == "__main__":
    main()
