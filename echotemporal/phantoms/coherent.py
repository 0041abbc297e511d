"""Coherent failures: runs of consecutive frames broken the way CNN segmenters fail on echo.

Real segmenters do not glitch one frame at a time: the same error (a lateral wall lost in drop-out,
the cavity split by trabeculations, the LV running into the atrium, a foreshortened apex, a biased
endocardium, a mislabelled base, a myocardium in pieces) persists over several frames and evolves
with the image. Each run here lasts 5-15 frames; its severity ramps in, plateaus and ramps out on a
raised-cosine profile and its position drifts linearly, so consecutive frames differ little and the
temporal consistency metric misses much of it. Geometry is read from each input frame (mitral hinges
and apex from `attributes.lv_landmarks`), so the error follows the heart's own motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from echotemporal.measure.attributes import lv_landmarks
from echotemporal.core.boxes import grow
from echotemporal.core.labels import BACKGROUND, LA, LV, MYO, validate_labels
from echotemporal.phantoms.corruption import smooth_random_field
from echotemporal.phantoms.records import COHERENT_KINDS, CorruptionRun

__all__ = ["coherent_failures", "broken_frames"]

#: Severity of a run's first and last frames relative to its plateau: every run frame is broken.
_SEVERITY_FLOOR = 0.35
#: Margin (mm) around the heart inside which a failure may write (the leak hangs up to 20 mm below).
_MARGIN_MM = 26.0


@dataclass(frozen=True)
class _Geometry:
    """LV frame of one crop, in mm: axial ``a`` (0 at the mitral plane, + towards the apex), lateral
    ``l`` (+ towards larger columns), polar angle ``phi`` (rad, 0 at the apex, > 0 on the + side) and
    radius ``r`` around a centre on the axis 45 % of the way up, LV length and half base width."""

    a: np.ndarray
    l: np.ndarray
    phi: np.ndarray
    r: np.ndarray
    length_mm: float
    half_base_mm: float


def _geometry(crop: np.ndarray, spacing: tuple[float, float]) -> _Geometry | None:
    marks = lv_landmarks(crop, spacing)
    if marks is None:
        return None
    row_mm, col_mm = spacing
    base = np.array([marks.base_midpoint[0] * row_mm, marks.base_midpoint[1] * col_mm])
    apex = np.array([marks.apex[0] * row_mm, marks.apex[1] * col_mm])
    length = float(np.linalg.norm(apex - base))
    if length < 3.0 * max(spacing):
        return None
    u = (apex - base) / length
    v = np.array([u[1], -u[0]])  # u = (-1, 0) (apex up) gives v = (0, 1): towards larger columns
    y = np.arange(crop.shape[0])[:, None] * row_mm - base[0]
    x = np.arange(crop.shape[1])[None, :] * col_mm - base[1]
    a = y * u[0] + x * u[1]
    l = y * v[0] + x * v[1]
    ac = a - 0.45 * length
    hinge_mm = math.hypot((marks.hinge_left[0] - marks.hinge_right[0]) * row_mm,
                          (marks.hinge_left[1] - marks.hinge_right[1]) * col_mm)
    return _Geometry(a, l, np.arctan2(l, ac), np.hypot(l, ac), length, 0.5 * hinge_mm)


def _edt(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Distance (mm) of every pixel to ``mask`` (0 inside); large where the mask is empty."""
    if not mask.any():
        return np.full(mask.shape, 1e6)
    return ndimage.distance_transform_edt(~mask, sampling=spacing)


def _ray_band(g: _Geometry, angle: float, width_mm: float) -> np.ndarray:
    """Pixels within ``width_mm``/2 (arc length) of the ray from the LV centre at ``angle`` (rad)."""
    diff = np.angle(np.exp(1j * (g.phi - angle)))
    return (np.abs(diff) * g.r <= 0.5 * width_mm) & (np.abs(diff) < 0.5 * math.pi)


# ---------------------------------------------------------------------------------------------------
# Kinds. Each draws its run constants with `_draw_*` (rng, whether the frame has an LA) and breaks one
# crop with `_apply_*` (crop, geometry, spacing, severity in (0, 1], run progress in [0, 1], constants).


