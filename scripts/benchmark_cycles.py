"""Beats, per-beat EF and volume rates on phantom sequences vs their exact truth (issue 14).

``--n`` parametric phantoms cycle through four kinds: half-sequence ED → ES (``generate_sequence``),
full cycle ED → ES → ED, two beats and three beats (``generate_cycle_sequence``); every other
sequence gets one or two temporal glitches (``corrupt_sequence``, contraction/dilation/shifts).
``--real`` more are full cycles or two beats of real CAMUS ED/ES masks (``real_shape_sequence`` on a
cycle profile); their truth is the clean sequence's measured curve. For each sequence the LV volume
curve is measured (Simpson, ``clinical.measure_frames``) on the input and, with ``--method arvae`` or
``gaussian``, on ``pipeline.smooth_sequence``'s correction; beats are detected on each curve
(``clinical.cycles.detect_beats``). Printed, per curve:

- ED and ES within 1 frame of the truth, % of true beats (ES: within 1 frame of the volume plateau
  that isovolumic relaxation leaves at end-systole);
- per-beat |EF error| (points) median and 95th percentile, vs the analytic EF;
- peak ejection and peak filling rates, median and p95 |error| (%) vs the analytic rates and the share
  of beats within 10 %, from the given
  curve and (input only) from its robustly smoothed copy; and from the exact volume curve sampled at
  the frames (the accuracy of the derivative alone).

Usage:
    PYTHONPATH=. python scripts/benchmark_cycles.py [--n 200] [--real 20] [--method none|arvae|gaussian]
        [--subset K] [--seed0 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from echotemporal.measure.clinical import measure_frames
from echotemporal.measure.clinical.beats import beat_indices, volume_rates
from echotemporal.measure.clinical.cycles import detect_beats, robust_smooth
from echotemporal.phantoms import (
    corrupt_sequence,
    cycle_profile,
    generate_cycle_sequence,
    generate_sequence,
    load_real_shapes,
    real_shape_sequence,
    real_shape_spacing_mm,
    sample_beat_timing,
)

KINDS = ("half", "full", "2 beats", "3 beats")
GLITCHES = ("contraction", "dilation", "shift_vertical", "shift_horizontal")


def _phantom(i: int, seed: int):
    """(kind, PhantomSequence, truth beats [{ed, es, es_end, ef, per, pfr}]) of the i-th sequence."""
    kind = KINDS[i % len(KINDS)]
    if kind == "half":
        ph = generate_sequence(seed, view=("2CH", "4CH")[(i // 4) % 2])
        truth = [{"ed": 0, "es": ph.n_frames - 1, "es_end": ph.n_frames - 1, "ef": ph.ef_percent,
                  "per": np.nan, "pfr": np.nan}]
        return kind, ph, truth
    ph = generate_cycle_sequence(seed, view=("2CH", "4CH")[(i // 4) % 2], n_beats=KINDS.index(kind))
    truth = [{"ed": b["ed_frame"], "es": b["es_frame"], "es_end": b["es_plateau_end_frame"], "ef": b["ef_percent"],
              "per": b["peak_ejection_rate_ml_s"], "pfr": b["peak_filling_rate_ml_s"]} for b in ph.params["beats"]]
    return kind, ph, truth


def _real(i: int, shapes, rng: np.random.Generator):
    """A full cycle or two beats of one real ED/ES pair; truth from the clean sequence's measures."""
    patient, view = shapes.pairs()[i % len(shapes.pairs())]
    ed_mask, es_mask = shapes.pair(patient, view)
    n_beats = 1 + i % 2
    prof = cycle_profile([sample_beat_timing(rng) for _ in range(n_beats)], int(rng.integers(24, 40)))
    ph = real_shape_sequence(ed_mask, es_mask, 0, spacing_mm=real_shape_spacing_mm(), profile=prof, view=view)
    m = measure_frames(ph.labels, ph.spacing_mm)
    frame_time = 900.0 / prof.frames_per_beat
    clean_cycles = detect_beats(m.volumes_ml, ed_frames=list(prof.ed_frames), es_frames=list(prof.es_frames))
    rates = volume_rates(m.volumes_ml, frame_time, clean_cycles)
    idx = beat_indices(m.volumes_ml, None, clean_cycles)
    truth = [{"ed": ed, "es": es, "es_end": end, "ef": b.ef_percent, "per": r.peak_ejection_rate,
              "pfr": r.peak_filling_rate}
             for ed, es, end, b, r in zip(prof.ed_frames, prof.es_frames, prof.es_plateau_frames, idx, rates)]
    return f"real {n_beats} beat(s)", ph, truth, frame_time


