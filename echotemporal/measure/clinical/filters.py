"""The two 1-D filters the index curves need, computed as ``scipy.signal`` computes them.

``scipy.signal.savgol_filter`` and ``scipy.signal.find_peaks`` are what the volume curve needs, but
importing ``scipy.signal`` pulls in ``scipy.stats`` and costs about 0.4 s per process, a third of
an ``echotemporal smooth`` call on a CAMUS sequence (``python -X importtime``). The two algorithms are
short and fully specified by their documentation, so they are reproduced here for the cases used:

* :func:`savgol_filter`: Savitzky-Golay smoothing or derivative, ``mode="interp"`` (least-squares
  polynomial over each window; the first and last half-windows evaluate the polynomial fitted to the
  first and last window);
* :func:`find_peaks`: local maxima (the middle of a flat top), thinned by ``distance`` (highest
  first), then kept where their prominence reaches ``prominence``.

``tests/measure/test_filters.py`` checks both against ``scipy.signal``, bit for bit, on random and flat curves.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from scipy import ndimage

__all__ = ["find_peaks", "savgol_filter"]


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-norm least-squares solution of a·c = b (LAPACK gelsd, singular values below
    eps·max(shape) of the largest dropped), as ``scipy.signal``'s own fits solve them."""
    return scipy.linalg.lstsq(a, b, cond=np.finfo(np.float64).eps * max(a.shape))[0]


def _edge_values(window: np.ndarray, polyorder: int, deriv: int, delta: float, at: np.ndarray) -> np.ndarray:
    """Value (or derivative) at positions ``at`` of the polynomial fitted to (w,) ``window`` sampled at 0..w-1."""
    steps = np.arange(len(window), dtype=np.float64)
    vander = steps[:, None] ** np.arange(polyorder, -1, -1, dtype=np.float64)[None, :]  # highest power first
    norms = np.sqrt(np.sum(vander * vander, axis=0))  # column scaling, for the conditioning
    coefficients = _least_squares(vander / norms, window[:, None])[:, 0] / norms
    return np.polyval(np.polyder(coefficients, deriv), at) / delta**deriv


def savgol_filter(x: np.ndarray, window_length: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """Savitzky-Golay filter of a 1-D curve, as ``scipy.signal.savgol_filter(..., mode="interp")``.

    Each sample away from the ends takes the ``deriv``-th derivative at the window's centre of the
    least-squares polynomial of degree ``polyorder`` through its window: a fixed linear combination
    of the window's samples. The first and last ``window_length // 2`` samples evaluate the polynomial
    fitted to the first and last window. The arithmetic is done in the same order as scipy's, so that
    the two agree to the last bit (curves with exact ties, e.g. repeated frames, break them alike).

    Args:
        x: (T,) float values, T >= ``window_length``.
        window_length: odd window (frames); polyorder: < window_length; deriv: derivative order;
        delta: sample spacing (the derivative is per unit of it).

    Returns:
        (T,) float64: the fitted value (or derivative) at every sample.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n, half = len(x), window_length // 2
    if window_length % 2 != 1 or not 0 <= polyorder < window_length or n < window_length:
        raise ValueError(f"savgol_filter: window {window_length}, order {polyorder} on {n} samples")
    if deriv > polyorder:
        return np.zeros(n)
    # Weights in convolution order (last sample of the window first): row ``deriv`` of the fit's
    # pseudo-inverse, scaled to a derivative per unit of ``delta``.
    reversed_offsets = np.arange(half, -half - 1, -1, dtype=np.float64)
    powers = reversed_offsets[None, :] ** np.arange(polyorder + 1, dtype=np.float64)[:, None]
    unit = np.zeros(polyorder + 1)
    unit[deriv] = math.factorial(deriv) / delta**deriv
    out = ndimage.convolve1d(x, _least_squares(powers, unit), mode="constant")
    out[:half] = _edge_values(x[:window_length], polyorder, deriv, delta, np.arange(half, dtype=np.float64))
    out[n - half :] = _edge_values(x[n - window_length :], polyorder, deriv, delta,
                                   np.arange(window_length - half, window_length, dtype=np.float64))
    return out


def _local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of samples above their left neighbour and followed, after any run of equal values,
    by a lower one: the middle of each flat top (rounded down); never the first or last sample."""
    peaks = []
    i, last = 1, len(x) - 1
    while i < last:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < last and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                peaks.append((i + ahead - 1) // 2)
                i = ahead
        i += 1
    return np.asarray(peaks, dtype=np.intp)


def _thin_by_distance(peaks: np.ndarray, heights: np.ndarray, distance: float) -> np.ndarray:
    """(n,) bool: peaks kept when, highest first, each removes the others closer than ``distance``."""
    reach = math.ceil(distance)
    keep = np.ones(len(peaks), dtype=bool)
    order = np.argsort(heights)  # the same sort as scipy's, so that equal heights resolve alike
    for j in order[::-1]:
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and peaks[j] - peaks[k] < reach:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < len(peaks) and peaks[k] - peaks[j] < reach:
            keep[k] = False
            k += 1
    return keep


def _prominences(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Height of each peak above the higher of the lowest points on each side before a higher sample."""
    out = np.empty(len(peaks))
    for n, p in enumerate(peaks):
        top = x[p]
        i = p
        while i >= 0 and x[i] <= top:
            i -= 1
        left = x[i + 1 : p + 1].min()
        i = p
        while i < len(x) and x[i] <= top:
            i += 1
        right = x[p:i].min()
        out[n] = top - max(left, right)
    return out


def find_peaks(x: np.ndarray, prominence: float, distance: float = 1.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Peaks of a 1-D curve, as ``scipy.signal.find_peaks(x, prominence=..., distance=...)``.

    Args:
        x: (T,) float values; prominence: smallest prominence kept (same units); distance: smallest
            spacing between kept peaks (samples, >= 1).

    Returns:
        ((m,) int peak indices, increasing; {"prominences": (m,) float}).
    """
    if distance < 1:
        raise ValueError(f"find_peaks: distance {distance} must be >= 1")
    x = np.asarray(x, dtype=np.float64).ravel()
    peaks = _local_maxima(x)
    if distance > 1 and len(peaks):
        peaks = peaks[_thin_by_distance(peaks, x[peaks], distance)]
    prominences = _prominences(x, peaks)
    keep = prominences >= prominence
    return peaks[keep], {"prominences": prominences[keep]}
