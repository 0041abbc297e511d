"""Write the benchmark's coherent failure set to disk, in the CAMUS layout, with its truth.

The cases are exactly those of ``scripts/benchmark_smoothing.py --sets coherent`` (the same seeds and
patients: held out by default, ``--tuning`` for the set that constants are chosen on). They are
written as ``echotemporal.phantoms.failure_set.write_failure_tree`` lays them out: per case the
broken input as ``*_half_sequence_gt.nii.gz``, the exact labels as ``*_half_sequence_truth.nii.gz``,
``Info_<view>.cfg`` (ED/ES), plus ``manifest.csv``/``manifest.json`` with every failure run. So a
user can run their own pipeline, or ``echotemporal batch ROOT -o OUT``, on segmentations broken the
way CNN segmenters fail, and score them against the truth.

Usage::

    python scripts/make_failure_sets.py -o /tmp/failures --n 40            # held-out (test patients)
    python scripts/make_failure_sets.py -o /tmp/failures-tuning --tuning   # val patients, other seeds

Needs the shared real-shape data (``$ECHOTEMPORAL_REAL_SHAPES``) for the real-shape half of the cases.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from echotemporal.phantoms import load_real_shapes
from echotemporal.phantoms.failure_set import (
    HELD_OUT_SEED_BASE,
    TUNING_SEED_BASE,
    benchmark_coherent_case,
    write_failure_tree,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write (created)")
    parser.add_argument("--n", type=int, default=40, help="cases (the benchmark's first N)")
    parser.add_argument("--tuning", action="store_true", help="the tuning set (val patients, other seeds)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args()
    t0 = time.perf_counter()
    real = load_real_shapes("val" if args.tuning else "test")
    seed_base = TUNING_SEED_BASE if args.tuning else HELD_OUT_SEED_BASE
    cases = [benchmark_coherent_case(i, seed_base, real=real) for i in range(args.n)]
    root = write_failure_tree(args.output, cases, overwrite=args.overwrite)
    broken = sum(int(c.broken.sum()) for c in cases)
    frames = sum(int(c.truth.shape[0]) for c in cases)
    print(f"{len(cases)} cases ({frames} frames, {broken} in failure runs, "
          f"{sum(not c.with_la for c in cases)} without LA, {sum(i % 4 >= 2 for i in range(len(cases)))} full cycles) "
          f"written to {root}/ in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
