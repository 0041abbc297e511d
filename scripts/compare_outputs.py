"""Fingerprint every output of the correction on fixed corpora, to prove a change leaves them bit-identical.

Corpora (seeded): the corrupted and clean phantoms of ``benchmark_smoothing.make_case`` (half
parametric, half real-shape ``test`` patients) and the 10 full-resolution CAMUS expert shapes of
``compare_backends.sequences``. Per case it records sha256 digests of the corrected labels, the
per-frame table, the summary (timings and versions excluded) and the ``check`` report.

Usage::

    python scripts/compare_outputs.py -o before.json [--n-corrupt 50 --n-clean 20]
    python scripts/compare_outputs.py -o after.json --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

VOLATILE = ("seconds", "version", "sha256", "backend")


def _digest(obj) -> str:
    if isinstance(obj, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(obj).tobytes() + str(obj.shape).encode()).hexdigest()
    text = json.dumps(obj, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _stable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if not any(word in k for word in VOLATILE)}


def corpus(n_corrupt: int, n_clean: int):
    """(name, labels, spacing_mm, ed, es) of every compared case."""
    import benchmark_smoothing as bench
    from compare_backends import sequences

    from echotemporal.phantoms import load_real_shapes

    real = load_real_shapes("test")
    bench._STATE["real"] = real
    index = {str(n): i for i, n in enumerate(real.names)}
    bench._STATE["real_pairs"] = sorted((i, index[n[:-3] + "_ES"]) for n, i in index.items()
                                        if n.endswith("_ED") and n[:-3] + "_ES" in index)
    for corrupt, n in ((True, n_corrupt), (False, n_clean)):
        for i in range(n):
            case = bench.make_case(i, corrupt, "test")
            yield (f"{'corrupted' if case['set'] == 'sparse' else case['set']} {i}", case["labels"], case["spacing_mm"], case["ed_frame"], case["es_frame"])
    for name, labels, spacing, ed, es in sequences(0):
        yield name, labels, spacing, ed, es


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, type=Path)
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--n-corrupt", type=int, default=50)
    parser.add_argument("--n-clean", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from echotemporal.pipeline import smooth_sequence
    from echotemporal.model.registry import load_model
    from echotemporal.measure.check import check_sequence

    model = load_model()
    prints = {}
    for name, labels, spacing, ed, es in corpus(args.n_corrupt, args.n_clean):
        result = smooth_sequence(labels, spacing, model=model, ed_frame=ed, es_frame=es)
        report = check_sequence(labels, spacing, ed_frame=ed, es_frame=es)
        prints[name] = {
            "labels": _digest(result.labels),
            "frames": _digest({k: np.asarray(v).tolist() for k, v in result.columns.items()}),
            "summary": _digest(_stable(result.summary)),
            "check": _digest(_stable(report)),
        }
        print(name, prints[name]["labels"][:12], flush=True)
    args.output.write_text(json.dumps(prints, indent=1))
    if args.compare is not None:
        before = json.loads(args.compare.read_text())
        differ = [(n, k) for n in before for k in before[n] if prints.get(n, {}).get(k) != before[n][k]]
        print(f"{len(before) - len({n for n, _ in differ})} of {len(before)} cases identical; differing: {differ}")
        sys.exit(1 if differ else 0)
    print(f"{len(prints)} cases fingerprinted -> {args.output}")


if __name__ == "__main__":
    main()
