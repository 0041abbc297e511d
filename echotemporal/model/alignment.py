"""Canonical per-sequence alignment onto the model grid, and its inverse (DESIGN.md §4.2).

One similarity transform per sequence (never per frame: per-frame registration would hide the very
shifts the temporal module must correct):

* centre: centroid of the time-averaged LV∪MYO, in mm;
* rotation: the principal axis of the time-averaged LV (second moments in mm) becomes vertical, apex
  towards grid row 0 (inputs are apex-up by convention, so the axis end nearer row 0 is the apex end);
* scale: the largest LV∪MYO half-extent over all frames, measured from the centre in the rotated frame,
  fills ``fill_fraction`` of the half grid; grid pixels are isotropic.

Forward (labels → grid) takes a 3×3 supersampled majority vote per grid pixel: native CAMUS pixels are
3-4× smaller than grid pixels and plain nearest neighbour would alias the borders. Inverse resamples the
decoder's class probabilities bilinearly (``torch.nn.functional.grid_sample``) onto the native grid,
only inside the native box that the grid's foreground maps to (outside: background with probability 1);
the caller argmaxes, which gives smooth native-resolution edges.

Coordinates: native physical ``(y_mm, x_mm) = (row*row_mm, col*col_mm)``; grid offsets ``u`` in mm from
the grid centre; ``p = centre + R @ u``; grid pixel ``(i, j) = u / scale + (G-1)/2``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from echotemporal.core.boxes import Box
from echotemporal.core.config import AlignmentConfig
from echotemporal.core.labels import LV, MYO

__all__ = [
    "SequenceAlignment",
    "fit_alignment",
    "to_grid",
    "probabilities_to_native",
    "probabilities_to_native_labels",
    "grid_to_native_coords",
    "native_box",
    "BilinearTaps",
    "bilinear_taps",
]

_SUPERSAMPLE = 3  # sub-samples per grid-pixel side for the forward majority vote


@dataclass(frozen=True)
class SequenceAlignment:
    """A similarity transform between a native sequence and the isotropic model grid.

    Attributes:
        center_mm: (2,) (y_mm, x_mm) of the grid centre in native physical coordinates.
        rotation: (2, 2) proper rotation R with ``p - center = R @ u`` (u: grid offset in mm, (row, col)).
        scale_mm: size of one grid pixel in mm (isotropic).
        spacing_mm: native (row_mm, col_mm).
        native_shape: native (H, W).
        grid_size: G, side of the square model grid.
        angle_deg: rotation angle in degrees (LV axis tilt from vertical that was removed).
    """

    center_mm: tuple[float, float]
    rotation: tuple[tuple[float, float], tuple[float, float]]
    scale_mm: float
    spacing_mm: tuple[float, float]
    native_shape: tuple[int, int]
    grid_size: int
    angle_deg: float = 0.0

    @property
    def rotation_matrix(self) -> np.ndarray:
        """(2, 2) float64 rotation matrix R."""
        return np.asarray(self.rotation, dtype=np.float64)


def _weighted_moments(weights: np.ndarray, spacing_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """Centroid (2,) and covariance (2, 2) in mm of a non-negative (H, W) weight map; None if empty."""
    total = float(weights.sum())
    if total <= 0:
        return None
    rows = np.arange(weights.shape[0], dtype=np.float64) * spacing_mm[0]
    cols = np.arange(weights.shape[1], dtype=np.float64) * spacing_mm[1]
    w_r = weights.sum(axis=1)
    w_c = weights.sum(axis=0)
    my = float(w_r @ rows) / total
    mx = float(w_c @ cols) / total
    dy = rows - my
    dx = cols - mx
    cyy = float(w_r @ (dy * dy)) / total
    cxx = float(w_c @ (dx * dx)) / total
    cyx = float(dy @ weights @ dx) / total
    return np.array([my, mx]), np.array([[cyy, cyx], [cyx, cxx]])


def _whole_image_alignment(
    shape: tuple[int, int], spacing: tuple[float, float], config: AlignmentConfig
) -> SequenceAlignment:
    """Identity-orientation transform covering the whole (H, W) image: the fall-back without a heart."""
    H, W = shape
    center = np.array([(H - 1) * spacing[0] / 2, (W - 1) * spacing[1] / 2])
    half = max(H * spacing[0], W * spacing[1]) / 2
    return SequenceAlignment(
        center_mm=(float(center[0]), float(center[1])),
        rotation=((1.0, 0.0), (0.0, 1.0)),
        scale_mm=float(2 * half / (config.fill_fraction * int(config.grid_size))),
        spacing_mm=spacing,
        native_shape=(H, W),
        grid_size=int(config.grid_size),
    )


def _long_axis_rotation(lv_count: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Rotation (2, 2) taking grid "up" onto the LV long axis (apex towards row 0), and its angle (deg).

    Args:
        lv_count: (h, w) float64 per-pixel count of LV frames.
        spacing: (row_mm, col_mm).
    """
    lv_mom = _weighted_moments(lv_count, spacing)
    if lv_mom is None:
        v = np.array([-1.0, 0.0])
    else:
        evals, evecs = np.linalg.eigh(lv_mom[1])
        v = evecs[:, int(np.argmax(evals))]
        if v[0] > 0:  # point towards row 0: the apex end for apex-up inputs
            v = -v
    # R maps grid "up" (-1, 0) onto v: first column -v, second its proper-rotation partner.
    R = np.array([[-v[0], v[1]], [-v[1], -v[0]]])
    return R, float(np.degrees(np.arctan2(v[1], -v[0])))


