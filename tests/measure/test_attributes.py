"""Known-answer tests for the shape attributes (DESIGN §3), on masks built here in mm."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from echotemporal.measure.attributes import (
    ATTRIBUTE_NAMES,
    LvLandmarks,
    compute_attributes,
    lv_landmarks,
    lv_orientation_deg,
)
from echotemporal.core.errors import ConfigError, InvalidLabelsError

IDX = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
SPACING = (0.09, 0.13)  # (row_mm, col_mm): anisotropic on purpose


def _grid_mm(shape: tuple[int, int], spacing_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(y_mm, x_mm) of every pixel centre."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return rows * spacing_mm[0], cols * spacing_mm[1]


def _ellipse_mask(
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    center_mm: tuple[float, float],
    semi_long_mm: float,
    semi_short_mm: float,
    tilt_deg: float = 0.0,
) -> np.ndarray:
    """Ellipse whose long axis is ``tilt_deg`` from vertical, apex (top end) towards +x if positive."""
    y, x = _grid_mm(shape, spacing_mm)
    dy, dx = y - center_mm[0], x - center_mm[1]
    t = math.radians(tilt_deg)
    along = dx * math.sin(t) - dy * math.cos(t)  # towards the apex
    across = dx * math.cos(t) + dy * math.sin(t)
    return (along / semi_long_mm) ** 2 + (across / semi_short_mm) ** 2 <= 1.0


def _bullet_heart(
    spacing_mm: tuple[float, float],
    *,
    tilt_deg: float = 0.0,
    with_la: bool = True,
    shape: tuple[int, int] = (560, 340),
) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """Bullet-shaped LV (half-ellipse cap on a rectangle), MYO band open at the base, LA below.

    Returns the label map and the analytic landmarks in (y_mm, x_mm): hinges at the base corners
    of the LV, apex at the tip of the cap.
    """
    radius, cap, body, wall = 8.0, 16.0, 10.0, 3.0  # mm
    base = (35.0, 22.0)  # (y, x) mm of the middle of the mitral plane
    y, x = _grid_mm(shape, spacing_mm)
    t = math.radians(tilt_deg)
    dy, dx = y - base[0], x - base[1]
    up = dx * math.sin(t) - dy * math.cos(t)  # distance from the base plane towards the apex
    side = dx * math.cos(t) + dy * math.sin(t)  # signed distance from the long axis, +x side

    def bullet(r: float, h: float) -> np.ndarray:
        rect = (up >= 0) & (up <= body) & (np.abs(side) <= r)
        dome = (up > body) & ((side / r) ** 2 + ((up - body) / h) ** 2 <= 1.0)
        return rect | dome

    lv = bullet(radius, cap)
    myo = bullet(radius + wall, cap + wall) & ~lv
    labels = np.zeros(shape, np.uint8)
    labels[myo] = 2
    labels[lv] = 1
    if with_la:
        la = ((side / 10.0) ** 2 + ((up + 7.0) / 7.0) ** 2 <= 1.0) & (up < 0)
        labels[la & (labels == 0)] = 3

    def at(u: float, s: float) -> tuple[float, float]:
        return (base[0] - u * math.cos(t) + s * math.sin(t), base[1] + u * math.sin(t) + s * math.cos(t))

    truth = {"hinge_left": at(0.0, -radius), "hinge_right": at(0.0, radius), "apex": at(body + cap, 0.0)}
    return labels, truth


def _px_to_mm(point: tuple[float, float], spacing_mm: tuple[float, float]) -> np.ndarray:
    return np.array([point[0] * spacing_mm[0], point[1] * spacing_mm[1]])


def test_names_and_shape() -> None:
    labels, _ = _bullet_heart(SPACING)
    out = compute_attributes(np.stack([labels, labels, labels]), SPACING)
    assert out.shape == (3, len(ATTRIBUTE_NAMES)) and out.dtype == np.float64
    assert ATTRIBUTE_NAMES[0] == "lv_area_mm2" and ATTRIBUTE_NAMES[-1] == "epi_center_y_mm"
    assert np.all(np.isfinite(out))
    # One (H, W) frame is a sequence of one.
    single = compute_attributes(labels, SPACING)
    assert single.shape == (1, 7)
    np.testing.assert_array_equal(single[0], out[0])


def test_ellipse_areas_and_centroid_in_mm() -> None:
    spacing = (0.06, 0.085)
    shape = (900, 560)
    center = (28.0, 23.0)  # (y, x) mm
    outer = _ellipse_mask(shape, spacing, center, 24.0, 18.0)
    inner = _ellipse_mask(shape, spacing, center, 20.0, 13.0)
    labels = np.zeros(shape, np.uint8)
    labels[outer] = 2
    labels[inner] = 1
    with warnings.catch_warnings():
        # A closed ring has no mitral hinge: length/base are NaN by design, not under test here.
        warnings.simplefilter("ignore", UserWarning)
        out = compute_attributes(labels, spacing)[0]
    assert out[IDX["lv_area_mm2"]] == pytest.approx(math.pi * 20.0 * 13.0, rel=0.01)
    assert out[IDX["myo_area_mm2"]] == pytest.approx(math.pi * (24.0 * 18.0 - 20.0 * 13.0), rel=0.01)
    assert out[IDX["epi_center_y_mm"]] == pytest.approx(center[0], abs=spacing[0])
    assert out[IDX["epi_center_x_mm"]] == pytest.approx(center[1], abs=spacing[1])
    assert out[IDX["lv_orientation_deg"]] == pytest.approx(0.0, abs=0.5)


@pytest.mark.parametrize("tilt", [-60.0, -25.0, -7.0, 0.0, 12.0, 33.0, 80.0])
def test_orientation_of_rotated_ellipse_on_anisotropic_pixels(tilt: float) -> None:
    spacing = (0.1, 0.25)  # strongly anisotropic: a pixel-space angle would be far off
    shape = (500, 200)
    mask = _ellipse_mask(shape, spacing, (25.0, 25.0), 18.0, 7.0, tilt)
    rows, cols = np.nonzero(mask)
    assert lv_orientation_deg(rows, cols, spacing) == pytest.approx(tilt, abs=1.0)
    if tilt != 0.0:
        # Sign convention, checked on the mask itself: the top (apical) end lies on the +x side
        # of the centre when the tilt is positive.
        top = rows == rows.min()
        assert np.sign(cols[top].mean() * spacing[1] - 25.0) == np.sign(tilt)


@pytest.mark.parametrize(("built", "expected"), [(100.0, -80.0), (-95.0, 85.0), (170.0, -10.0)])
def test_orientation_wraps_to_half_open_interval(built: float, expected: float) -> None:
    spacing = (0.1, 0.1)
    mask = _ellipse_mask((500, 500), spacing, (25.0, 25.0), 20.0, 6.0, built)
    rows, cols = np.nonzero(mask)
    assert lv_orientation_deg(rows, cols, spacing) == pytest.approx(expected, abs=1.0)


def test_horizontal_axis_is_plus_90_not_minus_90() -> None:
    cols = np.arange(40)
    rows = np.full_like(cols, 7)
    assert lv_orientation_deg(rows, cols, (0.3, 0.2)) == 90.0


def test_orientation_attribute_sign_in_compute_attributes() -> None:
    labels, _ = _bullet_heart(SPACING, tilt_deg=15.0)
    out = compute_attributes(labels, SPACING)[0]
    assert out[IDX["lv_orientation_deg"]] == pytest.approx(15.0, abs=1.5)


@pytest.mark.parametrize(("tilt", "with_la"), [(0.0, True), (0.0, False), (18.0, True), (-12.0, False)])
def test_bullet_landmarks_base_width_and_length(tilt: float, with_la: bool) -> None:
    labels, truth = _bullet_heart(SPACING, tilt_deg=tilt, with_la=with_la)
    marks = lv_landmarks(labels, SPACING)
    assert isinstance(marks, LvLandmarks)
    tol_mm = 1.5 * math.hypot(*SPACING)  # about one pixel: landmarks are pixel centres
    for name in ("hinge_left", "hinge_right", "apex"):
        got = _px_to_mm(getattr(marks, name), SPACING)
        # The dome is nearly flat at its tip: pixels up to ~1 mm aside are as far from the base.
        tol = 1.0 if name == "apex" else tol_mm
        assert np.linalg.norm(got - np.array(truth[name])) <= tol, name
    assert marks.hinge_left[1] < marks.hinge_right[1]
    out = compute_attributes(labels, SPACING)[0]
    assert out[IDX["lv_base_width_mm"]] == pytest.approx(16.0, abs=tol_mm)
    assert out[IDX["lv_length_mm"]] == pytest.approx(26.0, abs=tol_mm)
    # Area of the bullet: rectangle 16x10 plus half-ellipse 8x16.
    assert out[IDX["lv_area_mm2"]] == pytest.approx(160.0 + 0.5 * math.pi * 8.0 * 16.0, rel=0.01)


def test_off_centre_mitral_opening_still_gives_one_hinge_per_side() -> None:
    # MYO closes the left part of the base (as in some CAMUS frames): the mitral opening spans only
    # side in [2, 8] mm, off the LV long axis; hinges are its two ends.
    labels, truth = _bullet_heart(SPACING, with_la=True)
    y, x = _grid_mm(labels.shape, SPACING)
    base_y, mid_x = truth["hinge_left"][0], 0.5 * (truth["hinge_left"][1] + truth["hinge_right"][1])
    closed = (labels == 1) & (y > base_y - 2.0) & (x < mid_x + 2.0)
    labels[closed] = 2
    marks = lv_landmarks(labels, SPACING)
    assert marks is not None
    tol_mm = 1.5 * math.hypot(*SPACING)
    expected_left = np.array([base_y, mid_x + 2.0])
    assert np.linalg.norm(_px_to_mm(marks.hinge_left, SPACING) - expected_left) <= tol_mm
    assert np.linalg.norm(_px_to_mm(marks.hinge_right, SPACING) - np.array(truth["hinge_right"])) <= tol_mm
    out = compute_attributes(labels, SPACING)[0]
    assert out[IDX["lv_base_width_mm"]] == pytest.approx(6.0, abs=tol_mm)


def test_lv_touching_image_border_makes_no_false_hinge() -> None:
    labels, _ = _bullet_heart(SPACING, with_la=False)
    # Cut the image just below the base: the LV base now touches the image border, not background.
    base_row = int(np.nonzero(labels == 1)[0].max())
    cut = labels[: base_row + 1]
    assert lv_landmarks(labels, SPACING) is not None
    assert lv_landmarks(cut, SPACING) is None
    with pytest.warns(UserWarning, match=r"frame\(s\) \[0\]"):
        out = compute_attributes(cut, SPACING)
    assert np.isnan(out[0, IDX["lv_length_mm"]])


def test_empty_frame_gives_nan_and_warning_naming_it() -> None:
    labels, _ = _bullet_heart(SPACING)
    seq = np.stack([labels, np.zeros_like(labels), labels])
    with pytest.warns(UserWarning, match=r"frame\(s\) \[1\].*no LV and no MYO"):
        out = compute_attributes(seq, SPACING)
    assert np.all(np.isfinite(out[[0, 2]]))
    assert out[1, IDX["lv_area_mm2"]] == 0.0 and out[1, IDX["myo_area_mm2"]] == 0.0
    others = [IDX[n] for n in ATTRIBUTE_NAMES if not n.endswith("area_mm2")]
    assert np.all(np.isnan(out[1, others]))
    assert lv_landmarks(np.zeros_like(labels), SPACING) is None


def test_a_silenced_measure_gives_the_same_numbers_without_a_warning() -> None:
    labels, _ = _bullet_heart(SPACING)
    seq = np.stack([labels, np.zeros_like(labels)])
    with pytest.warns(UserWarning, match="no LV and no MYO"):
        said = compute_attributes(seq, SPACING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        silent = compute_attributes(seq, SPACING, warn=False)
    np.testing.assert_array_equal(said, silent)
    assert np.isnan(silent[1, IDX["lv_length_mm"]])


def test_frame_without_myo_gives_nan_length_and_width() -> None:
    labels, _ = _bullet_heart(SPACING)
    labels[labels == 2] = 0
    with pytest.warns(UserWarning, match=r"frame\(s\) \[0\].*no MYO"):
        out = compute_attributes(labels, SPACING)[0]
    assert np.isnan(out[IDX["lv_length_mm"]]) and np.isnan(out[IDX["lv_base_width_mm"]])
    assert out[IDX["lv_area_mm2"]] > 0 and np.isfinite(out[IDX["lv_orientation_deg"]])
    assert out[IDX["myo_area_mm2"]] == 0.0
    assert lv_landmarks(labels, SPACING) is None


def test_frame_without_lv_gives_nan_lv_shape() -> None:
    labels, _ = _bullet_heart(SPACING)
    labels[labels == 1] = 0
    with pytest.warns(UserWarning, match="no LV"):
        out = compute_attributes(labels, SPACING)[0]
    assert out[IDX["lv_area_mm2"]] == 0.0
    assert np.isnan(out[[IDX["lv_orientation_deg"], IDX["lv_length_mm"], IDX["lv_base_width_mm"]]]).all()
    assert np.isfinite(out[IDX["epi_center_x_mm"]])


def test_user_errors_are_specific() -> None:
    with pytest.raises(ConfigError, match="spacing_mm"):
        compute_attributes(np.zeros((4, 4), np.uint8), (0.0, 0.3))
    with pytest.raises(ConfigError, match="spacing_mm"):
        compute_attributes(np.zeros((4, 4), np.uint8), (0.3,))
    with pytest.raises(InvalidLabelsError, match="shape"):
        compute_attributes(np.zeros((2, 2, 4, 4), np.uint8), (0.3, 0.3))
    with pytest.raises(InvalidLabelsError, match="dtype"):
        compute_attributes(np.zeros((4, 4), np.float32), (0.3, 0.3))


def test_phantom_sequence_has_no_nan_attributes() -> None:
    from echotemporal import phantoms
    if not hasattr(phantoms, "generate_sequence"):
        pytest.skip("phantoms.generate_sequence not available yet")
    seq = phantoms.generate_sequence(0, n_frames=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = compute_attributes(seq.labels, seq.spacing_mm)
    assert out.shape == (seq.labels.shape[0], 7)
    assert np.all(np.isfinite(out))


def test_kernel_median_matches_numpy_median():
    from echotemporal.measure.attributes import _median

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 7, 100, 101):
        values = rng.normal(size=n)
        assert _median(values) == np.median(values)


def test_a_remeasured_subset_names_the_sequences_frames() -> None:
    """Re-measuring only the changed frames of a sequence: the warning names the sequence's frame (3),
    not the frame's place in the subset (0); the CLI then shows it 1-based (frame 4)."""
    from echotemporal.cli import _cli_message
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds

    labels, _ = _bullet_heart(SPACING)
    seq = np.stack([labels] * 5)
    thresholds = load_thresholds()
    before = measure_shape(seq, SPACING, thresholds, validity=False)
    changed = seq.copy()
    changed[3][changed[3] == 2] = 0  # frame 3 (0-based) loses its MYO
    with pytest.warns(UserWarning, match=r"frame\(s\) \[3\] \(0-based\): no MYO") as caught:
        measure_shape(changed, SPACING, thresholds, reference=(seq, before), validity=False)
    assert len(caught) == 1 and "[0]" not in str(caught[0].message)
    assert "frame(s) 4: no MYO" in _cli_message(caught[0].message)
    with pytest.raises(ValueError, match="frame_numbers"):
        compute_attributes(seq[:2], SPACING, frame_numbers=[3])
