"""Analytic test hearts shared by the test modules."""

import numpy as np


def ellipse_heart(T=5, shape=(200, 160), spacing=(0.35, 0.5), scale=1.0):
    """(T, H, W) LV ellipse, MYO cap open at the base, LA below; the heart shrinks by 25 % over time."""
    H, W = shape
    rr, cc = np.meshgrid(np.arange(H) * spacing[0], np.arange(W) * spacing[1], indexing="ij")
    y, x = rr - 32.0, cc - 40.0
    out = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        s = scale * (1.0 - 0.25 * t / max(T - 1, 1))
        epi = (y / (24 * s + 5)) ** 2 + (x / (10 * s + 5)) ** 2 < 1
        out[t][epi & (y < 12 * s)] = 2
        out[t][(y / (24 * s)) ** 2 + (x / (10 * s)) ** 2 < 1] = 1
        out[t][(y > 14 * s) & (y < 30) & (np.abs(x) < 9) & (out[t] == 0)] = 3
    return out
