"""Parametric CAMUS-like apical half-sequences (ED -> ES) with exact ground truth (DESIGN §7).

The LV cavity is a smooth closed contour defined in millimetres: a "bullet" (semi-elliptical apical cap
on a body that narrows towards the mitral annulus) with low-order Fourier perturbations, closed by the
mitral segment between the two hinge points. The myocardium is the band between that open endocardial
curve (hinge -> apex -> hinge) and its outward offset by a wall thickness that varies along the wall,
open at the base; the LA hangs below the mitral segment. Over the half-sequence the apex stays put, the
base moves towards it, the cavity narrows and the wall thickens, all on one smooth monotone time
profile, so the volume curve is smooth and monotone.

The truth is analytic: `lv_volume_ml` is the volume of revolution (disk integral with 1000 disks) of the
exact contour about its long axis (hinge midpoint -> farthest contour point), the quantity Simpson's
rule on the raster approaches; GLS is the change of the exact hinge-apex-hinge contour length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy.optimize import brentq

from echotemporal.phantoms.cycle_profile import CycleProfile, cycle_profile, sample_beat_timing
from echotemporal.phantoms.contour import disk_volume_ml, polygon_area, polyline_length
from echotemporal.phantoms.raster import fill_polygon, smooth_time_profile
from echotemporal.phantoms.records import PhantomSequence

__all__ = ["VIEWS", "generate_cycle_sequence", "generate_sequence"]

VIEWS: tuple[str, ...] = ("2CH", "4CH")

_N_CAP = 90  # points on each half of the apical cap
_N_BODY = 90  # points on each side of the body
_N_BASE = 24  # points on the mitral segment (endpoints excluded)
_N_LA = 120
_FOURIER_ORDERS = (2, 3, 4, 5)


@dataclass(frozen=True)
class _Physiology:
    """Everything that defines one phantom sequence (mm, degrees, fractions)."""

    view: str
    lv_length_mm: float  # ED, apex -> mitral plane along the axis, before perturbation
    radius_left_mm: float  # ED half-width of the body
    radius_right_mm: float
    base_ratio_left: float  # half-width at the hinge / body half-width
    base_ratio_right: float
    apex_cap_fraction: float  # length of the semi-elliptical cap / LV length
    fourier: tuple[float, ...]  # (cos_k, sin_k) for k in _FOURIER_ORDERS, radial relative amplitude
    myo_thickness_mm: float  # ED mid-wall thickness
    thickness_apex_factor: float
    thickness_left_factor: float
    thickness_right_factor: float
    ef_percent: float
    long_shortening: float  # relative ED -> ES shortening of the LV length
    tilt_deg: float
    apex_top_mm: float  # depth of the highest epicardial point below the image top
    lateral_offset_mm: float
    la_depth_mm: float  # ED depth of the LA below the mitral plane
    la_width_mm: float  # ED widest LA diameter
    n_frames: int
    time_gamma: float
    fov_depth_mm: float
    fov_width_mm: float
    row_mm: float
    col_mm: float
    myo_area_ratio: float  # ES / ED myocardial area; the wall thickening follows from it


def _sample_patient(rng: np.random.Generator) -> dict[str, float]:
    """Patient-level physiology shared by both views (size, EF, wall, timing)."""
    length = rng.uniform(72.0, 95.0)
    return {
        "lv_length_mm": length,
        "sphericity": rng.uniform(0.46, 0.62),  # ED max width / length
        "ef_percent": rng.uniform(20.0, 75.0),
        "myo_thickness_mm": rng.uniform(8.0, 12.0),
        "shortening_base": rng.uniform(0.8, 1.2),
        "apex_top_mm": rng.uniform(8.0, 25.0),
        "fov_depth_mm": rng.uniform(110.0, 160.0),
        "fov_aspect": rng.uniform(1.2, 1.4),
        "row_mm": rng.uniform(0.15, 0.25),
        "col_fraction": rng.uniform(0.0, 1.0),
        "myo_area_ratio": rng.uniform(0.97, 1.08),
    }


def _sample_view(patient: dict[str, float], view: str, rng: np.random.Generator) -> _Physiology:
    """View-level shape of one sequence around the patient's physiology."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is not one of {VIEWS}; use '2CH' or '4CH'")
    # The 4CH LV looks slightly wider than the 2CH one in CAMUS.
    view_width = 0.97 if view == "2CH" else 1.03
    length = patient["lv_length_mm"] * rng.uniform(0.96, 1.04)
    width = np.clip(length * patient["sphericity"] * view_width * rng.uniform(0.96, 1.04), 36.0, 56.0)
    asym = rng.uniform(-0.08, 0.08)
    ef = patient["ef_percent"]
    fourier = tuple(float(v) for k in _FOURIER_ORDERS for v in rng.normal(0.0, 0.02 / k, size=2))
    row_mm = patient["row_mm"]
    radius_l, radius_r = 0.5 * width * (1 - asym), 0.5 * width * (1 + asym)
    base_l, base_r = rng.uniform(0.72, 0.9), rng.uniform(0.72, 0.9)
    return _Physiology(
        view=view,
        lv_length_mm=float(length),
        radius_left_mm=float(radius_l),
        radius_right_mm=float(radius_r),
        base_ratio_left=float(base_l),
        base_ratio_right=float(base_r),
        apex_cap_fraction=float(rng.uniform(0.45, 0.65)),
        fourier=fourier,
        myo_thickness_mm=float(patient["myo_thickness_mm"] * rng.uniform(0.93, 1.07)),
        thickness_apex_factor=float(rng.uniform(0.6, 0.85)),
        thickness_left_factor=float(rng.uniform(0.88, 1.12)),
        thickness_right_factor=float(rng.uniform(0.88, 1.12)),
        ef_percent=float(ef),
        # Long-axis shortening ~ EF/3.3 (about 19 % at EF 63, 6 % at EF 20): GLS of realistic size.
        long_shortening=float(np.clip(0.3 * ef / 100.0 * patient["shortening_base"], 0.03, 0.28)),
        tilt_deg=float(rng.uniform(-15.0, 15.0)),
        apex_top_mm=float(patient["apex_top_mm"]),
        lateral_offset_mm=float(rng.uniform(-10.0, 10.0)),
        la_depth_mm=float(rng.uniform(32.0, 50.0)),
        la_width_mm=float(2.0 * min(radius_l * base_l, radius_r * base_r) * rng.uniform(0.95, 1.25)),
        n_frames=int(rng.integers(10, 41)),
        time_gamma=float(rng.uniform(0.85, 1.2)),
        fov_depth_mm=float(patient["fov_depth_mm"]),
        fov_width_mm=float(patient["fov_depth_mm"] * patient["fov_aspect"]),
        row_mm=float(row_mm),
        # Lateral pixels coarser than axial ones, as in CAMUS (0.154 x 0.308 mm), within 0.2-0.35 mm.
        col_mm=float(max(1.15 * row_mm, 0.2) + patient["col_fraction"] * (0.35 - max(1.15 * row_mm, 0.2))),
        myo_area_ratio=float(patient["myo_area_ratio"]),
    )


