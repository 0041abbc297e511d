"""Baselines without a shape model: the temporal Gaussian of one-hot label maps (the reference's), and
the clean-up users do by hand before it (largest component per label, holes filled)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echotemporal.correct.cleanup import cleanup_labels
from echotemporal.measure.sequence import heart_box, present_labels

__all__ = ["gaussian_smooth_labels", "lcc_gaussian_labels"]


def gaussian_smooth_labels(labels: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Temporal Gaussian filter of one-hot label maps, then argmax (the reference's baseline).

    Args:
        labels: (T, H, W) uint8 label map (not modified).
        sigma_frames: temporal standard deviation in frames (DESIGN.md: 0.05·T).

    Returns:
        (T, H, W) uint8 smoothed label map.
    """
    labels = np.asarray(labels)
    if sigma_frames <= 0 or len(labels) < 2:
        return labels.copy()
    rows, cols = heart_box(labels, margin=1)  # outside the heart everything stays background
    crop = labels[:, rows, cols].copy()  # a copy even where the box is the whole image
    flat = crop.reshape(len(crop), -1)
    # A pixel with one label throughout keeps it: only the band swept by the borders is filtered.
    varying = np.flatnonzero((flat != flat[:1]).any(axis=0))
    if varying.size:
        flat[:, varying] = _gaussian_vote(flat[:, varying], float(sigma_frames))
    out = np.zeros_like(labels)
    out[:, rows, cols] = crop
    return out


#: Largest number of distinct label windows :func:`_gaussian_vote` tabulates (else it filters).
_MAX_WINDOW_CODES = 1 << 20


def _gaussian_vote(sub: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Argmax over classes of the temporal Gaussian of the one-hot (T, V) uint8 label columns ``sub``.

    The filter (``scipy.ndimage.gaussian_filter1d``, mode "nearest", radius r) gives frame t a
    function of the labels of frames t−r..t+r only (clipped at the ends). Each such window is coded
    as one integer; the windows that occur are filtered once each, with the same scipy call (so the
    same floating-point sums and ties), and every (frame, pixel) looks its window up. Where the
    windows could be too many, the columns are filtered directly.

    Returns:
        (T, V) uint8 labels.
    """
    n_classes = int(sub.max()) + 1
    classes = np.arange(n_classes, dtype=sub.dtype)[:, None, None]
    radius = int(4.0 * sigma_frames + 0.5)  # scipy's default truncate = 4.0
    width = 2 * radius + 1
    if n_classes**width > _MAX_WINDOW_CODES:
        onehot = (sub[None] == classes).astype(np.float32)
        return ndimage.gaussian_filter1d(onehot, sigma_frames, axis=1, mode="nearest").argmax(axis=0).astype(sub.dtype)
    n = len(sub)
    padded = np.pad(sub.astype(np.int32), ((radius, radius), (0, 0)), mode="edge")  # "nearest" ends
    code = padded[:n].copy()
    for j in range(1, width):  # Horner: the window's first frame is the most significant digit
        code *= n_classes
        code += padded[j : j + n]
    seen = np.zeros(n_classes**width, dtype=bool)
    seen[code.ravel()] = True
    codes = np.flatnonzero(seen)
    digits = (codes[None, :] // n_classes ** np.arange(width - 1, -1, -1)[:, None]) % n_classes  # (width, U)
    onehot = (digits[None] == classes).astype(np.float32)  # (C, width, U)
    votes = ndimage.gaussian_filter1d(onehot, sigma_frames, axis=1, mode="nearest")[:, radius]
    table = np.zeros(n_classes**width, dtype=sub.dtype)
    table[codes] = votes.argmax(axis=0)
    return table[code]


def lcc_gaussian_labels(labels: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Largest component per label and holes filled in every frame, then :func:`gaussian_smooth_labels`.

    Args:
        labels: (T, H, W) uint8 label map (not modified).
        sigma_frames: temporal standard deviation in frames.

    Returns:
        (T, H, W) uint8 labels.
    """
    labels = np.asarray(labels)
    rows, cols = heart_box(labels, margin=2)
    cleaned = labels.copy()
    cleaned[:, rows, cols] = cleanup_labels(np.ascontiguousarray(labels[:, rows, cols]), present_labels(labels))
    return gaussian_smooth_labels(cleaned, sigma_frames)
