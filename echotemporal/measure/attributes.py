"""The seven per-frame shape attributes of the LV/MYO (DESIGN §3), in physical units.

Every measure works in millimetres on anisotropic pixels: a pixel at ``(row, col)`` sits at
``(y_mm, x_mm) = (row * row_mm, col * col_mm)`` (pixel centres), ``y`` pointing down, apex towards
row 0. Each frame is cropped to its LV∪MYO bounding box before anything is measured, so a CAMUS-size
frame costs what its heart costs.

The attributes are those regularized in the latent space of the AR-VAE of Painchaud et al.,
"Echocardiography Segmentation With Enforced Temporal Consistency", IEEE TMI 2022; here they are
measured in mm / mm² / degrees rather than pixels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echotemporal.core.boxes import Box
from echotemporal.core.errors import InvalidLabelsError
from echotemporal.core.labels import (
    BACKGROUND, LA, LV, MYO, as_label_sequence, check_spacing, frame_boxes, frames_text,
)
from echotemporal.core.parallel import map_threads

__all__ = [
    "ATTRIBUTE_NAMES",
    "ATTRIBUTE_UNITS",
    "LvLandmarks",
    "compute_attributes",
    "lv_landmarks",
    "lv_orientation_deg",
]

#: Attribute order; this is also the order of the regularized latent dims of the shape model.
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "lv_area_mm2",
    "lv_length_mm",
    "lv_base_width_mm",
    "lv_orientation_deg",
    "myo_area_mm2",
    "epi_center_x_mm",
    "epi_center_y_mm",
)
ATTRIBUTE_UNITS: dict[str, str] = {
    "lv_area_mm2": "mm²",
    "lv_length_mm": "mm",
    "lv_base_width_mm": "mm",
    "lv_orientation_deg": "°",
    "myo_area_mm2": "mm²",
    "epi_center_x_mm": "mm",
    "epi_center_y_mm": "mm",
}

_I_LV_AREA, _I_LENGTH, _I_BASE, _I_ORIENT, _I_MYO_AREA, _I_CX, _I_CY = range(7)

# Value given to pixels padded outside the image: neither MYO nor a "third region", so an LV
# touching the image border does not create false mitral hinges there.
_OUTSIDE = 255


@dataclass(frozen=True)
class LvLandmarks:
    """Mitral hinge points and apex of the LV, in (row, col) pixel coordinates (float).

    ``hinge_left`` is the hinge on the -x side (smaller column) of the LV long axis, ``hinge_right``
    the one on the +x side; ``apex`` is the LV pixel farthest (in mm) from the hinge midpoint.
    """

    hinge_left: tuple[float, float]
    hinge_right: tuple[float, float]
    apex: tuple[float, float]

    @property
    def base_midpoint(self) -> tuple[float, float]:
        """(row, col) pixel coordinates of the midpoint between the two hinges."""
        return (
            0.5 * (self.hinge_left[0] + self.hinge_right[0]),
            0.5 * (self.hinge_left[1] + self.hinge_right[1]),
        )






def _heart_boxes(labels: np.ndarray) -> list[Box | None]:
    """Per frame, the LV∪MYO bounding box grown by 1 px (clipped to the image), or None if empty."""
    # The box of all labels (one cheap pass); the exact LV∪MYO box is searched inside that window.
    height, width = labels.shape[1:]
    boxes: list[Box | None] = []
    for t, box in enumerate(frame_boxes(labels)):
        if box is None:
            boxes.append(None)
            continue
        window = labels[t][box]
        heart = (window == LV) | (window == MYO)
        h_rows = np.flatnonzero(heart.any(axis=1))
        if h_rows.size == 0:
            boxes.append(None)
            continue
        h_cols = np.flatnonzero(heart.any(axis=0))
        r_first, r_last = box[0].start + int(h_rows[0]), box[0].start + int(h_rows[-1])
        c_first, c_last = box[1].start + int(h_cols[0]), box[1].start + int(h_cols[-1])
        boxes.append(
            (slice(max(r_first - 1, 0), min(r_last + 2, height)), slice(max(c_first - 1, 0), min(c_last + 2, width)))
        )
    return boxes


def _padded_crop(frame: np.ndarray, box: Box) -> tuple[np.ndarray, int, int]:
    """Crop ``frame`` to ``box`` with a 1-px frame: image pixels where they exist, else _OUTSIDE.

    Returns the crop and the (row, col) of the crop's first pixel in the frame.
    """
    r0, r1, c0, c1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    pr0, pr1 = max(r0 - 1, 0), min(r1 + 1, frame.shape[0])
    pc0, pc1 = max(c0 - 1, 0), min(c1 + 1, frame.shape[1])
    crop = np.full((r1 - r0 + 2, c1 - c0 + 2), _OUTSIDE, dtype=np.uint8)
    crop[pr0 - (r0 - 1) : pr1 - (r0 - 1), pc0 - (c0 - 1) : pc1 - (c0 - 1)] = frame[pr0:pr1, pc0:pc1]
    return crop, int(r0) - 1, int(c0) - 1


def _near(mask: np.ndarray) -> np.ndarray:
    """Which pixels of a C-contiguous (h, w) bool band have a ``mask`` pixel in their 3x3 neighbourhood.

    Works on the flattened band, where the neighbours of a pixel are fixed offsets of its index.

    Returns:
        (h*w - 2*w - 2,) bool; element ``i`` is flat pixel ``i + w + 1`` (from the second row's second
        pixel to the last-but-one row's last-but-one pixel). Rows are not kept apart, so a pixel in
        the first or last column sees the far end of the neighbouring rows: read only pixels away from
        the band's left and right borders.
    """
    width = mask.shape[1]
    flat = mask.ravel()
    across = flat[:-2] | flat[1:-1] | flat[2:]  # element k: pixel k + 1 or its left/right neighbour
    return across[: -2 * width] | across[width:-width] | across[2 * width :]


def _median(values: np.ndarray) -> float:
    """``np.median`` of a non-empty finite (N,) float array (the same value), without its overhead."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


def lv_orientation_deg(rows: np.ndarray, cols: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Angle of the principal (long) axis of a pixel set from vertical, in degrees.

    Second central moments are computed in mm, so anisotropic pixels do not bias the angle.

    Args:
        rows: (N,) row indices of the pixels (e.g. of the LV).
        cols: (N,) column indices.
        spacing_mm: (row_mm, col_mm).

    Returns:
        Angle in (-90, 90] degrees. Sign convention: 0 = long axis vertical; positive = the apical
        (upper, smaller-row) end of the axis tilted towards +x (larger columns, image right), i.e. the
        axis is rotated clockwise on screen. A horizontal axis gives +90. NaN for fewer than 2 pixels.
    """
    row_mm, col_mm = check_spacing(spacing_mm)
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.size < 2:
        return float("nan")
    dy = rows * row_mm - float(np.mean(rows)) * row_mm
    dx = cols * col_mm - float(np.mean(cols)) * col_mm
    mu20, mu02, mu11 = float(np.mean(dx * dx)), float(np.mean(dy * dy)), float(np.mean(dx * dy))
    return _orientation_from_moments(mu20, mu02, mu11)


def _orientation_from_moments(mu20: float, mu02: float, mu11: float) -> float:
    """Long-axis angle from vertical (see lv_orientation_deg) from central moments in mm².

    ``mu20`` is the variance along x (columns), ``mu02`` along y (rows, pointing down).
    """
    # Major-axis angle from the +x axis, in image coordinates (y down): direction (cos φ, sin φ).
    phi = 0.5 * math.atan2(2.0 * mu11, mu20 - mu02)
    vx, vy = math.cos(phi), math.sin(phi)
    # Orient the axis towards the apex (up, -y); the angle from "up" is then atan2(vx, -vy).
    return _wrap_deg(math.degrees(math.atan2(vx, -vy)))


@dataclass(frozen=True)
class _Marginals:
    """A bool mask as float32 and its pixel counts per row and per column (exact)."""

    mask32: np.ndarray  # (h, w) float32: 1 on the mask, 0 elsewhere
    rows: np.ndarray  # (h,) float64 pixels per row
    cols: np.ndarray  # (w,) float64 pixels per column


def _marginals(mask: np.ndarray) -> _Marginals:
    """:class:`_Marginals` of an (h, w) bool mask."""
    # Products with a vector of ones are one BLAS pass, several times cheaper than numpy's bool sums,
    # and exact: every partial sum is an integer far below float32's 2**24.
    mask32 = mask.astype(np.float32)
    rows = (mask32 @ np.ones(mask.shape[1], dtype=np.float32)).astype(np.float64)
    cols = (np.ones(mask.shape[0], dtype=np.float32) @ mask32).astype(np.float64)
    return _Marginals(mask32, rows, cols)


@dataclass(frozen=True)
class _MaskMoments:
    """Centroid (mm, crop coordinates) and central second moments (mm²) of a non-empty mask."""

    y_mm: float
    x_mm: float
    mu20: float
    mu02: float
    mu11: float


def _mask_moments(mask: _Marginals, row_mm: float, col_mm: float) -> _MaskMoments:
    # From the row/column marginals and one matrix-vector product: no list of pixel coordinates.
    y = np.arange(mask.rows.size) * row_mm
    x = np.arange(mask.cols.size) * col_mm
    n = mask.rows.sum()
    ym = float(mask.rows @ y) / n
    xm = float(mask.cols @ x) / n
    dy = y - ym
    dx = x - xm
    row_x_sums = mask.mask32 @ dx.astype(np.float32)  # Σ_c (x_c - xm) per row
    return _MaskMoments(
        y_mm=ym,
        x_mm=xm,
        mu20=float(mask.cols @ (dx * dx)) / n,
        mu02=float(mask.rows @ (dy * dy)) / n,
        mu11=float(dy @ row_x_sums.astype(np.float64)) / n,
    )


def _row_extremes(mask: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the first and last pixel of each of ``rows``, the non-empty rows of ``mask``.

    They include every vertex of the mask's convex hull, hence the farthest pixel from any point.
    """
    sub = mask[rows]
    first = sub.argmax(axis=1)
    last = mask.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    return np.concatenate([rows, rows]), np.concatenate([first, last])


def _wrap_deg(theta: float) -> float:
    """Wrap an axis angle (defined modulo 180°) to (-90, 90]."""
    return theta - 180.0 * math.ceil((theta - 90.0) / 180.0)


def _landmarks_in_crop(
    crop: np.ndarray,
    lv: np.ndarray,
    lv_rows: np.ndarray,
    myo: np.ndarray,
    moments: _MaskMoments,
    orientation_deg: float,
    row_mm: float,
    col_mm: float,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | str:
    """Hinges and apex in crop (row, col) coordinates, or a string saying why they are missing.

    ``crop`` is an (h, w) :func:`_padded_crop` (C-contiguous; the LV never touches its border), ``lv``
    and ``myo`` its (h, w) bool masks, ``lv_rows`` the (h,) LV pixels per row, ``moments`` the LV's
    (crop coordinates), ``orientation_deg`` its long-axis angle.
    """
    # Everything below looks at LV pixels and their 8 neighbours only: the band of full rows from one
    # above the LV to one below, flattened; `_near` reports on its pixels from flat index width + 1.
    rows = np.flatnonzero(lv_rows)
    r0, r1 = int(rows[0]) - 1, int(rows[-1]) + 2
    width = crop.shape[1]
    band = crop[r0:r1]
    third = (band == BACKGROUND) | (band == LA)
    opening = lv[r0:r1].ravel()[width + 1 : band.size - width - 1] & _near(third)
    candidates = opening & _near(myo[r0:r1])
    first_pixel = (r0 + 1) * width + 1  # flat crop index of element 0 of `opening` and `candidates`
    # flatnonzero + divmod: the same (row-major) pixels as np.nonzero, several times faster on 2D arrays.
    cand_r, cand_c = np.divmod(np.flatnonzero(candidates) + first_pixel, width)
    if cand_r.size == 0:
        return "no LV pixel touches both MYO and background/LA (no mitral hinge)"

    ym, xm = moments.y_mm, moments.x_mm
    # Long axis of the LV (apex direction, y up = negative), from the same moments as the orientation.
    theta = math.radians(orientation_deg)
    ax, ay = math.sin(theta), -math.cos(theta)
    # Lateral coordinate (> 0 on the +x side of the long axis) of each candidate, measured from the
    # middle of the LV's opening (LV pixels touching background/LA, i.e. mostly the mitral plane)
    # rather than from the LV centroid: an oblique or off-centre mitral plane then still puts one
    # hinge on each side. The median keeps a few pixels of a wall gap from moving the split.
    open_r, open_c = np.divmod(np.flatnonzero(opening) + first_pixel, width)
    split = _median(ax * (open_r * row_mm - ym) - ay * (open_c * col_mm - xm))
    lateral = ax * (cand_r * row_mm - ym) - ay * (cand_c * col_mm - xm) - split
    hinges = []
    for side in (lateral < 0, lateral > 0):
        if not side.any():
            return "mitral hinge found on one side of the LV long axis only"
        idx = np.flatnonzero(side)
        # Lowest (largest row) candidate of this side; ties go to the outermost one.
        key = cand_r[idx] * 1e6 + np.abs(lateral[idx])
        best = idx[int(np.argmax(key))]
        hinges.append((float(cand_r[best]), float(cand_c[best])))
    (lr, lc), (rr, rc) = hinges
    mid_y, mid_x = 0.5 * (lr + rr) * row_mm, 0.5 * (lc + rc) * col_mm
    ext_r, ext_c = _row_extremes(lv, rows)
    far = int(np.argmax((ext_r * row_mm - mid_y) ** 2 + (ext_c * col_mm - mid_x) ** 2))
    apex = (float(ext_r[far]), float(ext_c[far]))
    return hinges[0], hinges[1], apex


def lv_landmarks(frame: np.ndarray, spacing_mm: Sequence[float]) -> LvLandmarks | None:
    """Mitral hinge points and apex of the LV of one frame.

    A hinge candidate is an LV pixel that has, among its 8 neighbours, both a MYO pixel and a pixel of
    a third region (background or LA; without an LA the base touches background and the same rule
    holds). Candidates are split into two sides by a line parallel to the LV long axis (principal
    axis of the LV second moments in mm) through the middle of the LV opening (the LV pixels touching
    background/LA: the mitral plane); on each side the hinge is the lowest candidate (largest row;
    ties: the one farthest from that line). The apex is the LV pixel farthest, in mm, from the hinge
    midpoint.

    Args:
        frame: (H, W) CAMUS label map (apex towards row 0).
        spacing_mm: (row_mm, col_mm) pixel size.

    Returns:
        The landmarks in (row, col) pixel coordinates of ``frame``, or None when the frame has no LV,
        no MYO, or a hinge on fewer than two sides (no warning: the caller decides).
    """
    row_mm, col_mm = check_spacing(spacing_mm)
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise InvalidLabelsError(f"frame of shape {frame.shape}: expected one (H, W) label map")
    box = _heart_boxes(frame[None])[0]
    if box is None:
        return None
    crop, r_off, c_off = _padded_crop(frame, box)
    lv_mask = crop == LV
    myo = crop == MYO
    if not lv_mask.any() or not myo.any():
        return None
    lv = _marginals(lv_mask)
    moments = _mask_moments(lv, row_mm, col_mm)
    orientation = _orientation_from_moments(moments.mu20, moments.mu02, moments.mu11)
    found = _landmarks_in_crop(crop, lv_mask, lv.rows, myo, moments, orientation, row_mm, col_mm)
    if isinstance(found, str):
        return None
    (lr, lc), (rr, rc), (ar, ac) = found
    return LvLandmarks(
        hinge_left=(lr + r_off, lc + c_off),
        hinge_right=(rr + r_off, rc + c_off),
        apex=(ar + r_off, ac + c_off),
    )


def _frame_attributes(
    frame: np.ndarray, box: Box | None, row_mm: float, col_mm: float
) -> tuple[np.ndarray, str | None]:
    """The attributes of one (H, W) frame (NaN where unmeasurable) and why some are missing, if so."""
    out = np.full(len(ATTRIBUTE_NAMES), np.nan, dtype=np.float64)
    pixel_mm2 = row_mm * col_mm
    if box is None:
        # Areas are measured (zero); a temporal check must see the structure vanish.
        out[_I_LV_AREA] = out[_I_MYO_AREA] = 0.0
        return out, "no LV and no MYO: areas are 0, all other attributes NaN"
    crop, r_off, c_off = _padded_crop(frame, box)
    lv_mask = crop == LV
    myo_mask = crop == MYO
    lv = _marginals(lv_mask)
    myo = _marginals(myo_mask)
    n_lv = int(lv.rows.sum())
    n_myo = int(myo.rows.sum())
    out[_I_LV_AREA] = n_lv * pixel_mm2
    out[_I_MYO_AREA] = n_myo * pixel_mm2

    # Centroid of LV∪MYO from the marginals (integer sums, exact in float64).
    n_heart = n_lv + n_myo
    row_counts = lv.rows + myo.rows
    col_counts = lv.cols + myo.cols
    out[_I_CY] = (r_off + float(row_counts @ np.arange(row_counts.size)) / n_heart) * row_mm
    out[_I_CX] = (c_off + float(col_counts @ np.arange(col_counts.size)) / n_heart) * col_mm

    if n_lv == 0:
        return out, "no LV: LV area is 0, LV orientation, length and base width are NaN"
    moments = _mask_moments(lv, row_mm, col_mm)
    out[_I_ORIENT] = _orientation_from_moments(moments.mu20, moments.mu02, moments.mu11)
    if n_myo == 0:
        return out, "no MYO: LV length and base width are NaN (no mitral hinge)"
    found = _landmarks_in_crop(crop, lv_mask, lv.rows, myo_mask, moments, out[_I_ORIENT], row_mm, col_mm)
    if isinstance(found, str):
        return out, f"{found}: LV length and base width are NaN"
    (lr, lc), (rr, rc), (ar, ac) = found
    out[_I_BASE] = math.hypot((lr - rr) * row_mm, (lc - rc) * col_mm)
    out[_I_LENGTH] = math.hypot((0.5 * (lr + rr) - ar) * row_mm, (0.5 * (lc + rc) - ac) * col_mm)
    return out, None


def compute_attributes(
    labels: np.ndarray, spacing_mm: Sequence[float], *, threads: int = 1, frame_numbers: Sequence[int] | None = None,
    warn: bool = True,
) -> np.ndarray:
    """The seven shape attributes of every frame, in physical units (DESIGN §3).

    Definitions (all on pixel centres, ``(y_mm, x_mm) = (row*row_mm, col*col_mm)``):

    - ``lv_area_mm2``, ``myo_area_mm2``: pixel count × ``row_mm*col_mm``.
    - ``epi_center_x_mm``, ``epi_center_y_mm``: centroid of LV∪MYO, in mm from the image origin
      (the centre of pixel (0, 0)).
    - ``lv_orientation_deg``: angle of the LV principal axis (second moments in mm) from vertical,
      in (-90, 90]; positive = apex tilted towards +x (image right). See :func:`lv_orientation_deg`.
    - ``lv_base_width_mm``: distance between the two mitral hinge points (see :func:`lv_landmarks`).
    - ``lv_length_mm``: distance from the hinge midpoint to the apex (the LV pixel farthest from it).

    Args:
        labels: (T, H, W) or (H, W) CAMUS label map (0 bg, 1 LV, 2 MYO, 3 LA), apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel size in mm.
        threads: frames measured in parallel by this many threads (same result).
        frame_numbers: (T,) 0-based index in the whole sequence of each frame of ``labels``, when
            ``labels`` holds only some of its frames (a re-measured subset): the warnings name
            these frames; default ``0..T-1``.
        warn: False for candidate shapes whose NaNs the caller handles itself: no warning (unlike a
            ``warnings.catch_warnings`` block, safe in threads).

    Returns:
        (T, 7) float64 in the order of :data:`ATTRIBUTE_NAMES` (T = 1 for one (H, W) frame). An
        attribute that cannot be measured on a frame (no LV, no MYO, fewer than two hinges) is NaN,
        and one ``UserWarning`` per cause names the frames concerned.

    Raises:
        InvalidLabelsError: ``labels`` is not a 2D/3D integer array.
        ConfigError: ``spacing_mm`` is not two positive finite numbers.
        ValueError: ``frame_numbers`` does not hold one number per frame.
    """
    row_mm, col_mm = check_spacing(spacing_mm)
    seq = as_label_sequence(labels)
    n_frames = seq.shape[0]
    numbers = range(n_frames) if frame_numbers is None else [int(f) for f in frame_numbers]
    if len(numbers) != n_frames:
        raise ValueError(f"frame_numbers: {len(numbers)} numbers for {n_frames} frames; give one per frame")
    out = np.full((n_frames, len(ATTRIBUTE_NAMES)), np.nan, dtype=np.float64)
    boxes = _heart_boxes(seq)
    frame = lambda t: _frame_attributes(seq[t], boxes[t], row_mm, col_mm)
    results = map_threads(frame, range(n_frames), threads)
    problems: dict[str, list[int]] = {}
    for t, (values, cause) in enumerate(results):
        out[t] = values
        if cause is not None:
            problems.setdefault(cause, []).append(t)

    for cause, frames in problems.items() if warn else ():
        warnings.warn(f"compute_attributes: {frames_text(numbers[t] for t in frames)}: {cause}", UserWarning,
                      stacklevel=2)
    return out
