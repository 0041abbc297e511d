"""Smooth the same sequences with the ONNX Runtime and the torch backend and count differing pixels.

The ONNX graphs reproduce the torch model to float32 rounding (~1e-6); this checks that the
corrections built on them are the same. Sequences: the 10 full-resolution CAMUS-2019 expert ED/ES
pairs of ``../shared/data/real-shapes`` (5 patients x 2 views, ``phantoms.load_full_resolution_camus``),
each interpolated to an 18-frame half-sequence, jittered and given 2 corruptions (seeded), then
``--phantoms`` corrupted parametric phantoms.

Usage::

    python scripts/compare_backends.py [--weights W] [--phantoms 20]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def sequences(n_phantoms: int):
    """(name, labels, spacing_mm, ed, es) of the real-shape and phantom test sequences."""
    from echotemporal.phantoms import annotation_jitter, corrupt_sequence, generate_sequence
    from echotemporal.phantoms.real_shapes import load_full_resolution_camus, real_shape_sequence

    for k, case in enumerate(load_full_resolution_camus()):
        rng = np.random.default_rng(k)
        seq = real_shape_sequence(case.ed, case.es, 18, spacing_mm=case.spacing_mm, rng=rng, view=case.view)
        labels = annotation_jitter(seq.labels, case.spacing_mm, rng)
        labels, _ = corrupt_sequence(labels, case.spacing_mm, rng, n_corruptions=2)
        yield f"{case.patient} {case.view}", labels, case.spacing_mm, 0, len(labels) - 1
    for seed in range(n_phantoms):
        phantom = generate_sequence(100 + seed, view="2CH" if seed % 2 else "4CH", n_frames=18)
        rng = np.random.default_rng(seed)
        labels = annotation_jitter(phantom.labels, phantom.spacing_mm, rng)
        labels, _ = corrupt_sequence(labels, phantom.spacing_mm, rng, n_corruptions=2)
        yield f"phantom {100 + seed}", labels, phantom.spacing_mm, phantom.ed_frame, phantom.es_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="checkpoint with its ONNX export beside it (default: shipped)")
    parser.add_argument("--phantoms", type=int, default=20, help="parametric phantoms after the real shapes")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from echotemporal.model import registry as pretrained
    from echotemporal.pipeline import smooth_sequence

    models = {}
    for backend in ("onnx", "torch"):
        pretrained._CACHE.clear()  # the loader keeps one model: both are kept here
        models[backend] = pretrained.load_model(args.weights, backend=backend)
    identical = total = 0
    for name, labels, spacing, ed, es in sequences(args.phantoms):
        out = {}
        for backend, model in models.items():
            out[backend] = smooth_sequence(labels, spacing, model=model, ed_frame=ed, es_frame=es)
        differing = int((out["onnx"].labels != out["torch"].labels).sum())
        s = out["onnx"].summary
        identical += differing == 0
        total += 1
        print(f"{name}: {labels.shape}, differing pixels {differing}; inconsistent {s['n_inconsistent_before']} -> "
              f"{s['n_inconsistent_after']}, invalid {s['n_invalid_before']} -> {s['n_invalid_after']}", flush=True)
    print(f"identical corrections on {identical} of {total} sequences")


if __name__ == "__main__":
    main()