def _draw_wall_dropout(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    side = float(rng.choice([-1.0, 1.0]))
    start = math.radians(rng.uniform(45.0, 130.0))
    return {"side": side, "angle_rad": (start, start + math.radians(rng.uniform(-15.0, 15.0))),
            "gap_mm": rng.uniform(12.0, 30.0), "leak_mm": rng.uniform(2.0, 6.0) if rng.random() < 0.5 else 0.0}


def _apply_wall_dropout(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                        p: dict[str, Any]) -> np.ndarray:
    angle = p["side"] * (p["angle_rad"][0] + x * (p["angle_rad"][1] - p["angle_rad"][0]))
    lost = (f == MYO) & _ray_band(g, angle, s * p["gap_mm"]) & (np.sign(g.l) == p["side"])
    out = f.copy()
    out[lost] = BACKGROUND
    if p["leak_mm"] > 0:
        # The cavity bulges into the missing wall, as a network does where the wall is not visible.
        out[lost & (_edt(f == LV, spacing) <= s * p["leak_mm"])] = LV
    return out


def _draw_lv_split(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    n = int(rng.integers(1, 3))
    centres = [rng.uniform(0.35, 0.65)] if n == 1 else [rng.uniform(0.25, 0.4), rng.uniform(0.55, 0.7)]
    return {"centres": centres, "drift": rng.uniform(-0.08, 0.08), "tilt_rad": math.radians(rng.uniform(-20.0, 20.0)),
            "width_mm": rng.uniform(2.5, 6.0), "fill": int(rng.choice([BACKGROUND, MYO]))}


def _apply_lv_split(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                    p: dict[str, Any]) -> np.ndarray:
    # At least two pixels thick, so that the band separates the cavity under 8-connectivity too.
    width = max(s * p["width_mm"], 2.0 * max(spacing))
    across = g.a * math.cos(p["tilt_rad"]) + g.l * math.sin(p["tilt_rad"])
    out = f.copy()
    for centre in p["centres"]:
        level = (centre + p["drift"] * (x - 0.5)) * g.length_mm
        out[(f == LV) & (np.abs(across - level) <= 0.5 * width)] = p["fill"]
    return out


def _draw_base_leak(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    shift = rng.uniform(-5.0, 5.0)
    return {"depth_mm": rng.uniform(11.0, 20.0), "width": rng.uniform(0.5, 0.9), "shift_mm": (shift, -shift),
            "rim_mm": rng.uniform(2.0, 4.0) if rng.random() < 0.5 else 0.0}


def _apply_base_leak(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                     p: dict[str, Any]) -> np.ndarray:
    depth = s * p["depth_mm"]
    half = p["width"] * g.half_base_mm
    centre = p["shift_mm"][0] + x * (p["shift_mm"][1] - p["shift_mm"][0])
    # Half-ellipse hanging from the mitral plane into the atrium (or the background without an LA).
    rho = np.hypot((g.l - centre) / half, g.a / depth)
    blob = (rho <= 1.0) & (g.a <= 0.5 * max(spacing)) & ((f == BACKGROUND) | (f == LA))
    out = f.copy()
    out[blob] = LV
    if p["rim_mm"] > 0:
        # A myocardium-like rim around it: the wall closing under the leak.
        out[blob & (rho > 1.0 - p["rim_mm"] / min(half, depth))] = MYO
    return out


def _draw_apex_cut(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    return {"cut_mm": rng.uniform(10.0, 22.0), "tilt_rad": (math.radians(rng.uniform(-15.0, 15.0)),
                                                       math.radians(rng.uniform(-15.0, 15.0))),
            "cap_mm": rng.uniform(3.0, 6.0) if rng.random() < 0.5 else 0.0}


def _apply_apex_cut(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                    p: dict[str, Any]) -> np.ndarray:
    tilt = p["tilt_rad"][0] + x * (p["tilt_rad"][1] - p["tilt_rad"][0])
    along = g.a * math.cos(tilt) + g.l * math.sin(tilt)
    # At most a third of the LV: beyond that a network's output is missing the heart, not the apex.
    level = g.length_mm - s * min(p["cut_mm"], g.length_mm / 3.0)
    out = f.copy()
    out[((f == LV) | (f == MYO)) & (along > level)] = BACKGROUND
    if p["cap_mm"] > 0:
        # A thin wall drawn over the cut cavity: a foreshortened apex rather than an open one.
        out[(f == LV) & (along <= level) & (along > level - p["cap_mm"])] = MYO
    return out


def _draw_over_under(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    return {"sign": float(rng.choice([-1.0, 1.0])), "shift_mm": rng.uniform(2.0, 4.5),
            "uneven": rng.uniform(0.0, 0.6), "field_seed": int(rng.integers(2**31))}


def _apply_over_under(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                      p: dict[str, Any]) -> np.ndarray:
    # One smooth field per run, laid in the LV frame (axial, lateral; 1 mm cells): the unevenness
    # moves with the heart instead of staying put in the image.
    points = (np.clip(g.a + 60.0, 0.0, 199.0), np.clip(g.l + 80.0, 0.0, 159.0))
    field = smooth_random_field((200, 160), (15.0, 15.0), np.random.default_rng(p["field_seed"]), points=points)
    # At least one pixel on average: a thinner bias is border noise, not a failure.
    shift = max(s * p["shift_mm"], max(spacing)) * np.clip(1.0 + p["uneven"] * field, 0.2, 2.0)
    lv = f == LV
    out = f.copy()
    if p["sign"] > 0:
        # Endocardium pushed into the wall (the mitral plane stays: leaks are their own kind).
        out[(f == MYO) & (_edt(lv, spacing) <= shift)] = LV
    else:
        depth, (ri, ci) = ndimage.distance_transform_edt(lv, sampling=spacing, return_indices=True)
        lost = lv & (depth <= shift)
        # Vacated cavity takes the nearest other label: MYO on the walls, LA/background at the base.
        out[lost] = f[ri[lost], ci[lost]]
    return out


def _draw_base_swap(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    variants = ["myo_as_lv", "lv_as_myo"] + (["la_as_lv"] if has_la else [])
    variant = str(rng.choice(variants))
    return {"variant": variant, "height_mm": rng.uniform(5.0, 12.0) if variant == "la_as_lv" else rng.uniform(8.0, 18.0),
            "thick_mm": rng.uniform(3.0, 8.0), "sides": [-1.0, 1.0] if rng.random() < 0.4 else [float(rng.choice([-1, 1]))]}


def _apply_base_swap(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                     p: dict[str, Any]) -> np.ndarray:
    height = s * p["height_mm"]
    side = np.isin(np.sign(g.l), p["sides"])
    out = f.copy()
    if p["variant"] == "la_as_lv":
        out[(f == LA) & (g.a >= -height)] = LV
    elif p["variant"] == "myo_as_lv":
        basal = side & (g.a >= -0.5 * max(spacing)) & (g.a <= height)
        out[(f == MYO) & basal & (_edt(f == LV, spacing) <= s * p["thick_mm"])] = LV
    else:
        basal = side & (g.a >= -0.5 * max(spacing)) & (g.a <= height)
        out[(f == LV) & basal & (_edt(f == MYO, spacing) <= s * p["thick_mm"])] = MYO
    return out


def _draw_myo_fragments(rng: np.random.Generator, has_la: bool) -> dict[str, Any]:
    n = int(rng.integers(2, 7))  # 3 to 7 pieces
    # Evenly spread cuts, jittered by less than half their spacing: no two cuts merge into one gap.
    step = 4.6 / n
    angles = -2.3 + step * (np.arange(n) + 0.5 + rng.uniform(-0.3, 0.3, size=n))
    return {"angles_rad": angles.tolist(), "drift_rad": rng.uniform(-0.15, 0.15, size=n).tolist(),
            "gap_mm": rng.uniform(1.5, 4.0)}


def _apply_myo_fragments(f: np.ndarray, g: _Geometry, spacing: tuple[float, float], s: float, x: float,
                         p: dict[str, Any]) -> np.ndarray:
    gap = max(s * p["gap_mm"], 2.0 * max(spacing))
    cut = np.zeros(f.shape, dtype=bool)
    for angle, drift in zip(p["angles_rad"], p["drift_rad"]):
        cut |= _ray_band(g, angle + drift * (x - 0.5), gap)
    out = f.copy()
    out[(f == MYO) & cut] = BACKGROUND
    return out


_KINDS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[..., np.ndarray]]] = {
    "wall_dropout": (_draw_wall_dropout, _apply_wall_dropout),
    "lv_split": (_draw_lv_split, _apply_lv_split),
    "base_leak": (_draw_base_leak, _apply_base_leak),
    "apex_cut": (_draw_apex_cut, _apply_apex_cut),
    "over_under": (_draw_over_under, _apply_over_under),
    "base_swap": (_draw_base_swap, _apply_base_swap),
    "myo_fragments": (_draw_myo_fragments, _apply_myo_fragments),
}
assert tuple(_KINDS) == COHERENT_KINDS


def _detail(params: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "/".join(fmt(w) for w in v)
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    shown = {(k[:-4] + "_deg" if k.endswith("_rad") else k): (np.degrees(v).tolist() if k.endswith("_rad") else v)
             for k, v in params.items() if k != "field_seed"}
    return " ".join(f"{k}={fmt(v)}" for k, v in shown.items())


# ---------------------------------------------------------------------------------------------------
# Runs: where they go and how their severity evolves.


def _severity(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) raised-cosine ramp-in, plateau at 1 and ramp-out, never below `_SEVERITY_FLOOR`."""
    x = (np.arange(n) + 0.5) / n
    ramp_in, ramp_out = rng.uniform(0.15, 0.4, size=2)
    w = np.clip(np.minimum(x / ramp_in, (1.0 - x) / ramp_out), 0.0, 1.0)
    return _SEVERITY_FLOOR + (1.0 - _SEVERITY_FLOOR) * 0.5 * (1.0 - np.cos(math.pi * w))


def _place_runs(n_frames: int, n_broken: int, run_frames: tuple[int, int],
                rng: np.random.Generator) -> list[tuple[int, int]]:
    """(first, last) of runs covering ``n_broken`` of ``n_frames`` frames, lengths within ``run_frames``."""
    lo, hi = run_frames
    if n_broken <= hi:
        lengths = [n_broken]
    else:
        k = int(rng.integers(math.ceil(n_broken / hi), max(math.ceil(n_broken / hi), n_broken // lo) + 1))
        lengths = [lo] * k
        for _ in range(n_broken - lo * k):
            free = [i for i in range(k) if lengths[i] < hi]
            lengths[int(rng.choice(free))] += 1
        lengths = [lengths[i] for i in rng.permutation(k)]
    gaps = rng.multinomial(n_frames - n_broken, np.full(len(lengths) + 1, 1.0 / (len(lengths) + 1)))
    runs, t = [], int(gaps[0])
    for length, gap in zip(lengths, gaps[1:]):
        runs.append((t, t + length - 1))
        t += length + int(gap)
    return runs


def coherent_failures(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    rng: np.random.Generator,
    *,
    broken_fraction: tuple[float, float] = (0.3, 0.7),
    kinds: tuple[str, ...] | list[str] | None = None,
    run_frames: tuple[int, int] = (5, 15),
    combine_probability: float = 0.35,
) -> tuple[np.ndarray, list[CorruptionRun]]:
    """Break runs of consecutive frames the way CNN segmenters fail, smoothly in time.

    Kinds (`COHERENT_KINDS`): ``wall_dropout`` (a septal or lateral myocardium segment of up to
    12-30 mm missing, the LV bulging into the gap in half of the runs), ``lv_split`` (one or two
    2.5-6 mm bands of background or MYO across the cavity: 2-3 LV pieces), ``base_leak`` (a
    half-ellipse of LV, with a MYO rim in half of the runs, hanging 11-20 mm below the mitral plane
    into the LA or background), ``apex_cut`` (LV and MYO beyond a plane 10-22 mm below the LV apex
    removed, at most a third of the LV length; a thin MYO cap over the cut in half of the runs), ``over_under`` (endocardium moved
    2-4.5 mm outwards into the MYO or inwards, unevenly along the wall), ``base_swap`` (basal MYO
    labelled LV, basal LV labelled MYO, or LA near the mitral plane labelled LV), ``myo_fragments``
    (the MYO cut across in 2-6 places: 3-7 pieces). Each run's severity ramps in, plateaus and
    ramps out; its position drifts linearly. Runs get distinct kinds in turn and, with
    ``combine_probability``, a second kind over the same frames.

    Args:
        labels: (T, H, W) uint8 clean label map, apex towards row 0 (not modified); with or without LA.
        spacing_mm: (row_mm, col_mm).
        rng: random generator (the result is a function of its state).
        broken_fraction: (low, high) share of the T frames to break, drawn uniformly (the count is
            rounded into the range where T allows).
        kinds: kinds to draw from (default all `COHERENT_KINDS`).
        run_frames: (shortest, longest) run in frames; shorter runs only where fewer frames are to break.
        combine_probability: chance that a run carries two kinds at once.

    Returns:
        (broken labels (T, H, W) uint8, runs sorted by first frame). Frames outside every run are
        bit-identical to the input. A frame whose LV landmarks cannot be found is left unchanged.

    Raises:
        ValueError: unknown kind, bad fraction or run lengths, or labels not (T, H, W).
    """
    seq = validate_labels(np.asarray(labels), "labels")
    if seq.ndim != 3:
        raise ValueError(f"labels has shape {seq.shape}; expected (T, H, W)")
    pool = _kind_pool(kinds)
    lo_frac, hi_frac = (float(v) for v in broken_fraction)
    if not 0.0 <= lo_frac <= hi_frac <= 1.0:
        raise ValueError(f"broken_fraction={broken_fraction}: need 0 <= low <= high <= 1")
    if not 1 <= run_frames[0] <= run_frames[1]:
        raise ValueError(f"run_frames={run_frames}: need 1 <= shortest <= longest")
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    n_frames = seq.shape[0]
    n_broken = _count_broken(n_frames, lo_frac, hi_frac, int(run_frames[0]), rng)
    if n_broken == 0:
        return seq.copy(), []
    spans = _place_runs(n_frames, n_broken, (int(run_frames[0]), int(run_frames[1])), rng)
    has_la = bool((seq == LA).any())
    order = [pool[i] for i in rng.permutation(len(pool))]
    out = seq.copy()
    margin = (math.ceil(_MARGIN_MM / spacing[0]), math.ceil(_MARGIN_MM / spacing[1]))
    records: list[CorruptionRun] = []
    for i, (first, last) in enumerate(spans):
        run_kinds = [order[i % len(order)]]
        if len(pool) > 1 and rng.random() < combine_probability:
            run_kinds.append(str(rng.choice([k for k in pool if k != run_kinds[0]])))
        drawn = [(kind, _KINDS[kind][0](rng, has_la)) for kind in run_kinds]
        severity = _severity(last - first + 1, rng)
        _break_run(seq, out, first, last, drawn, severity, spacing, margin)
        records.extend(CorruptionRun(kind, first, last, _detail(params)) for kind, params in drawn)
    records.sort(key=lambda r: (r.first_frame, COHERENT_KINDS.index(r.kind)))
    return out, records


def _kind_pool(kinds: tuple[str, ...] | list[str] | None) -> list[str]:
    """The kinds to draw from (default all `COHERENT_KINDS`); ValueError for an unknown or empty list."""
    pool = list(COHERENT_KINDS if kinds is None else kinds)
    unknown = [k for k in pool if k not in COHERENT_KINDS]
    if unknown or not pool:
        raise ValueError(f"unknown coherent failure kinds {unknown or pool}; valid kinds: {', '.join(COHERENT_KINDS)}")
    return pool


def _count_broken(n_frames: int, lo_frac: float, hi_frac: float, shortest: int, rng: np.random.Generator) -> int:
    """Number of frames to break: a share drawn in [lo_frac, hi_frac] of ``n_frames``, rounded into
    the range where T allows, and at least one run of ``shortest`` frames when the range allows it."""
    n_lo, n_hi = math.ceil(lo_frac * n_frames - 1e-9), math.floor(hi_frac * n_frames + 1e-9)
    n_broken = int(np.clip(round(rng.uniform(lo_frac, hi_frac) * n_frames), min(n_lo, n_hi), max(n_lo, n_hi)))
    return max(n_broken, min(shortest, max(n_lo, n_hi)))


def _break_run(seq: np.ndarray, out: np.ndarray, first: int, last: int, drawn: list[tuple[str, dict[str, Any]]],
               severity: np.ndarray, spacing: tuple[float, float], margin: tuple[int, int]) -> None:
    """Apply the drawn kinds to frames ``first..last`` of ``out`` (T, H, W), in place, each frame's
    heart box (grown by ``margin`` pixels) read from the clean ``seq``; ``severity``: (last-first+1,)."""
    progress = np.linspace(0.0, 1.0, last - first + 1)
    for j, t in enumerate(range(first, last + 1)):
        rows, cols = np.nonzero(seq[t])
        if rows.size == 0:
            continue
        box = grow((slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)),
                   margin, seq.shape)
        crop = seq[t][box]
        geometry = _geometry(crop, spacing)
        if geometry is None:
            continue
        for kind, params in drawn:
            crop = _KINDS[kind][1](crop, geometry, spacing, float(severity[j]), float(progress[j]), params)
        out[t][box] = crop


def broken_frames(runs: list[CorruptionRun], n_frames: int) -> np.ndarray:
    """(T,) bool: frames inside at least one run."""
    mask = np.zeros(n_frames, dtype=bool)
    for run in runs:
        mask[run.first_frame : run.last_frame + 1] = True
    return mask
