"""Known answers for the index curves' filters: the same numbers as ``scipy.signal`` (which the package
does not import at run time, for its 0.4 s import), on random, noisy-cycle and flat-topped curves."""

from __future__ import annotations

import numpy as np
import pytest

from echotemporal.measure.clinical.filters import find_peaks, savgol_filter

signal = pytest.importorskip("scipy.signal")


def _curves():
    rng = np.random.default_rng(5)
    for n in (5, 6, 9, 20, 47):
        yield rng.normal(size=n)
        t = np.arange(n)
        yield 100 + 30 * np.cos(2 * np.pi * t / 17) + rng.normal(0, 2, n)  # a volume curve, 2 mL noise
    yield np.array([1.0, 3, 3, 3, 1, 2, 2, 5, 5, 4, 4, 4, 0, 2, 2])  # flat tops, ties, a plateau at the end
    half = 100 - 40 * np.sin(np.linspace(0, np.pi / 2, 12)) + rng.normal(0, 1, 12)
    yield np.concatenate([half, half[-2:0:-1]])  # a mirrored cycle: every value tied with its mirror


@pytest.mark.parametrize("window,order,deriv,delta", [(5, 2, 0, 1.0), (5, 3, 1, 0.04), (5, 3, 1, 1.0), (7, 2, 2, 0.5)])
def test_savgol_filter_matches_scipy_interp_mode(window, order, deriv, delta):
    for x in _curves():
        if len(x) < window:
            with pytest.raises(ValueError):
                savgol_filter(x, window, order, deriv=deriv, delta=delta)
            continue
        expected = signal.savgol_filter(x, window, order, deriv=deriv, delta=delta, mode="interp")
        # Bit for bit: a curve with exact ties (repeated frames) must pick the same extremum as before.
        np.testing.assert_array_equal(savgol_filter(x, window, order, deriv=deriv, delta=delta), expected)


@pytest.mark.parametrize("prominence,distance", [(0.0, 1), (0.5, 1), (1.5, 2), (5.0, 3), (20.0, 6)])
def test_find_peaks_matches_scipy(prominence, distance):
    for x in _curves():
        for curve in (x, -x):
            ours, props = find_peaks(curve, prominence=prominence, distance=distance)
            theirs, their_props = signal.find_peaks(curve, prominence=prominence, distance=distance)
            np.testing.assert_array_equal(ours, theirs)
            np.testing.assert_allclose(props["prominences"], their_props["prominences"])


def test_find_peaks_takes_the_middle_of_a_flat_top_and_skips_the_ends():
    x = np.array([5.0, 1, 4, 4, 4, 4, 2, 3, 6])
    peaks, props = find_peaks(x, prominence=0.0)
    assert peaks.tolist() == [3]  # (2 + 5) // 2; frames 0 and 8 are ends
    assert props["prominences"].tolist() == [2.0]  # down to 2 on the right before the higher 6


def test_the_clinical_modules_do_not_import_scipy_signal():
    import subprocess
    import sys

    code = ("import sys, echotemporal.measure.clinical, echotemporal.correct.smoothing; "
            "print('scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