def fit_alignment(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    config: AlignmentConfig = AlignmentConfig(),
) -> SequenceAlignment:
    """Fit the one canonical similarity transform of a sequence.

    Args:
        labels: (T, H, W) or (H, W) uint8 CAMUS label map, apex towards row 0.
        spacing_mm: (row_mm, col_mm) native pixel size.
        config: grid size and fill fraction.

    Returns:
        The SequenceAlignment used for every frame of the sequence. A sequence without any LV/MYO
        (degenerate) warns and gets an identity-orientation transform covering the whole image.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    T, H, W = labels.shape
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    G = int(config.grid_size)

    # Work inside the bounding box of the heart: moments over a crop are the same, and 5-10x cheaper.
    # The box of every label (one cheap max over time) bounds it; per-pixel counts of LV and MYO
    # frames are taken inside that.
    top = labels.max(axis=0)
    rows_any, cols_any = np.flatnonzero(top.any(axis=1)), np.flatnonzero(top.any(axis=0))
    if rows_any.size:
        labels = labels[:, rows_any[0] : rows_any[-1] + 1, cols_any[0] : cols_any[-1] + 1]
        base = (int(rows_any[0]), int(cols_any[0]))
    else:
        base = (0, 0)
    lv_count = (labels == LV).sum(axis=0, dtype=np.int32)
    heart_count = lv_count + (labels == MYO).sum(axis=0, dtype=np.int32)
    heart_any = heart_count > 0
    if not heart_any.any():
        warnings.warn("fit_alignment: no LV or MYO in any frame; using the whole image unrotated", stacklevel=2)
        return _whole_image_alignment((H, W), spacing, config)
    rr = np.flatnonzero(heart_any.any(axis=1))
    cc = np.flatnonzero(heart_any.any(axis=0))
    r0, r1, c0, c1 = rr[0], rr[-1] + 1, cc[0], cc[-1] + 1
    offset = np.array([(base[0] + r0) * spacing[0], (base[1] + c0) * spacing[1]])

    centroid, _ = _weighted_moments(heart_count[r0:r1, c0:c1].astype(np.float64), spacing)
    center = centroid + offset

    R, angle_deg = _long_axis_rotation(lv_count[r0:r1, c0:c1].astype(np.float64), spacing)

    # Largest half-extent of LV∪MYO (union over frames) in the rotated frame, +half a native pixel.
    pr, pc = np.nonzero(heart_any[r0:r1, c0:c1])
    pts = np.stack([pr * spacing[0], pc * spacing[1]], axis=1) + offset - center
    u = pts @ R  # = (R^T p)^T for each row
    half = float(np.abs(u).max()) + 0.5 * max(spacing)
    scale = 2.0 * half / (config.fill_fraction * G)
    return SequenceAlignment(
        center_mm=(float(center[0]), float(center[1])),
        rotation=((float(R[0, 0]), float(R[0, 1])), (float(R[1, 0]), float(R[1, 1]))),
        scale_mm=float(scale),
        spacing_mm=spacing,
        native_shape=(H, W),
        grid_size=G,
        angle_deg=angle_deg,
    )


def grid_to_native_coords(alignment: SequenceAlignment, grid_rc: np.ndarray) -> np.ndarray:
    """Native (row, col) pixel coordinates of grid pixel coordinates.

    Args:
        alignment: the sequence's transform.
        grid_rc: (..., 2) grid (row, col) in pixels, float.

    Returns:
        (..., 2) native (row, col) in pixels, float64.
    """
    g = np.asarray(grid_rc, dtype=np.float64)
    u = (g - (alignment.grid_size - 1) / 2.0) * alignment.scale_mm
    p = u @ alignment.rotation_matrix.T + np.asarray(alignment.center_mm)
    return p / np.asarray(alignment.spacing_mm)


def _native_to_grid_coords(alignment: SequenceAlignment, native_rc: np.ndarray) -> np.ndarray:
    """Grid (row, col) pixel coordinates of native (..., 2) (row, col) pixel coordinates."""
    p = np.asarray(native_rc, dtype=np.float64) * np.asarray(alignment.spacing_mm) - np.asarray(alignment.center_mm)
    u = p @ alignment.rotation_matrix
    return u / alignment.scale_mm + (alignment.grid_size - 1) / 2.0


def to_grid(labels: np.ndarray, alignment: SequenceAlignment) -> np.ndarray:
    """Resample a native label sequence onto the model grid.

    Each grid pixel takes the majority label of 3×3 nearest-neighbour sub-samples (anti-aliased);
    samples outside the native image count as background.

    Args:
        labels: (T, H, W) or (H, W) uint8 CAMUS labels on the native grid of ``alignment``.
        alignment: the sequence's transform (same for every frame).

    Returns:
        (T, G, G) uint8 labels (all CAMUS labels kept; the model maps LA to background itself).
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    T, H, W = labels.shape
    G, k = alignment.grid_size, _SUPERSAMPLE
    sub = (np.arange(G * k, dtype=np.float64) + 0.5) / k - 0.5  # sub-sample centres in grid pixels
    # The map is affine, so native coordinates are separable sums (no (G*k)^2 x 2 matmul).
    A, b = _grid_to_native_affine(alignment)
    r = np.rint(b[0] + A[0, 0] * sub[:, None] + A[0, 1] * sub[None, :]).astype(np.int64)
    c = np.rint(b[1] + A[1, 0] * sub[:, None] + A[1, 1] * sub[None, :]).astype(np.int64)
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    flat = np.where(inside, r * W + c, 0)
    # Reorder sub-samples vote-major, (G, k, G, k) -> (k*k, G*G): the votes of one rank are contiguous.
    flat = flat.reshape(G, k, G, k).transpose(1, 3, 0, 2).reshape(-1)
    inside = inside.reshape(G, k, G, k).transpose(1, 3, 0, 2).reshape(-1)
    vals = np.take(labels.reshape(T, H * W), flat, axis=1)  # (T, k*k*G*G)
    if int(vals.max(initial=0)) >= len(_VOTE_UNIT):
        raise ValueError(f"to_grid: label {int(vals.max())} is not a CAMUS label (0-3)")
    # Majority vote: each vote adds one to its label's 4-bit counter of a uint16 (k*k = 9 < 16), and
    # a table maps the packed counters to the label with most votes (ties to the lower label).
    packed = _VOTE_UNIT[vals]
    if not inside.all():
        packed[:, ~inside] = _VOTE_UNIT[0]  # outside the image: background
    counts = packed.reshape(T, k * k, G * G).sum(axis=1, dtype=np.uint16)
    return _majority_table()[counts].reshape(T, G, G)