# ---------------------------------------------------------------------------------------------------
# Exact continuous geometry (local frame: x lateral, y along the axis towards the base, apex at 0).


def _endocardium(phys: _Physiology, length: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Open endocardial curve and mitral segment of one frame, local frame, mm.

    Returns:
        open_xy (N, 2) from the left hinge through the apex to the right hinge; base_xy (M, 2) the
        interior points of the mitral segment from the right hinge back to the left one.
    """
    cap = phys.apex_cap_fraction * length
    phi = np.linspace(0.0, 0.5 * np.pi, _N_CAP)
    y_body = np.linspace(cap, length, _N_BODY + 1)[1:]
    sides = []
    for sign, radius, ratio in (
        (-1.0, phys.radius_left_mm, phys.base_ratio_left),
        (1.0, phys.radius_right_mm, phys.base_ratio_right),
    ):
        r = radius * scale
        rb = r * ratio
        # cos profile: zero slope where the body meets the cap (smooth), narrowing to rb at the hinge.
        x_body = rb + (r - rb) * np.cos(0.5 * np.pi * (y_body - cap) / (length - cap))
        x = np.concatenate([r * np.sin(phi), x_body]) * sign
        y = np.concatenate([cap * (1.0 - np.cos(phi)), y_body])
        sides.append(np.column_stack([x, y]))
    open_xy = np.concatenate([sides[0][::-1], sides[1][1:]])
    t = np.linspace(0.0, 1.0, _N_BASE + 2)[1:-1, None]
    base_xy = open_xy[-1] * (1.0 - t) + open_xy[0] * t
    # Low-order radial perturbation about the cavity centre: one smooth closed contour, hinges stay
    # the exact ends of the open curve.
    centre = np.array([0.0, 0.5 * length])
    pts = np.concatenate([open_xy, base_xy]) - centre
    theta = np.arctan2(pts[:, 1], pts[:, 0])
    coeffs = np.asarray(phys.fourier).reshape(-1, 2)
    factor = 1.0 + sum(
        c * np.cos(k * theta) + s * np.sin(k * theta) for k, (c, s) in zip(_FOURIER_ORDERS, coeffs)
    )
    pts = pts * factor[:, None] + centre
    return pts[: open_xy.shape[0]], pts[open_xy.shape[0] :]


def _outward_normals(curve: np.ndarray) -> np.ndarray:
    """Unit normals of an open curve (left hinge -> apex -> right hinge) pointing out of the cavity."""
    tangent = np.gradient(curve, axis=0)
    normal = np.column_stack([tangent[:, 1], -tangent[:, 0]])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    apex = int(np.argmin(curve[:, 1]))
    if normal[apex, 1] > 0:  # outward at the apex is towards y < 0 (above the apex)
        normal = -normal
    return normal


def _arc_param(curve: np.ndarray) -> np.ndarray:
    """Signed normalised arc length along the open curve: -1 left hinge, 0 apex, +1 right hinge."""
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    apex = int(np.argmin(curve[:, 1]))
    u = s - s[apex]
    return np.where(u < 0, u / max(s[apex], 1e-9), u / max(s[-1] - s[apex], 1e-9))


def _epicardium(phys: _Physiology, open_xy: np.ndarray, thickening: float) -> np.ndarray:
    """Outward offset of the endocardium by a wall thickness that varies along the wall (mm)."""
    u = _arc_param(open_xy)
    apex_profile = phys.thickness_apex_factor + (1.0 - phys.thickness_apex_factor) * (
        1.0 - np.exp(-((u / 0.3) ** 2))
    )
    right = 0.5 * (1.0 + np.tanh(u / 0.15))
    side = phys.thickness_left_factor * (1.0 - right) + phys.thickness_right_factor * right
    thickness = phys.myo_thickness_mm * (1.0 + thickening) * apex_profile * side
    return open_xy + _outward_normals(open_xy) * thickness[:, None]


_BULGE_GRID = np.linspace(0.0, 6.0, 601)
_PHI_GRID = np.linspace(0.0, 0.5 * np.pi, 721)
# Widest point of cos(phi) * (1 + beta * sin(phi)) for each beta: inverted to get the bulge that gives
# a requested LA width below a given mitral width.
_BULGE_WIDTH = (np.cos(_PHI_GRID)[None, :] * (1.0 + _BULGE_GRID[:, None] * np.sin(_PHI_GRID)[None, :])).max(axis=1)


def _atrium(open_xy: np.ndarray, base_xy: np.ndarray, depth: float, la_width: float) -> np.ndarray:
    """LA polygon below the mitral segment: right hinge -> bottom -> left hinge, then the segment.

    Its sides leave the hinges almost along the axis (keeping the LA off the basal ends of the
    myocardium) and bulge to ``la_width`` mm further down, whatever the mitral width at that frame.
    """
    h_left, h_right = open_xy[0], open_xy[-1]
    mid = 0.5 * (h_left + h_right)
    e = h_right - h_left
    width = float(np.linalg.norm(e))
    e = e / width
    d = np.array([-e[1], e[0]])
    apex = open_xy[int(np.argmin(open_xy[:, 1]))]
    if np.dot(d, mid - apex) < 0:
        d = -d
    bulge = float(np.interp(max(la_width / width, 1.0), _BULGE_WIDTH, _BULGE_GRID))
    phi = np.linspace(0.0, np.pi, _N_LA)
    lateral = 0.5 * width * np.cos(phi) * (1.0 + bulge * np.sin(phi))
    curve = mid + lateral[:, None] * e + (depth * np.sin(phi))[:, None] * d
    return np.concatenate([curve, base_xy[::-1]])


@dataclass(frozen=True)
class _FrameGeometry:
    """Exact polygons of one frame in the local frame (mm)."""

    open_xy: np.ndarray
    base_xy: np.ndarray
    epi_xy: np.ndarray
    la_xy: np.ndarray

    @property
    def lv_xy(self) -> np.ndarray:
        return np.concatenate([self.open_xy, self.base_xy])

    @property
    def outer_xy(self) -> np.ndarray:
        # Epicardium left -> right, then the mitral segment right -> left closes LV+MYO.
        return np.concatenate([self.epi_xy, self.open_xy[-1:], self.base_xy, self.open_xy[:1]])


def _frame(phys: _Physiology, p: float, radial_scale: float, thickening: float) -> _FrameGeometry:
    length = phys.lv_length_mm * (1.0 - phys.long_shortening * p)
    scale = 1.0 - (1.0 - radial_scale) * p
    open_xy, base_xy = _endocardium(phys, length, scale)
    epi_xy = _epicardium(phys, open_xy, thickening * p)
    # The LA floor stays put while the annulus rises towards the apex: the LA fills in systole.
    la_depth = phys.la_depth_mm + (phys.lv_length_mm - length)
    # The LA widens a little as it fills (x1.1 at ES).
    la_xy = _atrium(open_xy, base_xy, la_depth, phys.la_width_mm * (1.0 + 0.1 * p))
    return _FrameGeometry(open_xy, base_xy, epi_xy, la_xy)


def _lv_volume(geom: _FrameGeometry) -> float:
    return disk_volume_ml(geom.lv_xy, geom.open_xy[0], geom.open_xy[-1])[0]


def _myo_area(geom: _FrameGeometry) -> float:
    return polygon_area(geom.outer_xy) - polygon_area(geom.lv_xy)


def _solve_contraction(phys: _Physiology) -> tuple[float, float]:
    """ES radial scale giving exactly the requested EF, and the wall thickening keeping MYO area.

    The long-axis shortening is sampled; the cavity's radial scale at ES is then solved so that the
    analytic volumes give ``phys.ef_percent``; the wall thickens until the ES myocardial area is
    ``myo_area_ratio`` times the ED one (myocardium is nearly incompressible), which gives +30-60 %
    thickening for normal EF and less for poor EF.
    """
    ed = _frame(phys, 0.0, 1.0, 0.0)
    v_target = _lv_volume(ed) * (1.0 - phys.ef_percent / 100.0)
    scale = float(brentq(lambda r: _lv_volume(_frame(phys, 1.0, r, 0.0)) - v_target, 0.05, 2.0, xtol=1e-12))
    a_target = _myo_area(ed) * phys.myo_area_ratio
    thickening = float(brentq(lambda g: _myo_area(_frame(phys, 1.0, scale, g)) - a_target, -0.5, 3.0, xtol=1e-9))
    return scale, thickening


def _rotate(xy: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return xy @ rot.T


def _field_of_view(
    phys: _Physiology, outer_all: np.ndarray, image_shape: tuple[int, int] | None, spacing_mm: tuple[float, float] | None
) -> tuple[int, int, float, float, float]:
    """Image (h, w) pixels, spacing (row, col) mm and apex depth (mm) for the placed epicardium (N, 2) xy mm."""
    y_extent = float(outer_all[:, 1].max() - outer_all[:, 1].min())
    x_extent = float(outer_all[:, 0].max() - outer_all[:, 0].min())
    if image_shape is not None and spacing_mm is not None:
        row_mm, col_mm = (float(v) for v in spacing_mm)
        depth_mm, width_mm = image_shape[0] * row_mm, image_shape[1] * col_mm
        apex_top = min(phys.apex_top_mm, max(1.0, 0.5 * (depth_mm - y_extent)))
    else:
        # Field of view at least deep enough for LV+MYO plus some LA; the sector may cut the LA.
        depth_mm = max(phys.fov_depth_mm, phys.apex_top_mm + y_extent + 15.0)
        width_mm = max(phys.fov_width_mm, x_extent + 2.0 * abs(phys.lateral_offset_mm) + 20.0)
        apex_top = phys.apex_top_mm
        if spacing_mm is not None:
            row_mm, col_mm = (float(v) for v in spacing_mm)
            image_shape = (int(round(depth_mm / row_mm)), int(round(width_mm / col_mm)))
        elif image_shape is not None:
            row_mm, col_mm = depth_mm / image_shape[0], width_mm / image_shape[1]
        else:
            row_mm, col_mm = phys.row_mm, phys.col_mm
            image_shape = (int(round(depth_mm / row_mm)), int(round(width_mm / col_mm)))
    h, w = int(image_shape[0]), int(image_shape[1])
    if h < 16 or w < 16 or row_mm <= 0 or col_mm <= 0:
        raise ValueError(f"image_shape {image_shape} / spacing_mm {spacing_mm}: need at least 16x16 pixels "
                         "and positive spacing")
    return h, w, row_mm, col_mm, apex_top


def _placement_shift(
    phys: _Physiology, outer_all: np.ndarray, h: int, w: int, row_mm: float, col_mm: float, apex_top: float
) -> np.ndarray:
    """(2,) xy mm shift that puts the apex at ``apex_top`` and centres the heart laterally (with its offset
    when it fits)."""
    x_mid = 0.5 * float(outer_all[:, 0].max() + outer_all[:, 0].min())
    shift = np.array([0.5 * w * col_mm + phys.lateral_offset_mm - x_mid, apex_top - outer_all[:, 1].min()])
    lo = outer_all + shift
    if lo[:, 0].min() < 0 or lo[:, 0].max() > (w - 1) * col_mm or lo[:, 1].max() > (h - 1) * row_mm:
        shift[0] = 0.5 * w * col_mm - x_mid  # drop the lateral offset before giving up
        lo = outer_all + shift
        if lo[:, 0].min() < 0 or lo[:, 0].max() > (w - 1) * col_mm or lo[:, 1].max() > (h - 1) * row_mm:
            y_extent = float(outer_all[:, 1].max() - outer_all[:, 1].min())
            x_extent = float(outer_all[:, 0].max() - outer_all[:, 0].min())
            raise ValueError(
                f"image_shape {(h, w)} at spacing_mm {(row_mm, col_mm)} covers {h * row_mm:.0f} x "
                f"{w * col_mm:.0f} mm but the heart needs about {apex_top + y_extent:.0f} x {x_extent:.0f} mm; "
                "give a larger image_shape, a larger spacing_mm, or only one of the two"
            )
    return shift


def _rasterise(
    frames: list[Any], to_px: Any, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, dict[str, list[Any]]]:
    """Labels (T, H, W) uint8, LV volumes (T,) mL and the exact per-frame truths of the frame geometries."""
    labels = np.zeros((len(frames), *shape), dtype=np.uint8)
    volumes = np.empty(len(frames))
    truth: dict[str, list[Any]] = {"lengths": [], "endo": [], "areas": [], "myo_areas": [], "widths": [], "landmarks": []}
    for t, geom in enumerate(frames):
        la = fill_polygon(*to_px(geom.la_xy), shape)
        outer = fill_polygon(*to_px(geom.outer_xy), shape)
        lv = fill_polygon(*to_px(geom.lv_xy), shape)
        frame = labels[t]
        frame[la] = 3
        frame[outer] = 2
        frame[lv] = 1
        volumes[t], axis_len = disk_volume_ml(geom.lv_xy, geom.open_xy[0], geom.open_xy[-1])
        truth["lengths"].append(axis_len)
        truth["endo"].append(polyline_length(geom.open_xy))
        truth["areas"].append(polygon_area(geom.lv_xy))
        truth["myo_areas"].append(polygon_area(geom.outer_xy) - truth["areas"][-1])
        truth["widths"].append(float(np.linalg.norm(geom.open_xy[-1] - geom.open_xy[0])))
        rr, cc = to_px(np.stack([geom.open_xy[0], geom.open_xy[-1], geom.open_xy[np.argmin(geom.open_xy[:, 1])]]))
        truth["landmarks"].append({"hinge_left_px": [float(rr[0]), float(cc[0])],
                                   "hinge_right_px": [float(rr[1]), float(cc[1])],
                                   "apex_px": [float(rr[2]), float(cc[2])]})
    return labels, volumes, truth


def _build(phys: _Physiology, image_shape: tuple[int, int] | None, spacing_mm: tuple[float, float] | None,
           *, seed_repr: Any = None, profile: np.ndarray | None = None) -> PhantomSequence:
    radial_scale, thickening = _solve_contraction(phys)
    if profile is None:
        profile = smooth_time_profile(phys.n_frames, phys.time_gamma)
    frames = [_frame(phys, float(p), radial_scale, thickening) for p in profile]

    # Place the heart: tilt about the apex, highest epicardial point at apex_top_mm, centred laterally.
    outer_all = np.concatenate([_rotate(f.outer_xy, phys.tilt_deg) for f in frames])
    h, w, row_mm, col_mm, apex_top = _field_of_view(phys, outer_all, image_shape, spacing_mm)
    shift = _placement_shift(phys, outer_all, h, w, row_mm, col_mm, apex_top)

    def to_px(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        placed = _rotate(xy, phys.tilt_deg) + shift
        return placed[:, 1] / row_mm, placed[:, 0] / col_mm

    labels, volumes, truth = _rasterise(frames, to_px, (h, w))
    endo = truth["endo"]
    ef = 100.0 * (volumes[0] - volumes[-1]) / volumes[0]
    gls = 100.0 * (endo[-1] - endo[0]) / endo[0]
    params: dict[str, Any] = {
        "generator": "parametric",
        "seed": seed_repr,
        "physiology": asdict(phys),
        "radial_scale_es": radial_scale,
        "wall_thickening_es": thickening,
        "time_profile": profile.tolist(),
        "image_shape": [h, w],
        "spacing_mm": [row_mm, col_mm],
        # Exact per-frame truths for known-answer tests (mm, mm²).
        "lv_area_mm2": truth["areas"],
        "myo_area_mm2": truth["myo_areas"],
        "lv_length_mm": truth["lengths"],
        "lv_base_width_mm": truth["widths"],
        "endo_length_mm": endo,
        "landmarks": truth["landmarks"],
    }
    return PhantomSequence(
        labels=labels,
        spacing_mm=(row_mm, col_mm),
        view=phys.view,
        ed_frame=0,
        es_frame=phys.n_frames - 1,
        lv_volume_ml=volumes,
        ef_percent=float(ef),
        gls_percent=float(gls),
        params=params,
    )


def _apply_overrides(phys: _Physiology, n_frames: int | None, ef_percent: float | None) -> _Physiology:
    changes: dict[str, Any] = {}
    if n_frames is not None:
        if int(n_frames) < 2:
            raise ValueError(f"n_frames={n_frames}: a half-sequence needs at least 2 frames")
        changes["n_frames"] = int(n_frames)
    if ef_percent is not None:
        if not 1.0 <= float(ef_percent) <= 90.0:
            raise ValueError(f"ef_percent={ef_percent}: must lie in [1, 90] %")
        ef = float(ef_percent)
        # Long-axis shortening scales with EF, as sampled; radial contraction is then solved for.
        changes["ef_percent"] = ef
        changes["long_shortening"] = float(np.clip(phys.long_shortening * ef / phys.ef_percent, 0.02, 0.28))
    return replace(phys, **changes) if changes else phys


def generate_sequence(
    seed: int | np.random.Generator,
    *,
    view: str = "4CH",
    n_frames: int | None = None,
    image_shape: tuple[int, int] | None = None,
    spacing_mm: tuple[float, float] | None = None,
    ef_percent: float | None = None,
) -> PhantomSequence:
    """One synthetic CAMUS-like apical half-sequence (ED -> ES) with exact ground truth.

    All random draws happen in a fixed order before the overrides are applied, so the same seed gives
    the same heart whatever ``n_frames`` / ``ef_percent`` / geometry are requested.

    Args:
        seed: integer seed or a numpy Generator (deterministic given the seed).
        view: "2CH" or "4CH".
        n_frames: T (default: random 10..40).
        image_shape: (H, W) in pixels (default: CAMUS-like from the field of view and spacing).
        spacing_mm: (row_mm, col_mm) (default: random anisotropic, 0.15-0.35 mm). Given alone, the
            image covers the sampled field of view; given with ``image_shape``, the heart must fit.
        ef_percent: analytic EF in % (default: random 20..75).

    Returns:
        PhantomSequence with labels (T, H, W) uint8 and analytic volumes (mL), EF and GLS (%);
        ``params`` holds the physiology and exact per-frame areas, lengths and landmarks.

    Raises:
        ValueError: unknown view, n_frames < 2, EF outside [1, 90] %, or an image too small for the heart.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    seed_repr = None if isinstance(seed, np.random.Generator) else int(seed)
    patient = _sample_patient(rng)
    phys = _apply_overrides(_sample_view(patient, view, rng), n_frames, ef_percent)
    return _build(phys, image_shape, spacing_mm, seed_repr=seed_repr)


def _generate_patient_views(rng: np.random.Generator) -> dict[str, PhantomSequence]:
    """Both views of one synthetic patient: shared size, EF, wall and imaging; per-view shape."""
    patient = _sample_patient(rng)
    return {view: _build(_sample_view(patient, view, rng), None, None) for view in VIEWS}


def _truth_rates(phys: _Physiology, radial_scale: float, thickening: float, prof: CycleProfile,
                 frame_time_ms: float) -> list[dict[str, float]]:
    """Exact per-beat peak ejection/filling rates (mL/s) and time to peak filling (ms from ES).

    ``dV/dt = V'(p)·dp/dt``: the volume as a function of the contraction ``p`` is a cubic spline
    through 41 exact disk volumes (smooth in p), ``dp/dt`` is the profile's analytic derivative; the
    extrema are taken on a grid 40 times finer than the frames.
    """
    from scipy.interpolate import CubicSpline

    grid = np.linspace(0.0, 1.0, 41)
    volume_of_p = CubicSpline(grid, [_lv_volume(_frame(phys, float(p), radial_scale, thickening)) for p in grid])
    n = len(prof.values)
    fine = np.linspace(0.0, n - 1, 40 * (n - 1) + 1)
    p, dp = prof.evaluate(fine)
    rate = volume_of_p(p, 1) * dp * 1000.0 / frame_time_ms  # mL/s
    out = []
    for k, (ed, es) in enumerate(zip(prof.ed_frames, prof.es_frames)):
        end = prof.ed_frames[k + 1] if k + 1 < len(prof.ed_frames) else n - 1
        eject = (fine >= ed) & (fine <= es)
        fill = (fine >= es) & (fine <= end)
        peak_fill = int(np.argmax(np.where(fill, rate, -np.inf)))
        out.append({
            "peak_ejection_rate_ml_s": float(-rate[eject].min()),
            "peak_filling_rate_ml_s": float(rate[fill].max()) if end > es else float("nan"),
            "time_to_peak_filling_ms": float((fine[peak_fill] - es) * frame_time_ms) if end > es else float("nan"),
        })
    return out


def generate_cycle_sequence(
    seed: int | np.random.Generator,
    *,
    view: str = "4CH",
    n_beats: int = 1,
    frames_per_beat: int | None = None,
    heart_period_ms: float | None = None,
    depth_variation: float = 0.1,
    image_shape: tuple[int, int] | None = None,
    spacing_mm: tuple[float, float] | None = None,
    ef_percent: float | None = None,
) -> PhantomSequence:
    """A full cardiac cycle (ED → ES → ED) or several beats, with exact volumes, ED/ES and rates.

    The heart is the one :func:`generate_sequence` draws from the same seed; its contraction follows
    a whole-cycle profile (``cycle_profile``: ejection over about a third of the cycle, isovolumic
    relaxation, rapid filling, diastasis, atrial kick). Beats after the first eject a little less
    (depth down to ``1 − depth_variation``), so per-beat EFs differ.

    Args:
        seed: integer seed or a numpy Generator.
        view: "2CH" or "4CH".
        n_beats: number of beats (the sequence ends on the ED that closes the last one).
        frames_per_beat: frames per cycle (default: random 24..45).
        heart_period_ms: cycle length (default: random 700..1100 ms); frame time = period / frames.
        depth_variation: largest relative drop of a later beat's contraction.
        image_shape, spacing_mm, ef_percent: as in :func:`generate_sequence` (EF of the deepest beat).

    Returns:
        PhantomSequence with ``beat_ed_frames``, ``beat_es_frames``, ``frame_time_ms``; ``ef_percent``
        and ``gls_percent`` of the first beat; ``params["beats"]`` holds each beat's analytic EDV, ESV,
        EF, GLS, peak ejection and filling rates (mL/s), time to peak filling (ms) and ES plateau end.

    Raises:
        ValueError: as :func:`generate_sequence`, or n_beats < 1.
    """
    if int(n_beats) < 1:
        raise ValueError(f"n_beats={n_beats}: need at least one beat")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    seed_repr = None if isinstance(seed, np.random.Generator) else int(seed)
    patient = _sample_patient(rng)
    phys = _apply_overrides(_sample_view(patient, view, rng), None, ef_percent)
    fpb = int(frames_per_beat) if frames_per_beat is not None else int(rng.integers(24, 46))
    period = float(heart_period_ms) if heart_period_ms is not None else float(rng.uniform(700.0, 1100.0))
    depths = [1.0] + [float(1.0 - rng.uniform(0.0, depth_variation)) for _ in range(int(n_beats) - 1)]
    prof = cycle_profile([sample_beat_timing(rng, d) for d in depths], fpb)
    phys = replace(phys, n_frames=len(prof.values))
    seq = _build(phys, image_shape, spacing_mm, seed_repr=seed_repr, profile=prof.values)
    frame_time = period / fpb
    params = dict(seq.params)
    radial_scale, thickening = params["radial_scale_es"], params["wall_thickening_es"]
    volumes = seq.lv_volume_ml
    endo = params["endo_length_mm"]
    beats = []
    for k, (ed, es, rates) in enumerate(zip(prof.ed_frames, prof.es_frames,
                                            _truth_rates(phys, radial_scale, thickening, prof, frame_time))):
        beats.append({"ed_frame": ed, "es_frame": es, "es_plateau_end_frame": prof.es_plateau_frames[k],
                      "edv_ml": float(volumes[ed]), "esv_ml": float(volumes[es]),
                      "ef_percent": float(100.0 * (volumes[ed] - volumes[es]) / volumes[ed]),
                      "gls_percent": float(100.0 * (endo[es] - endo[ed]) / endo[ed]), **rates})
    params.update({"generator": "parametric-cycle", "cycle_profile": prof.to_json(), "frame_time_ms": frame_time,
                   "heart_period_ms": period, "beats": beats})
    return replace(seq, ed_frame=prof.ed_frames[0], es_frame=prof.es_frames[0], ef_percent=beats[0]["ef_percent"],
                   gls_percent=beats[0]["gls_percent"], params=params, beat_ed_frames=prof.ed_frames,
                   beat_es_frames=prof.es_frames, frame_time_ms=frame_time)