def _score(volumes: np.ndarray, frame_time: float | None, truth: list[dict], exact: np.ndarray | None):
    """Per true beat: (ED ok, ES ok, EF error, PER error %, PFR error %, smoothed PER %, smoothed PFR %,
    exact-curve PER %, exact-curve PFR %)."""
    cycles = detect_beats(volumes)
    found = cycles.beats
    rates = volume_rates(volumes, frame_time, cycles)
    smooth_rates = volume_rates(robust_smooth(volumes), frame_time, cycles)
    ef = [b.ef_percent for b in beat_indices(volumes, None, cycles)]
    exact_rates = None
    if exact is not None and np.isfinite(exact).all():
        exact_cycles = detect_beats(exact, ed_frames=[t["ed"] for t in truth], es_frames=[t["es"] for t in truth])
        exact_rates = volume_rates(exact, frame_time, exact_cycles)
    rows = []
    for k, t in enumerate(truth):
        if not found:
            rows.append((False, False, np.nan, *([np.nan] * 6)))
            continue
        j = int(np.argmin([abs(ed - t["ed"]) for ed, _ in found]))
        ed, es = found[j]
        pct = lambda a, b: 100.0 * (a - b) / b  # noqa: E731
        ex = exact_rates[k] if exact_rates is not None else None
        rows.append((abs(ed - t["ed"]) <= 1, t["es"] - 1 <= es <= t["es_end"] + 1, ef[j] - t["ef"],
                     pct(rates[j].peak_ejection_rate, t["per"]), pct(rates[j].peak_filling_rate, t["pfr"]),
                     pct(smooth_rates[j].peak_ejection_rate, t["per"]),
                     pct(smooth_rates[j].peak_filling_rate, t["pfr"]),
                     pct(ex.peak_ejection_rate, t["per"]) if ex else np.nan,
                     pct(ex.peak_filling_rate, t["pfr"]) if ex else np.nan))
    return rows


def _median_abs(x: np.ndarray) -> str:
    x = np.abs(x[np.isfinite(x)])
    if not x.size:
        return "  n/a"
    within = 100 * np.mean(x <= 10)
    return f"{np.median(x):5.1f} p95 {np.percentile(x, 95):5.1f} within 10 %: {within:5.1f} % (n={x.size})"


def _report(name: str, rows: list[tuple]) -> None:
    a = np.array(rows, dtype=np.float64)
    ef = np.abs(a[:, 2][np.isfinite(a[:, 2])])
    print(f"[{name}] {len(a)} beats: ED within 1 frame {100 * a[:, 0].mean():.1f} %, ES within 1 frame "
          f"{100 * a[:, 1].mean():.1f} %; |EF error| median {np.median(ef):.2f} p95 {np.percentile(ef, 95):.2f} "
          f"points (n={ef.size})")
    for rate, col in (("PER", 3), ("PFR", 4)):
        print(f"    {rate} |error| % median: {_median_abs(a[:, col])}")
        print(f"        robustly smoothed curve: {_median_abs(a[:, col + 2])}")
        print(f"        exact curve at the frames: {_median_abs(a[:, col + 4])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="parametric sequences (default 200)")
    parser.add_argument("--real", type=int, default=0, help="real-shape sequences (default 0)")
    parser.add_argument("--seed0", type=int, default=0)
    parser.add_argument("--method", default="none", choices=("none", "arvae", "gaussian"),
                        help="also correct with pipeline.smooth_sequence and score the output")
    parser.add_argument("--subset", type=int, default=None, help="correct only every k-th sequence")
    args = parser.parse_args(argv)

    model = None
    if args.method != "none":
        from echotemporal.core.config import SmoothingConfig
        from echotemporal.pipeline import smooth_sequence
        from echotemporal.model.registry import load_model

        model = load_model() if args.method == "arvae" else None
        config = SmoothingConfig(method=args.method)
    rows: dict[str, list] = {}
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed0)
    shapes = load_real_shapes("test") if args.real else None
    items = [("param", i) for i in range(args.n)] + [("real", i) for i in range(args.real)]
    for source, i in items:
        seed = args.seed0 + i
        if source == "param":
            kind, ph, truth = _phantom(i, seed)
            frame_time, exact = ph.frame_time_ms, ph.lv_volume_ml
        else:
            kind, ph, truth, frame_time = _real(i, shapes, rng)
            exact = None
        glitched = i % 2 == 1
        labels = ph.labels
        if glitched:
            labels, _ = corrupt_sequence(labels, ph.spacing_mm, np.random.default_rng(seed + 10_000),
                                         kinds=list(GLITCHES), n_corruptions=1 + (i // 2) % 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            volumes = measure_frames(labels, ph.spacing_mm).volumes_ml
            scored = _score(volumes, frame_time, truth, exact)
            for key in ("all", f"{kind}{' glitched' if glitched else ''}", "glitched" if glitched else "clean"):
                rows.setdefault(f"input {key}", []).extend(scored)
            if args.method != "none" and (args.subset is None or i % args.subset == 0):
                out = smooth_sequence(labels, ph.spacing_mm, model=model, config=config)
                corrected = out.frame_measures["after"].volumes_ml
                scored = _score(corrected, frame_time, truth, None)
                rows.setdefault(f"{args.method} all", []).extend(scored)
                rows.setdefault("input, same subset", []).extend(_score(volumes, frame_time, truth, None))
    print(f"{args.n} parametric + {args.real} real-shape sequences (seeds from {args.seed0}; every other one "
          f"glitched) in {time.perf_counter() - start:.0f} s")
    for name in sorted(rows):
        _report(name, rows[name])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