#: One vote for label l of :func:`to_grid`: 1 in the l-th 4-bit counter of a uint16.
_VOTE_UNIT = (1 << (4 * np.arange(4))).astype(np.uint16)


@functools.cache
def _majority_table() -> np.ndarray:
    """(65536,) uint8: the label with the most votes for every uint16 of four 4-bit vote counters."""
    packed = np.arange(1 << 16, dtype=np.uint32)
    counts = np.stack([(packed >> (4 * label)) & 15 for label in range(len(_VOTE_UNIT))], axis=1)
    return counts.argmax(axis=1).astype(np.uint8)


def _grid_to_native_affine(alignment: SequenceAlignment) -> tuple[np.ndarray, np.ndarray]:
    """(A (2, 2), b (2,)) with native (row, col) = A @ grid (row, col) + b."""
    sp = np.asarray(alignment.spacing_mm)
    A = alignment.rotation_matrix * alignment.scale_mm / sp[:, None]
    b = (np.asarray(alignment.center_mm) - alignment.rotation_matrix @ np.full(2, (alignment.grid_size - 1) / 2.0 * alignment.scale_mm)) / sp
    return A, b


def native_box(alignment: SequenceAlignment, mask: np.ndarray, margin: float) -> Box | None:
    """Native box (row and column slices) covering the grid pixels of a (G, G) bool ``mask``, ``margin``
    grid pixels around them (within the grid), clipped to the native image; None if empty."""
    if not mask.any():
        return None
    G = alignment.grid_size
    ii, jj = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    i0, i1 = max(ii[0] - margin, -0.5), min(ii[-1] + margin, G - 0.5)
    j0, j1 = max(jj[0] - margin, -0.5), min(jj[-1] + margin, G - 0.5)
    nat = grid_to_native_coords(alignment, np.array([[i0, j0], [i0, j1], [i1, j0], [i1, j1]]))
    H, W = alignment.native_shape
    r0 = int(np.clip(np.floor(nat[:, 0].min()), 0, H))
    r1 = int(np.clip(np.ceil(nat[:, 0].max()) + 1, 0, H))
    c0 = int(np.clip(np.floor(nat[:, 1].min()), 0, W))
    c1 = int(np.clip(np.ceil(nat[:, 1].max()) + 1, 0, W))
    return None if r1 <= r0 or c1 <= c0 else (slice(r0, r1), slice(c0, c1))


