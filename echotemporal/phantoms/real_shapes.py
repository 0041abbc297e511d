"""Real expert CAMUS ED/ES masks and the half-sequences interpolated between them.

Two sources live in the shared data folder (see their PROVENANCE.md):

- ``camus-gavkujo-224-npy``: 1980 repaired ED/ES masks of 495 patients on a 224x224 grid, apex up,
  aspect-stretched along depth by the third party's resize (W_mm/D_mm ~ 1.2-1.4, unknown per mask).
  `real_shape_spacing_mm` gives an anisotropic spacing that undoes a typical stretch.
- ``camus-travislatchman-mhd``: the 20 full-resolution CAMUS-2019 masks of patients 0001-0005 with
  their header spacing and Info cfg (reference LVedv/LVesv/LVef).

CAMUS has no expert intermediate frames, so a real-shape sequence is built by signed-distance
interpolation between a patient's ED and ES masks on a smooth time profile. The data is CAMUS
(CC BY-NC-SA 4.0, research use): cite Leclerc et al., IEEE TMI 38(9):2198-2210, 2019.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from echotemporal.core.distances import label_distances
from echotemporal.core.errors import InputFileError
from echotemporal.core.labels import validate_labels
from echotemporal.phantoms.cycle_profile import CycleProfile
from echotemporal.phantoms.raster import enforce_single_components, smooth_time_profile
from echotemporal.phantoms.records import PhantomSequence

__all__ = [
    "REAL_SHAPES_ENV",
    "SPLITS",
    "RealShapes",
    "FullResolutionCase",
    "default_real_shapes_dir",
    "load_real_shapes",
    "real_shape_spacing_mm",
    "real_shape_sequence",
    "load_full_resolution_camus",
    "NATIVE_LIKE_GRID",
    "REAL_SHAPE_JITTER_PX",
]

#: Environment variable that overrides the location of the shared real-shape data.
REAL_SHAPES_ENV = "ECHOTEMPORAL_REAL_SHAPES"
SPLITS: tuple[str, ...] = ("train", "val", "test")
_NPZ = Path("camus-gavkujo-224-npy") / "derived" / "labels_repaired_apex_up_uint8.npz"
_FULL_RES = Path("camus-travislatchman-mhd") / "MIA23_Project1_data"
_GRID = 224
#: Grid of real-shape sequences whose pixels are native-like (~0.3-0.4 mm, as CAMUS's own): the
#: thresholds are calibrated with one pixel of annotation jitter there (DESIGN §4.1).
NATIVE_LIKE_GRID = 448
#: Expert-annotation jitter of real-shape sequences on the 224 grid, in 224-grid pixels: one native
#: pixel. A whole 224 pixel (0.6-0.8 mm) is twice what the thresholds call clean, and flags about one
#: frame in seven of clean real-shape sequences (scripts/benchmark_smoothing.py, set ``clean``).
REAL_SHAPE_JITTER_PX = _GRID / NATIVE_LIKE_GRID


def default_real_shapes_dir() -> Path:
    """Folder holding the shared real-shape data sets.

    Returns:
        ``$ECHOTEMPORAL_REAL_SHAPES`` if set, else ``<repo>/../shared/data/real-shapes``.
    """
    env = os.environ.get(REAL_SHAPES_ENV)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "real-shapes"


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields
class RealShapes:
    """Real CAMUS ED/ES masks on the 224x224 grid.

    Attributes:
        labels: (N, 224, 224) uint8, apex up (row = depth), labels 0..3.
        names: (N,) str, ``patientNNNN_<2CH|4CH>_<ED|ES>``.
        patients: (N,) str, ``patientNNNN``.
        views: (N,) str, "2CH" or "4CH".
        phases: (N,) str, "ED" or "ES".
        splits: (N,) str, upstream split "train", "val" or "test".
    """

    labels: np.ndarray
    names: np.ndarray
    patients: np.ndarray
    views: np.ndarray
    phases: np.ndarray
    splits: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def pair(self, patient: str, view: str) -> tuple[np.ndarray, np.ndarray]:
        """ED and ES masks (224, 224) of one patient and view.

        Raises:
            KeyError: the patient/view pair is not in this set.
        """
        sel = (self.patients == patient) & (self.views == view)
        ed = np.flatnonzero(sel & (self.phases == "ED"))
        es = np.flatnonzero(sel & (self.phases == "ES"))
        if ed.size != 1 or es.size != 1:
            raise KeyError(f"{patient} {view}: no ED/ES pair in this RealShapes set")
        return self.labels[ed[0]], self.labels[es[0]]

    def pairs(self) -> list[tuple[str, str]]:
        """Sorted (patient, view) pairs that have both ED and ES."""
        keys = {(p, v) for p, v in zip(self.patients.tolist(), self.views.tolist())}
        return sorted(k for k in keys if np.sum((self.patients == k[0]) & (self.views == k[1])) == 2)


def load_real_shapes(split: str | None = None, root: str | os.PathLike[str] | None = None) -> RealShapes:
    """Load the 1980 repaired CAMUS ED/ES masks (224x224, apex up).

    Train on the ``train`` split only; ``val``/``test`` patients are for measurement (DESIGN §7).

    Args:
        split: "train", "val", "test" or None for all.
        root: the real-shapes folder (default `default_real_shapes_dir`).

    Returns:
        RealShapes with (N, 224, 224) uint8 labels and per-mask names, patients, views, phases, splits.

    Raises:
        ValueError: unknown split.
        InputFileError: the npz file is missing or unreadable.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS} (or None for all masks)")
    path = Path(root).expanduser() / _NPZ if root is not None else default_real_shapes_dir() / _NPZ
    if not path.is_file():
        raise InputFileError(
            f"{path}: real-shape masks not found; set {REAL_SHAPES_ENV} to the folder holding "
            f"{_NPZ.parts[0]}/ or pass root="
        )
    try:
        with np.load(path) as data:
            labels, names, splits = data["labels"], data["names"].astype(str), data["upstream_split"].astype(str)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read the real-shape npz ({exc}); expected arrays labels, names, "
                             "upstream_split - re-copy the file from the shared data") from exc
    labels = validate_labels(labels, str(path))
    parts = np.char.split(names, "_")
    patients = np.array([p[0] for p in parts])
    views = np.array([p[1] for p in parts])
    phases = np.array([p[2] for p in parts])
    keep = np.ones(names.shape, dtype=bool) if split is None else splits == split
    return RealShapes(labels[keep], names[keep], patients[keep], views[keep], phases[keep], splits[keep])


