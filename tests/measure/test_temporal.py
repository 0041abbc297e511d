"""Tests for echotemporal.measure.temporal: metric, thresholds and detection."""

from __future__ import annotations

import numpy as np
import pytest

from echotemporal.core.errors import ConfigError, InputFileError
from echotemporal.measure.temporal import AttributeThresholds, consistency_metric, detect_inconsistent_frames, load_thresholds

from echotemporal.measure.attributes import ATTRIBUTE_NAMES  # noqa: E402 - the order the thresholds file follows


def _thresholds(k: int = 3) -> AttributeThresholds:
    return AttributeThresholds(
        names=tuple(f"a{i}" for i in range(k)), lo=np.zeros(k), hi=np.full(k, 100.0), tau=np.full(k, 0.02)
    )


def test_metric_known_answer():
    m = consistency_metric(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), lo=0.0, hi=2.0)
    np.testing.assert_allclose(m, [0.0, -0.25, 0.5, -0.25, 0.0])


def test_metric_of_linear_trajectory_is_zero_in_every_column():
    t = np.arange(12.0)
    values = np.stack([1000 + 50 * t, 80 - 2.5 * t, 3.0 * t], axis=1)
    m = consistency_metric(values, lo=[500, 40, -40], hi=[4500, 110, 40])
    assert m.shape == (12, 3)
    np.testing.assert_allclose(m, 0.0, atol=1e-14)


def test_metric_short_sequences_and_bad_bounds():
    np.testing.assert_array_equal(consistency_metric(np.array([1.0, 5.0]), 0.0, 1.0), [0.0, 0.0])
    with pytest.raises(ValueError, match="lo < hi"):
        consistency_metric(np.arange(5.0), 1.0, 1.0)


def test_metric_nan_frame_neighbours_use_measurable_frames():
    a = 10.0 + 2.0 * np.arange(8.0)
    a[3] = np.nan
    m = consistency_metric(a, 0.0, 100.0)
    assert np.isnan(m[3])
    # Frames 2 and 4 are compared with the interpolation of frames (1, 4) and (2, 5): still linear.
    np.testing.assert_allclose(np.delete(m, 3), 0.0, atol=1e-14)


# ---- thresholds -----------------------------------------------------------------------------------


def test_packaged_thresholds_load_with_the_seven_attributes():
    th = load_thresholds()
    assert th.names == ATTRIBUTE_NAMES
    for arr in (th.lo, th.hi, th.tau):
        assert arr.shape == (7,) and np.all(np.isfinite(arr))
    assert np.all(th.lo < th.hi)
    assert np.all(th.tau > 0)
    # DESIGN §4.1 order of magnitude: a frame may sit some tens of mm² off its neighbours' mean.
    assert 20.0 < th.tolerance[th.index("lv_area_mm2")] < 300.0


def test_thresholds_attribute_names_match_attributes_module():
    from echotemporal.measure import attributes
    assert load_thresholds().names == tuple(attributes.ATTRIBUTE_NAMES)


def test_load_thresholds_errors(tmp_path):
    with pytest.raises(InputFileError, match="missing.yaml"):
        load_thresholds(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("attributes:\n  lv_area_mm2: {lo: 10, hi: 5, tau: 0.1}\n")
    with pytest.raises(ConfigError, match="lo must be < hi.*lv_area_mm2"):
        load_thresholds(bad)
    bad.write_text("attributes:\n  lv_area_mm2: {lo: 1, hi: 5}\n")
    with pytest.raises(ConfigError, match="lo, hi and tau"):
        load_thresholds(bad)


# ---- detection ------------------------------------------------------------------------------------


def test_detection_flags_a_single_frame_jump_only():
    th = _thresholds()
    t = np.arange(15.0)
    attrs = np.stack([20 + t, 60 - 0.5 * t, np.full(15, 50.0)], axis=1)
    assert not detect_inconsistent_frames(attrs, th).any()
    attrs[6, 0] += 1.5 * th.tolerance[0]  # m_6 = 1.5 tau; neighbours get -0.75 tau
    flags = detect_inconsistent_frames(attrs, th)
    expected = np.zeros_like(flags)
    expected[6, 0] = True
    np.testing.assert_array_equal(flags, expected)


def test_detection_nan_rule():
    th = _thresholds()
    attrs = np.stack([20 + np.arange(10.0), np.full(10, np.nan), np.full(10, 50.0)], axis=1)
    attrs[4, 0] = np.nan
    flags = detect_inconsistent_frames(attrs, th)
    # A missing measurement among measurable frames is a glitch; its linear neighbours are not;
    # an attribute unmeasurable throughout is nobody's temporal glitch.
    assert flags[4, 0] and flags[:, 0].sum() == 1
    assert not flags[:, 1:].any()
    # T < 3: nothing to compare with, nothing flagged, even NaN.
    assert not detect_inconsistent_frames(attrs[:2], th).any()


def test_detection_rejects_wrong_columns():
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        detect_inconsistent_frames(np.zeros((5, 7)), _thresholds())