def _native_box(probs: np.ndarray, alignment: SequenceAlignment, threshold: float = 1e-3) -> Box | None:
    """Native box covering every grid pixel whose foreground probability > threshold."""
    return native_box(alignment, (1.0 - probs[:, 0]).max(axis=0) > threshold, 1.5)


def _sample_box(probs: np.ndarray, alignment: SequenceAlignment, box: Box):
    """Bilinear resampling of (T, C, G, G) grid probabilities onto the native box; (T, C, h, w) tensor."""
    import torch
    import torch.nn.functional as F

    r0, r1, c0, c1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    G = alignment.grid_size
    rows = np.arange(r0, r1, dtype=np.float64)
    cols = np.arange(c0, c1, dtype=np.float64)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    g = _native_to_grid_coords(alignment, np.stack([rr, cc], axis=-1))
    # grid_sample wants (x, y) = (col, row) normalised to [-1, 1] with align_corners=True.
    norm = (g[..., ::-1] / (G - 1)) * 2.0 - 1.0
    T = probs.shape[0]
    grid = torch.from_numpy(np.ascontiguousarray(norm, dtype=np.float32))[None].expand(T, -1, -1, -1)
    src = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    # Outside the grid the zero padding leaves mass missing: it is background.
    out[:, 0] += (1.0 - out.sum(dim=1)).clamp_(min=0.0)
    return out


