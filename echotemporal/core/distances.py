"""Signed distance maps of label maps, in mm: shapes that can be interpolated and perturbed.

Each label's signed Euclidean distance (negative inside) on anisotropic pixels; the arg-min over
labels gives the label map back exactly, and interpolating the distances in time moves shared
borders continuously, without gaps or overlaps. Used by the phantom generators (real-shape
sequences, corruptions) and by the correction's last resort (``pipeline.correction``), which
interpolates a frame between its good neighbours.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echotemporal.core.boxes import grow
from echotemporal.core.parallel import kernel_threads, map_threads

__all__ = ["signed_distance", "label_distances", "labels_from_distances"]

_N_LABELS = 4


def signed_distance(mask: np.ndarray, sampling: tuple[float, float] | None = None) -> np.ndarray:
    """Signed Euclidean distance to a mask's boundary, negative inside.

    Args:
        mask: (H, W) bool.
        sampling: (row, col) pixel size; None = pixel units.

    Returns:
        (H, W) float64; +inf-free: an empty mask gives a large positive constant, a full mask a
        large negative one.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.full(mask.shape, 1e6)
    if mask.all():
        return np.full(mask.shape, -1e6)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    # Half the smallest pixel step puts the zero level between pixel centres, so the arg-min over
    # labels of unperturbed distances returns the input labels exactly.
    half = 0.5 * (min(sampling) if sampling is not None else 1.0)
    return np.where(mask, half - inside, outside - half)


def label_distances(labels: np.ndarray, sampling: tuple[float, float] | None = None,
                    cap: float | None = None) -> np.ndarray:
    """Signed distance of every label (0..3) of one frame, with one distance transform per label.

    The distance from a pixel of label k to the nearest non-k pixel is the smallest distance to any
    other label, so the four "outside" transforms give the inside distances too (exactly).

    Args:
        labels: (H, W) uint8 label map.
        sampling: (row, col) pixel size; None = pixel units.
        cap: if given, distances are only needed up to this magnitude: each transform runs on the
            label's bounding box grown by ``cap`` and the rest is set to ``cap`` (faster, same arg-min
            wherever perturbations stay below ``cap``).

    Returns:
        (4, H, W) float64 signed distances, negative inside the label.
    """
    h, w = labels.shape
    big = 1e6 if cap is None else float(cap)
    step = (1.0, 1.0) if sampling is None else (float(sampling[0]), float(sampling[1]))
    outside = np.full((_N_LABELS, h, w), big)
    masks = [labels == k for k in range(_N_LABELS)]

    def transform(k: int) -> None:  # the label's "outside" distance, into its own plane of ``outside``
        mask = masks[k]
        if cap is None:
            box = (slice(None), slice(None))
        else:
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            tight = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
            box = grow(tight, (int(np.ceil(cap / step[0])) + 1, int(np.ceil(cap / step[1])) + 1), (h, w))
        dist = ndimage.distance_transform_edt(~mask[box], sampling=sampling)
        outside[(k, *box)] = dist if cap is None else np.minimum(dist, big)

    # The transforms release the GIL: one thread per label (the same numbers whatever the count).
    map_threads(transform, [k for k, mask in enumerate(masks) if mask.any()], kernel_threads())
    # Half the smallest pixel step puts the zero level between pixel centres (see signed_distance).
    half = 0.5 * min(step)
    out = outside - half
    others = np.full((h, w), np.inf)
    for k, mask in enumerate(masks):
        np.minimum(others, np.where(mask, np.inf, outside[k]), out=others)
    for k, mask in enumerate(masks):
        out[k][mask] = half - others[mask]
    return out


def labels_from_distances(distances: np.ndarray) -> np.ndarray:
    """Label map as the arg-min of per-label signed distances.

    Every pixel gets exactly one label, so perturbing or interpolating the distances moves shared
    borders (LV/LA at the mitral plane) without opening gaps or creating overlaps.

    Args:
        distances: (4, ..., H, W) signed distances for labels 0..3.

    Returns:
        (..., H, W) uint8 labels.
    """
    return np.argmin(distances, axis=0).astype(np.uint8)
