"""Canonical alignment: known-answer tests on analytic ellipse hearts."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
import pytest

from echotemporal.model.alignment import (
    fit_alignment,
    probabilities_to_native,
    probabilities_to_native_labels,
    to_grid,
)
from echotemporal.core.config import AlignmentConfig


def ellipse_heart(T: int = 6, shape=(260, 200), spacing=(0.3, 0.45), tilt_deg: float = 0.0, center_mm=(36.0, 45.0)):
    """(T, H, W) LV ellipse + MYO cap open at the base + LA below; LV shrinks over time; tilt in degrees."""
    H, W = shape
    rr, cc = np.meshgrid(np.arange(H) * spacing[0], np.arange(W) * spacing[1], indexing="ij")
    th = np.radians(tilt_deg)
    y, x = rr - center_mm[0], cc - center_mm[1]
    # Axis coordinates: along the long axis (apex at negative yr) and across it.
    yr = np.cos(th) * y + np.sin(th) * x
    xr = -np.sin(th) * y + np.cos(th) * x
    out = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        s = 1.0 - 0.25 * t / max(T - 1, 1)
        lv = (yr / (24 * s)) ** 2 + (xr / (10 * s)) ** 2 < 1
        epi = (yr / (24 * s + 5)) ** 2 + (xr / (10 * s + 5)) ** 2 < 1
        out[t][epi & (yr < 12 * s)] = 2
        out[t][lv] = 1
        out[t][(yr > 14 * s) & (yr < 30) & (np.abs(xr) < 9) & (out[t] == 0)] = 3
    return out


def onehot(grid_labels: np.ndarray) -> np.ndarray:
    lab = np.where(grid_labels == 3, 0, grid_labels)
    return np.eye(3, dtype=np.float32)[lab].transpose(0, 3, 1, 2)


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("tilt", [0.0, 20.0])
def test_round_trip_dice_at_native_resolution(tilt):
    labels = ellipse_heart(tilt_deg=tilt)
    spacing = (0.3, 0.45)
    al = fit_alignment(labels, spacing, AlignmentConfig(grid_size=128))
    grid = to_grid(labels, al)
    assert grid.shape == (6, 128, 128) and grid.dtype == np.uint8
    back = probabilities_to_native(onehot(grid), al)
    assert back.shape == (6, 3) + labels.shape[1:] and back.dtype == np.float32
    np.testing.assert_allclose(back.sum(axis=1), 1.0, atol=1e-5)
    rec = back.argmax(axis=1)
    for t in range(labels.shape[0]):
        assert dice(labels[t] == 1, rec[t] == 1) >= 0.98
        assert dice(labels[t] == 2, rec[t] == 2) >= 0.93
    # The label-only fast path gives the same argmax.
    fast = probabilities_to_native_labels(onehot(grid), al)
    assert (fast == rec).mean() > 0.999
    # Soft probabilities (blurred, noisy): most border pixels take the interpolated path.
    rng = np.random.default_rng(1)
    soft = np.exp(ndimage.gaussian_filter(4.0 * onehot(grid) + rng.normal(0.0, 1.0, (6, 3, 128, 128)), (0, 0, 2, 2)))
    soft = (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)
    slow = probabilities_to_native(soft, al).argmax(axis=1)
    assert (probabilities_to_native_labels(soft, al) == slow).mean() > 0.9999


def test_rotation_removes_known_tilt_and_apex_goes_up():
    labels = ellipse_heart(tilt_deg=25.0, spacing=(0.45, 0.45), shape=(200, 200))
    al = fit_alignment(labels, (0.45, 0.45))
    assert abs(abs(al.angle_deg) - 25.0) < 1.5
    grid = to_grid(labels, al)
    rows, cols = np.nonzero(grid[0] == 1)
    cov = np.cov(np.stack([rows, cols]))
    # Long axis vertical: row variance dominates and the row/col covariance is small.
    assert cov[0, 0] > 3 * cov[1, 1]
    assert abs(cov[0, 1]) < 0.1 * cov[0, 0]
    # Apex up: the MYO cap (apex) is above the LA.
    assert np.nonzero(grid[0] == 3)[0].mean() > np.nonzero(grid[0] == 2)[0].min() + 40


def test_fill_fraction_sets_extent():
    labels = ellipse_heart()
    cfg = AlignmentConfig(grid_size=64, fill_fraction=0.5)
    grid = to_grid(labels, fit_alignment(labels, (0.3, 0.45), cfg))
    heart = (grid == 1) | (grid == 2)
    rows = np.flatnonzero(heart.any(axis=(0, 2)))
    # Largest half-extent ≈ 0.5 * 32 px from the centre.
    assert 28 <= rows[-1] - rows[0] + 1 <= 34


def test_one_transform_per_sequence_keeps_frame_shifts():
    labels = ellipse_heart(T=5)
    shifted = labels.copy()
    shifted[2] = np.roll(labels[2], 20, axis=1)  # an abrupt 9 mm lateral jump of frame 2
    al = fit_alignment(shifted, (0.3, 0.45))
    grid = to_grid(shifted, al)
    cx = [np.nonzero(grid[t] == 1)[1].mean() for t in range(5)]
    # Frame-by-frame registration would hide the jump; the sequence transform must keep it.
    assert cx[2] - (cx[1] + cx[3]) / 2 > 5
    # Every frame uses the same transform: aligning one frame alone with it gives the same grid frame.
    np.testing.assert_array_equal(to_grid(shifted[3:4], al)[0], grid[3])


def test_empty_sequence_warns_and_survives():
    labels = np.zeros((3, 50, 40), np.uint8)
    with pytest.warns(UserWarning, match="no LV or MYO"):
        al = fit_alignment(labels, (0.3, 0.3), AlignmentConfig(grid_size=32))
    assert to_grid(labels, al).shape == (3, 32, 32)
    probs = np.zeros((3, 3, 32, 32), np.float32)
    probs[:, 0] = 1
    assert probabilities_to_native_labels(probs, al).max() == 0


def test_kernel_to_grid_matches_slow_majority_of_sub_samples_ties_to_lower_label():
    """Against a plain count of the 3x3 nearest-neighbour votes, on random labels and a transform
    reaching outside the image (outside votes are background)."""
    from echotemporal.model.alignment import _SUPERSAMPLE, _grid_to_native_affine

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(2, 40, 30)).astype(np.uint8)
    labels[:, 10:30, 8:22] = 1  # an LV so that fit_alignment has a heart
    al = fit_alignment(labels, (0.5, 0.5), AlignmentConfig(grid_size=16, fill_fraction=1.3))
    grid = to_grid(labels, al)
    G, k = al.grid_size, _SUPERSAMPLE
    A, b = _grid_to_native_affine(al)
    sub = (np.arange(G * k) + 0.5) / k - 0.5
    expected = np.zeros_like(grid)
    n_outside = 0
    for i in range(G):
        for j in range(G):
            votes = np.zeros((2, 4), dtype=int)
            for si in sub[i * k : (i + 1) * k]:
                for sj in sub[j * k : (j + 1) * k]:
                    r, c = np.rint(A @ [si, sj] + b).astype(int)
                    inside = 0 <= r < 40 and 0 <= c < 30
                    n_outside += not inside
                    for t in range(2):
                        votes[t, labels[t, r, c] if inside else 0] += 1
            expected[:, i, j] = votes.argmax(axis=1)  # first maximum: the lower label
    assert n_outside > 0  # the outside rule was exercised
    np.testing.assert_array_equal(grid, expected)