def probabilities_to_native(probs: np.ndarray, alignment: SequenceAlignment) -> np.ndarray:
    """Resample grid class probabilities back to the native grid (bilinear); the caller argmaxes.

    Args:
        probs: (T, C, G, G) class probabilities on the model grid (channel 0 = background).
        alignment: the transform the sequence was aligned with.

    Returns:
        (T, C, H, W) float32 probabilities on the native grid; background probability 1 outside the
        native box the grid's foreground maps to.
    """
    probs = np.asarray(probs, dtype=np.float32)
    T, C = probs.shape[:2]
    H, W = alignment.native_shape
    out = np.zeros((T, C, H, W), dtype=np.float32)
    out[:, 0] = 1.0
    box = _native_box(probs, alignment)
    if box is not None:
        out[(slice(None), slice(None), *box)] = _sample_box(probs, alignment, box).numpy()
    return out


@dataclass(frozen=True)
class BilinearTaps:
    """Bilinear interpolation (``align_corners=True``) of grid values at every native pixel of a box.

    Pixels are numbered row-major inside ``box``. A pixel between grid rows/columns i..i+1, j..j+1
    blends the four grid pixels ``k00 = i·G + j``, ``k00 + 1``, ``k00 + G``, ``k00 + G + 1`` with
    the weights ``(1−a)(1−b), (1−a)b, a(1−b), ab`` (computed for the pixels blended only); pixels
    outside the grid get zero weights (values outside the grid are 0).

    Attributes:
        box: the native box (row and column slices).
        k00: (N,) int64 flat grid index of each pixel's top-left neighbour (clipped to the grid).
        a, b: (N,) float32 offsets of each pixel from its top-left neighbour in grid rows and columns
            (0 outside the grid).
        inside: (N,) bool, pixel within the grid.
        grid_size: G.
    """

    box: Box
    k00: np.ndarray
    a: np.ndarray
    b: np.ndarray
    inside: np.ndarray
    grid_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.box[0].stop - self.box[0].start, self.box[1].stop - self.box[1].start

    def corners(self, pixels: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, ...]:
        """The four flat grid indices (each (n,)) blended at ``pixels``."""
        k = self.k00[pixels]
        return k, k + 1, k + self.grid_size, k + self.grid_size + 1

    def touches(self, flags: np.ndarray) -> np.ndarray:
        """(T, N) bool: a pixel inside the grid with any of its four grid neighbours set in (T, G·G) ``flags``."""
        G = self.grid_size
        f = flags.reshape(-1, G, G)
        near = f.copy()
        near[:, :, :-1] |= f[:, :, 1:]
        near[:, :-1] |= near[:, 1:].copy()
        return near.reshape(len(f), -1)[:, self.k00] & self.inside

    def blend(self, values: np.ndarray, frames: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """Interpolated values at (frame, pixel) pairs.

        Args:
            values: (T, C, G·G) grid values.
            frames, pixels: (n,) int frame and box-pixel indices.

        Returns:
            (n, C) float32.
        """
        a, b = self.a[pixels], self.b[pixels]
        w = (np.stack([(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b]) * self.inside[pixels])[:, :, None]
        T, C, GG = values.shape
        out = np.zeros((len(pixels), C), dtype=np.float32)
        # Flat gathers, one per channel: much faster than numpy's mixed (array, slice, array) indexing.
        flat = np.ascontiguousarray(values).reshape(-1)
        first = np.asarray(frames, dtype=np.int64) * (C * GG)
        for weight, k in zip(w, self.corners(pixels)):
            at = first + k
            out += weight * np.stack([flat[at + c * GG] for c in range(C)], axis=1)
        return out


def bilinear_taps(alignment: SequenceAlignment, box: Box) -> BilinearTaps:
    """The :class:`BilinearTaps` of the native pixels of ``box`` on ``alignment``'s grid."""
    r0, r1, c0, c1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    G = alignment.grid_size
    # Grid coordinates of the box pixels (affine, separable).
    sp = np.asarray(alignment.spacing_mm)
    M = alignment.rotation_matrix.T * sp[None, :] / alignment.scale_mm  # grid = M @ native_rc + m
    m = -(alignment.rotation_matrix.T @ np.asarray(alignment.center_mm)) / alignment.scale_mm + (G - 1) / 2.0
    rows = np.arange(r0, r1, dtype=np.float64)[:, None]
    cols = np.arange(c0, c1, dtype=np.float64)[None, :]
    gr = (M[0, 0] * rows + M[0, 1] * cols + m[0]).ravel()
    gc = (M[1, 0] * rows + M[1, 1] * cols + m[1]).ravel()
    inside = (gr >= 0) & (gr <= G - 1) & (gc >= 0) & (gc <= G - 1)
    i0 = np.clip(np.floor(gr), 0, G - 2).astype(np.int64)
    j0 = np.clip(np.floor(gc), 0, G - 2).astype(np.int64)
    a = np.where(inside, gr - i0, 0.0).astype(np.float32)
    b = np.where(inside, gc - j0, 0.0).astype(np.float32)
    return BilinearTaps(box, i0 * G + j0, a, b, inside, G)


def probabilities_to_native_labels(probs: np.ndarray, alignment: SequenceAlignment) -> np.ndarray:
    """Argmax of :func:`probabilities_to_native`, computed without materialising full-size probabilities.

    A bilinear blend of four grid pixels that share their argmax has that argmax too (a convex
    combination preserves ``p_c >= p_d``), so only native pixels whose four surrounding grid pixels
    disagree are interpolated; the others copy the shared label. Same result, a fraction of the work.

    Args:
        probs: (T, C, G, G) class probabilities on the model grid (channel 0 = background).
        alignment: the sequence's transform.

    Returns:
        (T, H, W) uint8 labels (class indices) on the native grid.
    """
    probs = np.asarray(probs, dtype=np.float32)
    T, C, G = probs.shape[0], probs.shape[1], alignment.grid_size
    H, W = alignment.native_shape
    out = np.zeros((T, H, W), dtype=np.uint8)
    grid_lab = probs.argmax(axis=1).astype(np.uint8)  # (T, G, G)
    # Native box of the foreground grid pixels (+1 grid pixel: the blend reaches one pixel out).
    box = native_box(alignment, (grid_lab != 0).any(axis=0), 1.0)
    if box is None:
        return out
    r0, r1, c0, c1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    taps = bilinear_taps(alignment, box)
    pix = np.flatnonzero(taps.inside)
    # Grid cells (top-left corner k00; k00 is clipped to i, j <= G - 2) whose four corners disagree.
    mixed = np.zeros((T, G, G), dtype=bool)
    corner = grid_lab[:, :-1, :-1]
    mixed[:, :-1, :-1] = (corner != grid_lab[:, :-1, 1:]) | (corner != grid_lab[:, 1:, :-1]) | (corner != grid_lab[:, 1:, 1:])
    # Gathered pixel-major ((N, T): rows of T contiguous bytes), much faster than column gathers of (T, G·G).
    k00 = taps.k00[pix]
    lab = np.ascontiguousarray(grid_lab.reshape(T, G * G).T)[k00]
    p_idx, t_idx = np.divmod(np.flatnonzero(np.ascontiguousarray(mixed.reshape(T, G * G).T)[k00]), T)
    if t_idx.size:
        # Ties go to the lower class, like argmax.
        lab[p_idx, t_idx] = taps.blend(probs.reshape(T, C, G * G), t_idx, pix[p_idx]).argmax(axis=1)
    box = np.zeros((T, (r1 - r0) * (c1 - c0)), dtype=np.uint8)
    box[:, pix] = lab.T
    out[:, r0:r1, c0:c1] = box.reshape(T, r1 - r0, c1 - c0)
    return out
