"""Clinical indices on parametric phantoms vs their analytic values (DESIGN.md §5, §7).

For ``--n`` phantom sequences (``phantoms.generate_sequence(seed)``, views alternating 2CH/4CH) this
measures Simpson monoplane volumes, EF and segmentation-derived GLS with ``clinical.clinical_indices``
(ED/ES from the phantom) and compares them with the phantom's analytic ``lv_volume_ml``,
``ef_percent`` and ``gls_percent``. It prints the median and max of |volume error| (%, all frames),
|EF error| (points), |GLS error| (points), how often ED/ES detection from the volume curve finds the
phantom's frames, the worst seeds, and the time spent in clinical_indices per sequence.

Usage:
    python scripts/benchmark_phantom_indices.py [--n 200] [--seed0 0] [--worst 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from echotemporal.measure.clinical import clinical_indices, detect_ed_es
from echotemporal.phantoms import generate_sequence


def _stats(name: str, values: np.ndarray, unit: str) -> str:
    v = np.abs(values[np.isfinite(values)])
    if v.size == 0:
        return f"{name:<22} no finite values"
    return (
        f"{name:<22} median {np.median(v):6.2f}  p95 {np.percentile(v, 95):6.2f}  max {v.max():6.2f} {unit}"
        f"  (n={v.size}, signed mean {np.mean(values[np.isfinite(values)]):+.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of phantom sequences (default 200)")
    parser.add_argument("--seed0", type=int, default=0, help="first seed")
    parser.add_argument("--worst", type=int, default=5, help="list this many worst sequences per index")
    args = parser.parse_args(argv)

    rows = []
    frame_errors = []
    n_warned = 0
    seconds = 0.0
    for i in range(args.n):
        seed = args.seed0 + i
        view = ("2CH", "4CH")[i % 2]
        ph = generate_sequence(seed, view=view)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            ind = clinical_indices(ph.labels, ph.spacing_mm, ed_frame=ph.ed_frame, es_frame=ph.es_frame)
            seconds += time.perf_counter() - t0
            detected = detect_ed_es(ind.volumes_ml)
        n_warned += bool(caught)
        truth = np.asarray(ph.lv_volume_ml, dtype=np.float64)
        err = 100 * (ind.volumes_ml - truth) / truth
        frame_errors.append(err)
        rows.append(
            (
                seed,
                view,
                ph.labels.shape,
                float(np.nanmean(err)),
                float(np.nanmax(np.abs(err))),
                ind.ef_percent - ph.ef_percent,
                ind.gls_percent - ph.gls_percent,
                detected == (ph.ed_frame, ph.es_frame),
                ph.ef_percent,
            )
        )

    vol = np.concatenate(frame_errors)
    ef_err = np.array([r[5] for r in rows])
    gls_err = np.array([r[6] for r in rows])
    print(f"{args.n} phantom sequences (seeds {args.seed0}..{args.seed0 + args.n - 1}), {vol.size} frames")
    print(_stats("|volume error|", vol, "%"))
    print(_stats("|EF error|", ef_err, "points"))
    print(_stats("|GLS error|", gls_err, "points"))
    print(f"ED/ES detected exactly: {np.mean([r[7] for r in rows]) * 100:.1f} %")
    print(f"sequences with warnings: {n_warned}")
    print(f"clinical_indices: {1000 * seconds / args.n:.1f} ms per sequence (mean)")
    for name, key in (("volume (max |err| %)", 4), ("EF (err points)", 5), ("GLS (err points)", 6)):
        order = sorted(rows, key=lambda r: -abs(r[key]) if np.isfinite(r[key]) else 0)[: args.worst]
        print(f"worst {name}: " + "; ".join(f"seed {r[0]} {r[1]} {r[2]} {r[key]:+.2f}" for r in order))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
