"""Realistic annotation jitter (clean) and recorded corruptions (DESIGN §7) of label sequences.

Annotation jitter reproduces the frame-to-frame noise of expert contours: each label's signed distance
gets its own smooth random field and every pixel takes the label of smallest perturbed distance, so
each border moves by about `amplitude_px` independently (endocardium and epicardium are drawn
separately by annotators) while the partition stays gap-free. Corruptions are the glitches a segmenter
produces; each returns the frames it changed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from echotemporal.core.boxes import mask_box
from echotemporal.core.distances import label_distances, signed_distance
from echotemporal.core.labels import validate_labels
from echotemporal.phantoms.raster import enforce_single_components
from echotemporal.phantoms.records import CORRUPTION_KINDS, TEMPORAL_CORRUPTION_KINDS, Corruption

__all__ = ["annotation_jitter", "corrupt_sequence", "smooth_random_field"]

_LABEL_NAMES = {1: "LV", 2: "MYO", 3: "LA"}
#: Correlation length of expert-contour noise: annotators place spline control points every few mm.
_JITTER_CORRELATION_MM = 8.0
_NOISE_CORRELATION_MM = 4.0


def _basis(positions: np.ndarray, n: int, correlation: float) -> np.ndarray:
    """(len(positions), m) Gaussian bumps on a lattice one correlation length apart over [0, n)."""
    step = max(correlation, 1.0)
    nodes = np.arange(-step, n + step, step)
    return np.exp(-0.5 * ((positions[:, None] - nodes[None, :]) / (0.6 * step)) ** 2)


def smooth_random_field(shape: tuple[int, int], correlation_px: tuple[float, float],
                        rng: np.random.Generator, n_fields: int | None = None,
                        points: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Smooth zero-mean Gaussian random field(s) with unit variance at every pixel.

    White noise on a coarse lattice (one node per correlation length) blended by separable Gaussian
    bumps and normalised pointwise by its exact standard deviation: smooth at the scale of
    ``correlation_px``. The blend is evaluated on a pixel grid a quarter of the correlation length
    apart and interpolated bilinearly (the field hardly varies in between), which keeps it cheap.

    Args:
        shape: (H, W) of the pixel grid.
        correlation_px: (rows, cols) correlation length in pixels.
        rng: random generator (the same draws whether or not ``points`` is given).
        n_fields: if given, that many independent fields are returned stacked.
        points: optional (rows, cols) integer arrays; the fields are evaluated only there.

    Returns:
        (H, W) float64 (or (n_fields, H, W)); with ``points``, (P,) (or (n_fields, P)).
    """
    sub = [max(1, int(c // 4)) for c in correlation_px]
    pos_r = np.arange(0, shape[0] + sub[0], sub[0], dtype=float)
    pos_c = np.arange(0, shape[1] + sub[1], sub[1], dtype=float)
    a_r = _basis(pos_r, shape[0], correlation_px[0])
    a_c = _basis(pos_c, shape[1], correlation_px[1])
    k = 1 if n_fields is None else int(n_fields)
    coarse = rng.standard_normal((k, a_r.shape[1], a_c.shape[1]))
    # Plain einsum (no BLAS): these products are small, and multithreaded BLAS on a busy machine costs
    # more in thread wake-ups than the arithmetic.
    grid = np.einsum("ij,kjm->kim", a_r, np.einsum("kjl,ml->kjm", coarse, a_c))
    grid /= np.sqrt(np.outer((a_r**2).sum(axis=1), (a_c**2).sum(axis=1)))
    if points is None:
        rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        rows, cols = rows.ravel(), cols.ravel()
    else:
        rows, cols = np.asarray(points[0]), np.asarray(points[1])
    coords = np.stack([rows / sub[0], cols / sub[1]])
    fields = np.stack([ndimage.map_coordinates(g, coords, order=1, mode="nearest") for g in grid])
    if points is None:
        fields = fields.reshape(k, *shape)
    return fields[0] if n_fields is None else fields


def _perturb_frame(frame: np.ndarray, spacing_mm: tuple[float, float], rng: np.random.Generator,
                   amplitude_px: float, correlation_mm: float, clean: bool) -> np.ndarray:
    margin = int(math.ceil(4 * amplitude_px)) + 3
    box = mask_box(frame, margin)
    if box is None or amplitude_px <= 0:
        return frame.copy()
    crop = frame[box]
    # Each border moves by (n_a - n_b)/2; independent fields of std sqrt(2)*a give it an RMS of a.
    sigma = math.sqrt(2.0) * amplitude_px
    # Pixel units: "about one native pixel" of border motion. With |noise| < 6 sigma, only pixels
    # within 6 sigma of a border can change, and distances beyond 12 sigma never win the arg-min.
    dist = label_distances(crop, cap=12.0 * sigma + 2.0)
    own = np.take_along_axis(dist, crop[None].astype(np.intp), axis=0)[0]
    rows, cols = np.nonzero(own > -6.0 * sigma - 1.0)
    corr = (correlation_mm / spacing_mm[0], correlation_mm / spacing_mm[1])
    noise = smooth_random_field(crop.shape, corr, rng, n_fields=dist.shape[0], points=(rows, cols))
    new = crop.copy()
    new[rows, cols] = np.argmin(dist[:, rows, cols] + sigma * noise, axis=0)
    if clean:
        new = enforce_single_components(new)
    out = frame.copy()
    out[box] = new
    return out


def annotation_jitter(labels: np.ndarray, spacing_mm: tuple[float, float], rng: np.random.Generator,
                      amplitude_px: float = 1.0) -> np.ndarray:
    """Frame-to-frame expert-annotation noise: smooth random border motion of ~`amplitude_px` pixels.

    Every frame gets independent noise (annotators draw each frame anew); labels stay anatomically
    valid (one component per label, no holes, no gaps). Sequences jittered this way are "clean": they
    calibrate the temporal thresholds and must not be flagged (DESIGN §4.1).

    Args:
        labels: (T, H, W) or (H, W) uint8 label map.
        spacing_mm: (row_mm, col_mm); sets the noise correlation length (8 mm along the contour).
        rng: random generator.
        amplitude_px: RMS border displacement in native pixels.

    Returns:
        Jittered labels, same shape and dtype.
    """
    arr = validate_labels(np.asarray(labels), "labels")
    seq = arr[None] if arr.ndim == 2 else arr
    out = np.stack([_perturb_frame(f, spacing_mm, rng, amplitude_px, _JITTER_CORRELATION_MM, True) for f in seq])
    return out[0] if arr.ndim == 2 else out


# ---------------------------------------------------------------------------------------------------
# Single-frame corruptions: each takes one frame (and its neighbours where needed) and returns the new
# frame and a detail string.


def _lv_resize(frame: np.ndarray, neighbours: np.ndarray, spacing: tuple[float, float],
               rng: np.random.Generator, grow: bool) -> tuple[np.ndarray, str]:
    lv = frame == 1
    ref = 0.5 * float((neighbours == 1).sum())
    change = rng.uniform(0.08, 0.15)
    target = int(round(ref * (1.0 + change if grow else 1.0 - change)))
    sdf = signed_distance(lv, spacing)
    out = frame.copy()
    if grow:
        # Grow into MYO and LA only (a dilated cavity pushes the endocardium and the mitral plane).
        cand = np.flatnonzero((frame == 2) | (frame == 3))
        n_add = int(np.clip(target - lv.sum(), 0, cand.size))
        order = cand[np.argsort(sdf.ravel()[cand], kind="stable")[:n_add]]
        out.ravel()[order] = 1
    else:
        inside = np.flatnonzero(lv)
        n_keep = int(np.clip(target, 1, inside.size))
        drop = inside[np.argsort(sdf.ravel()[inside], kind="stable")[n_keep:]]
        removed = np.zeros(frame.shape, dtype=bool)
        removed.ravel()[drop] = True
        # Vacated cavity takes the label of the nearest non-LV pixel: MYO on the walls, LA at the base.
        _, (ri, ci) = ndimage.distance_transform_edt(lv, sampling=spacing, return_indices=True)
        out[removed] = frame[ri[removed], ci[removed]]
    actual = 100.0 * ((out == 1).sum() / ref - 1.0)
    return out, f"lv_area_change={actual:+.1f}% vs neighbour mean"


def _shift(frame: np.ndarray, spacing: tuple[float, float], rng: np.random.Generator,
           axis: int) -> tuple[np.ndarray, str]:
    mm = rng.uniform(3.0, 6.0) * rng.choice([-1.0, 1.0])
    px = int(round(mm / spacing[axis]))
    px = px if px != 0 else int(np.sign(mm))
    out = np.zeros_like(frame)
    src = [slice(None), slice(None)]
    dst = [slice(None), slice(None)]
    src[axis] = slice(0, frame.shape[axis] - px) if px > 0 else slice(-px, None)
    dst[axis] = slice(px, None) if px > 0 else slice(0, frame.shape[axis] + px)
    out[tuple(dst)] = frame[tuple(src)]
    return out, f"shift={px * spacing[axis]:+.2f}mm ({px:+d}px)"


def _disk(shape: tuple[int, int], centre: tuple[int, int], radius_mm: float,
          spacing: tuple[float, float]) -> np.ndarray:
    rr = (np.arange(shape[0])[:, None] - centre[0]) * spacing[0]
    cc = (np.arange(shape[1])[None, :] - centre[1]) * spacing[1]
    return rr**2 + cc**2 <= radius_mm**2


def _pick(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    r, c = np.unravel_index(int(rng.choice(idx)), mask.shape)
    return int(r), int(c)


def _blob(frame: np.ndarray, spacing: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    label = int(rng.choice([1, 2, 3]))
    radius = rng.uniform(3.0, 7.0)
    free = ndimage.distance_transform_edt(frame == 0, sampling=spacing)
    # Away from the heart and inside the image, so the blob is its own component.
    edge = np.zeros(frame.shape, dtype=bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    to_edge = ndimage.distance_transform_edt(~edge, sampling=spacing)
    for r in (radius, radius / 2, 1.5):
        centre = _pick((free > r + 4.0) & (to_edge > r + 1.0), rng)
        if centre is not None:
            radius = r
            break
    else:
        raise ValueError("blob corruption: no background far enough from the heart; use a larger image")
    out = frame.copy()
    out[_disk(frame.shape, centre, radius, spacing)] = label
    return out, f"label={_LABEL_NAMES[label]} radius={radius:.1f}mm centre_px=({centre[0]},{centre[1]})"


def _hole(frame: np.ndarray, spacing: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    present = [k for k in (1, 3, 2) if (frame == k).any()]
    for label in [int(v) for v in rng.permutation(present)]:
        depth = ndimage.distance_transform_edt(frame == label, sampling=spacing)
        # The hole must stay strictly inside: at least one pixel of the structure all around it.
        ring = max(spacing) * 1.5
        radius = min(rng.uniform(1.5, 4.0), 0.5 * (depth.max() - ring))
        if radius < max(spacing):
            continue
        centre = _pick(depth > radius + ring, rng)
        if centre is None:
            continue
        out = frame.copy()
        out[_disk(frame.shape, centre, radius, spacing) & (frame == label)] = 0
        return out, f"label={_LABEL_NAMES[label]} radius={radius:.1f}mm centre_px=({centre[0]},{centre[1]})"
    raise ValueError("hole corruption: no structure thick enough for a hole")


def _broken_myo(frame: np.ndarray, spacing: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    myo, lv = frame == 2, frame == 1
    if not myo.any() or not lv.any():
        raise ValueError("broken_myo corruption: the frame has no LV or no MYO")
    sdf = signed_distance(lv, spacing)
    thickness = float(np.percentile(sdf[myo], 90))
    rows = np.nonzero(lv)[0]
    lo, hi = np.percentile(rows, 30), np.percentile(rows, 75)
    rr = np.arange(frame.shape[0])[:, None]
    # Mid-wall points along the middle of the wall length (the LV is within +-15 deg of vertical).
    mid = myo & (sdf > 0.3 * thickness) & (sdf < 0.7 * thickness) & (rr >= lo) & (rr <= hi)
    grad_r, grad_c = np.gradient(sdf, spacing[0], spacing[1])
    gap = rng.uniform(2.0, 5.0)
    for _ in range(20):
        centre = _pick(mid, rng)
        if centre is None:
            break
        normal = np.array([grad_r[centre], grad_c[centre]])
        normal /= max(float(np.linalg.norm(normal)), 1e-9)
        yy = (np.arange(frame.shape[0])[:, None] - centre[0]) * spacing[0]
        xx = (np.arange(frame.shape[1])[None, :] - centre[1]) * spacing[1]
        along = yy * normal[0] + xx * normal[1]  # across the wall
        across = -yy * normal[1] + xx * normal[0]  # along the wall
        cut = myo & (np.abs(across) <= 0.5 * gap) & (np.abs(along) <= 2.0 * thickness)
        out = frame.copy()
        out[cut] = 0
        if ndimage.label(out == 2)[1] >= 2:
            return out, f"gap={gap:.1f}mm centre_px=({centre[0]},{centre[1]})"
    raise ValueError("broken_myo corruption: could not split the myocardium")


def _missing(frame: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    present = [k for k in (1, 2, 3) if (frame == k).any()]
    if not present:
        raise ValueError("missing_structure corruption: the frame is empty")
    label = int(rng.choice(present))
    out = frame.copy()
    out[out == label] = 0
    return out, f"label={_LABEL_NAMES[label]}"


def _choose_frames(kinds: list[str], n_frames: int, rng: np.random.Generator) -> list[int]:
    """One distinct frame per single-frame corruption; temporal ones interior and not adjacent."""
    used: set[int] = set()
    # Temporal kinds first: they have the tighter constraints.
    order = sorted(range(len(kinds)), key=lambda i: kinds[i] not in TEMPORAL_CORRUPTION_KINDS)
    chosen: dict[int, int] = {}
    for i in order:
        temporal = kinds[i] in TEMPORAL_CORRUPTION_KINDS
        pool = range(1, n_frames - 1) if temporal else range(n_frames)
        free = [t for t in pool if t not in used]
        if temporal:
            spaced = [t for t in free if t - 1 not in used and t + 1 not in used]
            free = spaced or free
        if not free:
            raise ValueError(
                f"corrupt_sequence: {len(kinds)} single-frame corruptions ({', '.join(kinds)}) do not fit in "
                f"{n_frames} frames (temporal ones need an interior frame); ask for fewer corruptions"
            )
        t = int(rng.choice(free))
        used.add(t)
        chosen[i] = t
    return [chosen[i] for i in range(len(kinds))]


def corrupt_sequence(labels: np.ndarray, spacing_mm: tuple[float, float], rng: np.random.Generator,
                     kinds: tuple[str, ...] | list[str] | None = None,
                     n_corruptions: int = 1) -> tuple[np.ndarray, list[Corruption]]:
    """Apply recorded corruptions (DESIGN §7) to a label sequence.

    Kinds: ``contraction``/``dilation`` (one frame's LV 8-15 % smaller/larger than its neighbours'
    mean), ``shift_vertical``/``shift_horizontal`` (one frame moved 3-6 mm), ``blob`` (spurious
    disk of a label in the background), ``hole`` (background disk inside a structure), ``broken_myo``
    (a 2-5 mm gap across the myocardial wall), ``boundary_noise`` (all frames: border noise of 2-3 px
    RMS with a 4 mm correlation length, no clean-up), ``missing_structure`` (one label erased from one frame).
    Temporal kinds never touch the first or last frame (the metric is 0 there); single-frame
    corruptions get distinct frames.

    Args:
        labels: (T, H, W) uint8 label map (not modified).
        spacing_mm: (row_mm, col_mm).
        rng: random generator.
        kinds: kinds to draw from (default all `CORRUPTION_KINDS`); drawn without replacement while
            possible.
        n_corruptions: number of corruptions to apply.

    Returns:
        (corrupted labels (T, H, W) uint8, corruptions sorted by frame). ``boundary_noise`` yields one
        record per frame.

    Raises:
        ValueError: unknown kind, too many corruptions for T, or a frame that cannot take the corruption.
    """
    seq = validate_labels(np.asarray(labels), "labels")
    if seq.ndim != 3:
        raise ValueError(f"labels has shape {seq.shape}; expected (T, H, W)")
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    pool = list(CORRUPTION_KINDS if kinds is None else kinds)
    unknown = [k for k in pool if k not in CORRUPTION_KINDS]
    if unknown or not pool:
        raise ValueError(f"unknown corruption kinds {unknown or pool}; valid kinds: {', '.join(CORRUPTION_KINDS)}")
    if n_corruptions < 0:
        raise ValueError(f"n_corruptions={n_corruptions} must be >= 0")
    n_frames = seq.shape[0]
    if n_corruptions <= len(pool):
        drawn = [pool[i] for i in rng.permutation(len(pool))[:n_corruptions]]
    else:
        drawn = [pool[i] for i in rng.integers(0, len(pool), size=n_corruptions)]
    if any(k in TEMPORAL_CORRUPTION_KINDS for k in drawn) and n_frames < 3:
        raise ValueError(f"temporal corruptions need at least 3 frames, the sequence has {n_frames}")
    out = seq.copy()
    records: list[Corruption] = []
    if "boundary_noise" in drawn:
        amplitude = rng.uniform(2.0, 3.0)
        for t in range(n_frames):
            out[t] = _perturb_frame(out[t], spacing, rng, amplitude, _NOISE_CORRELATION_MM, clean=False)
            records.append(Corruption(t, "boundary_noise", f"amplitude={amplitude:.1f}px"))
    single = [k for k in drawn if k != "boundary_noise"]
    for kind, t in zip(single, _choose_frames(single, n_frames, rng)):
        frame = out[t]
        if kind in ("contraction", "dilation"):
            # Neighbours from the input: the change is relative to the uncorrupted trajectory.
            new, detail = _lv_resize(frame, seq[[t - 1, t + 1]], spacing, rng, grow=kind == "dilation")
        elif kind == "shift_vertical":
            new, detail = _shift(frame, spacing, rng, 0)
        elif kind == "shift_horizontal":
            new, detail = _shift(frame, spacing, rng, 1)
        elif kind == "blob":
            new, detail = _blob(frame, spacing, rng)
        elif kind == "hole":
            new, detail = _hole(frame, spacing, rng)
        elif kind == "broken_myo":
            new, detail = _broken_myo(frame, spacing, rng)
        else:
            new, detail = _missing(frame, rng)
        out[t] = new
        records.append(Corruption(t, kind, detail))
    records.sort(key=lambda c: (c.frame, CORRUPTION_KINDS.index(c.kind)))
    return out, records
