"""Several beats with coherent failures, no ED/ES given: beats found and per-beat EF against the truth.

The coherent set's full cycles (``phantoms.failure_set.benchmark_coherent_case``, cases 2 and 3 of every
4) are repeated ``--beats`` times (each repeat starts at the previous one's last frame, so beat k ends
where beat k+1 starts), failures and all, as a segmenter run on a multi-beat clip fails again each
beat. Each sequence is smoothed by ``pipeline.smooth_sequence`` without ED/ES (as for a clip without
Info cfg), and its truth is measured the same way with ``method: none``. Printed, for the input and the
correction: the share of sequences whose beat count matches the truth's, and over those, the median and
mean of each sequence's worst per-beat |EF error| (points).

Usage::

    python scripts/benchmark_multibeat.py [--n 40] [--beats 2] [--tuning]

``--n`` counts full-cycle cases (the first n of them); ``--tuning`` uses the tuning seeds and the ``val``
patients (constants are chosen there), else the held-out ones (``test``). Needs ``$ECHOTEMPORAL_REAL_SHAPES``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np


def beat_efs(summary: dict, when: str) -> list[float]:
    """Per-beat EF (%) of a smoothing summary, ``when`` = "before" (input) or "after"."""
    return [float(beat["ef_percent"]) for beat in summary[f"beats_{when}"]]


def worst_error(found: list[float], truth: list[float]) -> float | None:
    """Largest |EF error| over the beats, None when the beat counts differ."""
    if len(found) != len(truth):
        return None
    return max(abs(a - b) for a, b in zip(found, truth))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40, help="full-cycle cases")
    p.add_argument("--beats", type=int, default=2, help="repeats of each cycle")
    p.add_argument("--tuning", action="store_true", help="tuning seeds and val patients")
    args = p.parse_args()
    warnings.simplefilter("ignore")

    from echotemporal.core.config import SmoothingConfig
    from echotemporal.model.registry import load_model
    from echotemporal.phantoms import load_real_shapes
    from echotemporal.phantoms.failure_set import HELD_OUT_SEED_BASE, TUNING_SEED_BASE, benchmark_coherent_case
    from echotemporal.pipeline import smooth_sequence

    model = load_model()
    real = load_real_shapes("val" if args.tuning else "test")
    seed_base = TUNING_SEED_BASE if args.tuning else HELD_OUT_SEED_BASE
    none = SmoothingConfig(method="none")
    counts = {"input": 0, "arvae": 0}
    errors: dict[str, list[float]] = {"input": [], "arvae": []}
    start = time.perf_counter()
    indices = [i for i in range(4 * args.n) if i % 4 >= 2][: args.n]
    for done, index in enumerate(indices, 1):
        case = benchmark_coherent_case(index, seed_base, real=real)
        repeat = lambda a: np.concatenate([a] + [a[1:]] * (args.beats - 1))  # noqa: E731
        result = smooth_sequence(repeat(case.labels), case.spacing_mm, model=model)
        truth = beat_efs(smooth_sequence(repeat(case.truth), case.spacing_mm, config=none).summary, "after")
        for name, when in (("input", "before"), ("arvae", "after")):
            error = worst_error(beat_efs(result.summary, when), truth)
            if error is not None:
                counts[name] += 1
                errors[name].append(error)
        if done % 10 == 0:
            print(f"{done}/{len(indices)} sequences, {time.perf_counter() - start:.0f} s", flush=True)

    n = len(indices)
    print(f"\n{n} full cycles x {args.beats} beats ({'tuning' if args.tuning else 'held-out'}), no ED/ES given\n")
    print("| curve | beat count right | worst per-beat EF error, median / mean (pts) |")
    print("|---|---|---|")
    for name in ("input", "arvae"):
        e = errors[name]
        summary = f"{statistics.median(e):.2f} / {statistics.mean(e):.2f}" if e else "n/a"
        print(f"| {name} | {counts[name]}/{n} ({100 * counts[name] / n:.0f} %) | {summary} (over those {counts[name]}) |")


if __name__ == "__main__":
    main()