def real_shape_spacing_mm(aspect: float = 1.3, depth_mm: float = 135.0, grid: int = _GRID) -> tuple[float, float]:
    """Anisotropic pixel size that undoes the depth stretch of the 224x224 CAMUS masks.

    Upstream squashed each CAMUS frame (depth D_mm, width W_mm = aspect * D_mm) to grid x grid, so a
    224 row spans D/224 mm and a column W/224 mm; shapes drawn with this spacing get their true
    proportions back (up to the per-patient aspect, unknown: 1.2-1.4 in CAMUS).

    Args:
        aspect: W_mm / D_mm of the original frame.
        depth_mm: D_mm, the imaging depth (CAMUS: typically 120-150 mm).
        grid: grid size (224).

    Returns:
        (row_mm, col_mm), row_mm < col_mm for aspect > 1.
    """
    if aspect <= 0 or depth_mm <= 0 or grid <= 0:
        raise ValueError(f"aspect={aspect}, depth_mm={depth_mm}, grid={grid}: all must be positive")
    return (depth_mm / grid, depth_mm * aspect / grid)


def _resample_distances(dist: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(4, H, W) distances -> (4, *shape) by linear interpolation over the same field of view."""
    zoom = (1.0, shape[0] / dist.shape[1], shape[1] / dist.shape[2])
    # grid_mode=True maps pixel footprints (not centres) onto each other: the field of view is kept.
    return ndimage.zoom(dist, zoom, order=1, mode="nearest", grid_mode=True)


def _end_distances(
    ed: np.ndarray, es: np.ndarray, spacing_mm: tuple[float, float], output_shape: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[float, float]]:
    """Signed distances (4, H2, W2) mm of the ED and ES labels on the output grid, its shape and spacing."""
    row_mm, col_mm = spacing_mm
    d_ed = label_distances(ed, (row_mm, col_mm))
    d_es = label_distances(es, (row_mm, col_mm))
    if output_shape is None:
        return d_ed, d_es, ed.shape, (row_mm, col_mm)
    out_shape = (int(output_shape[0]), int(output_shape[1]))
    if min(out_shape) < 2:
        raise ValueError(f"output_shape={output_shape}: need at least 2x2 pixels")
    out_spacing = (row_mm * ed.shape[0] / out_shape[0], col_mm * ed.shape[1] / out_shape[1])
    return _resample_distances(d_ed, out_shape), _resample_distances(d_es, out_shape), out_shape, out_spacing


def _interpolate_labels(d_ed: np.ndarray, d_es: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Labels (T, H, W) uint8: per frame, the arg-min of the distances (4, H, W) blended by ``profile`` (T,)."""
    n_frames = len(profile)
    out_shape = d_ed.shape[1:]
    lab_ed = np.argmin(d_ed, axis=0).astype(np.uint8)
    lab_es = np.argmin(d_es, axis=0).astype(np.uint8)
    # A pixel with the same arg-min at both ends keeps it all along (a convex combination of two sets
    # of strict inequalities): only the pixels that change need the per-frame arg-min.
    moving = lab_ed != lab_es
    labels = np.repeat(lab_ed[None], n_frames, axis=0)
    labels[profile == 1.0] = lab_es  # the ES mask wherever the profile reaches it (every beat's ES)
    if moving.any():
        rows, cols = np.nonzero(moving)
        a, b = d_ed[:, rows, cols], d_es[:, rows, cols]
        heart = np.nonzero((lab_ed > 0) | (lab_es > 0))
        r0, r1 = max(int(heart[0].min()) - 2, 0), min(int(heart[0].max()) + 3, out_shape[0])
        c0, c1 = max(int(heart[1].min()) - 2, 0), min(int(heart[1].max()) + 3, out_shape[1])
        for t in np.flatnonzero((profile > 0.0) & (profile < 1.0)):
            p = profile[t]
            labels[t, rows, cols] = np.argmin((1.0 - p) * a + p * b, axis=0)
            labels[t, r0:r1, c0:c1] = enforce_single_components(labels[t, r0:r1, c0:c1])
    return labels


def real_shape_sequence(
    ed_mask: np.ndarray,
    es_mask: np.ndarray,
    n_frames: int,
    *,
    spacing_mm: tuple[float, float],
    rng: np.random.Generator | None = None,
    output_shape: tuple[int, int] | None = None,
    view: str = "",
    profile: CycleProfile | None = None,
) -> PhantomSequence:
    """Half-sequence ED -> ES (or whole cycles) interpolated between two real masks by signed distances.

    Each label's signed distance (mm) is interpolated linearly on a smooth monotone time profile and
    every pixel takes the label of smallest distance: borders move continuously, the partition never
    opens gaps (e.g. at the mitral plane), and a pixel with the same label at ED and ES keeps it. A
    safety pass keeps one component per label. With ``output_shape`` the distances are resampled
    linearly to the finer grid first, so edges stay smooth instead of blocky.

    Args:
        ed_mask: (H, W) uint8 labels at ED.
        es_mask: (H, W) uint8 labels at ES.
        n_frames: T >= 2.
        spacing_mm: (row_mm, col_mm) of the input grid (see `real_shape_spacing_mm` for the 224 set).
        rng: optional generator; when given, the time profile gets a random warp (early/late ejection).
        output_shape: optional (H2, W2) output grid covering the same field of view.
        view: view name stored in the result ("2CH"/"4CH"), optional.
        profile: optional whole-cycle contraction profile (``phantoms.cycle_profile``; 0 = ED mask,
            1 = ES mask): the sequence then has its ``len(profile.values)`` frames (``n_frames`` is
            ignored) and its beats' ED/ES frames (``beat_ed_frames``/``beat_es_frames``).

    Returns:
        PhantomSequence with labels (T, H2, W2) uint8, frame 0 = ED, frame T-1 = ES, spacing_mm of the
        output grid; volumes, EF and GLS are NaN (no continuous truth).

    Raises:
        ValueError: shapes differ, n_frames < 2, or bad output_shape.
        InvalidLabelsError: masks are not CAMUS label maps.
    """
    ed = validate_labels(np.asarray(ed_mask), "ed_mask")
    es = validate_labels(np.asarray(es_mask), "es_mask")
    if ed.ndim != 2 or ed.shape != es.shape:
        raise ValueError(f"ed_mask {ed.shape} and es_mask {es.shape} must be 2-D masks of the same shape")
    cycle = profile
    if cycle is not None:
        n_frames = len(cycle.values)
    if int(n_frames) < 2:
        raise ValueError(f"n_frames={n_frames}: a half-sequence needs at least 2 frames")
    n_frames = int(n_frames)
    row_mm, col_mm = (float(v) for v in spacing_mm)
    gamma = 1.0 if rng is None else float(rng.uniform(0.85, 1.2))
    profile = smooth_time_profile(n_frames, gamma) if cycle is None else np.clip(cycle.values, 0.0, 1.0)

    d_ed, d_es, out_shape, out_spacing = _end_distances(ed, es, (row_mm, col_mm), output_shape)
    labels = _interpolate_labels(d_ed, d_es, profile)
    nan = np.full(n_frames, np.nan)
    params: dict[str, Any] = {
        "generator": "real_shapes",
        "time_profile": profile.tolist(),
        "time_gamma": gamma,
        "input_shape": list(ed.shape),
        "input_spacing_mm": [row_mm, col_mm],
        "image_shape": list(out_shape),
        "spacing_mm": list(out_spacing),
    }
    if cycle is not None:
        params["cycle_profile"] = cycle.to_json()
    return PhantomSequence(
        labels=labels,
        spacing_mm=out_spacing,
        view=view,
        ed_frame=0 if cycle is None else cycle.ed_frames[0],
        es_frame=n_frames - 1 if cycle is None else cycle.es_frames[0],
        lv_volume_ml=nan,
        ef_percent=float("nan"),
        gls_percent=float("nan"),
        params=params,
        beat_ed_frames=() if cycle is None else cycle.ed_frames,
        beat_es_frames=() if cycle is None else cycle.es_frames,
    )


@dataclass(frozen=True, eq=False)
class FullResolutionCase:
    """One patient/view of the full-resolution CAMUS-2019 reference masks.

    Attributes:
        patient: ``patientNNNN``.
        view: "2CH" or "4CH".
        ed: (H, W) uint8 ED labels, apex up.
        es: (H, W) uint8 ES labels.
        spacing_mm: (row_mm, col_mm) from the header (CAMUS: 0.154 x 0.308).
        info: the Info cfg as parsed by `echotemporal.io.read_info_cfg` (ED/ES 0-based).
        lv_edv_ml: reference LVedv (mL) from the cfg, NaN if absent.
        lv_esv_ml: reference LVesv (mL), NaN if absent.
        lv_ef_percent: reference LVef (%), NaN if absent.
    """

    patient: str
    view: str
    ed: np.ndarray
    es: np.ndarray
    spacing_mm: tuple[float, float]
    info: Any
    lv_edv_ml: float
    lv_esv_ml: float
    lv_ef_percent: float


def _cfg_float(info: Any, attr: str, key: str) -> float:
    value = getattr(info, attr, None)
    if value is None:
        value = info.extra.get(key) if getattr(info, "extra", None) else None
    try:
        return float(value) if value is not None else float("nan")
    except ValueError:
        return float("nan")


def load_full_resolution_camus(root: str | os.PathLike[str] | None = None) -> list[FullResolutionCase]:
    """The 20 full-resolution CAMUS-2019 ED/ES masks (5 patients x 2 views) with spacing and Info cfg.

    Args:
        root: the real-shapes folder (default `default_real_shapes_dir`).

    Returns:
        Cases sorted by patient then view.

    Raises:
        InputFileError: the folder or one of its files is missing or unreadable.
    """
    from echotemporal.io import read_info_cfg, read_sequence  # SimpleITK stays out of import time

    base = (Path(root).expanduser() if root is not None else default_real_shapes_dir()) / _FULL_RES
    if not base.is_dir():
        raise InputFileError(f"{base}: full-resolution CAMUS masks not found; set {REAL_SHAPES_ENV} to the "
                             f"folder holding {_FULL_RES.parts[0]}/ or pass root=")
    cases = []
    for pdir in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("patient")):
        for view in ("2CH", "4CH"):
            ed_path = pdir / f"{pdir.name}_{view}_ED_gt.mhd"
            if not ed_path.is_file():
                continue
            ed = read_sequence(ed_path)
            es = read_sequence(pdir / f"{pdir.name}_{view}_ES_gt.mhd")
            info = read_info_cfg(pdir / f"Info_{view}.cfg")
            cases.append(FullResolutionCase(
                patient=pdir.name,
                view=view,
                ed=ed.labels[0],
                es=es.labels[0],
                spacing_mm=ed.spacing_mm,
                info=info,
                lv_edv_ml=_cfg_float(info, "edv_ml", "LVedv"),
                lv_esv_ml=_cfg_float(info, "esv_ml", "LVesv"),
                lv_ef_percent=_cfg_float(info, "ef_percent", "LVef"),
            ))
    if not cases:
        raise InputFileError(f"{base}: no patientNNNN/patientNNNN_<view>_ED_gt.mhd files found")
    return cases
