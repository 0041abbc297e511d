"""The turning-point fit of ED and ES (``correct.denoise``): known answers on weights and phantoms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from echotemporal.core.labels import LV
from echotemporal.correct.denoise import fit_turning_points, turning_frames, turning_point_weights
from echotemporal.measure.sequence import measure_shape
from echotemporal.measure.temporal import load_thresholds
from echotemporal.phantoms import annotation_jitter, generate_cycle_sequence, generate_sequence


def test_turning_point_weights_are_savitzky_golay_inside_and_exact_for_a_turning_quadratic_at_an_end():
    np.testing.assert_allclose(35 * turning_point_weights(np.arange(-2, 3)), [-3, 12, 17, 12, -3], atol=1e-9)
    one_sided = turning_point_weights(np.arange(4))
    np.testing.assert_allclose(one_sided, [0.5, 3 / 7, 3 / 14, -1 / 7], atol=1e-12)
    a, c = 7.3, -0.8
    assert one_sided @ (a + c * np.arange(4) ** 2) == pytest.approx(a)
    # The fit averages: independent flicker of variance 1 per frame keeps half of it at an end.
    assert one_sided @ one_sided == pytest.approx(0.5)


def _area(labels: np.ndarray, spacing: tuple[float, float], frames: tuple[int, ...]) -> np.ndarray:
    return np.array([(labels[t] == LV).sum() * spacing[0] * spacing[1] for t in frames], dtype=float)


def test_fit_keeps_an_exact_extremum_and_averages_the_flicker_of_jittered_ed_es():
    """Exact phantom: ED/ES areas unmoved (< 0.6 %: pixels), where a plain mean of the same frames pulls
    them toward the neighbours. Jittered phantoms: the ED/ES area error shrinks, without bias."""
    thresholds = load_thresholds()
    before, after, bias, plain = [], [], [], []
    for seed in range(24):
        phantom = generate_sequence(seed, view=("2CH", "4CH")[seed % 2], n_frames=12, image_shape=(300, 260))
        spacing, anchors = phantom.spacing_mm, (phantom.ed_frame, phantom.es_frame)
        truth = _area(phantom.labels, spacing, anchors)
        exact, _ = fit_turning_points(phantom.labels, measure_shape(phantom.labels, spacing, thresholds), spacing,
                                      thresholds, anchors, 3)
        bias.append(np.abs(_area(exact, spacing, anchors) / truth - 1))
        window = [np.arange(0, 4), np.arange(len(phantom.labels) - 4, len(phantom.labels))]
        plain.append(np.abs([np.mean(_area(phantom.labels, spacing, tuple(w))) for w in window] / truth - 1))
        jittered = annotation_jitter(phantom.labels, spacing, np.random.default_rng(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drawn = measure_shape(jittered, spacing, thresholds)
            fitted, shape = fit_turning_points(jittered, drawn, spacing, thresholds, anchors, 3)
        assert shape.valid.all() and (shape.flags.any(axis=1) <= drawn.flags.any(axis=1)).all()
        before.append(_area(jittered, spacing, anchors) - truth)
        after.append(_area(fitted, spacing, anchors) - truth)
    assert np.max(bias) < 0.006 and np.mean(plain) > 5 * np.mean(bias)
    rms = lambda e: float(np.sqrt(np.mean(np.square(e))))  # noqa: E731
    assert rms(after) < 0.9 * rms(before)
    assert abs(np.mean(after)) < 0.5 * rms(before)


def test_turning_frames_are_the_ed_and_es_of_a_full_cycle():
    thresholds = load_thresholds()
    cycle = generate_cycle_sequence(3, n_beats=1, frames_per_beat=24, image_shape=(300, 260))
    shape = measure_shape(cycle.labels, cycle.spacing_mm, thresholds, validity=False)
    found = turning_frames(shape, thresholds)
    area = shape.attributes[:, list(thresholds.names).index("lv_area_mm2")]
    assert len(found) == 2 and found[0] == 0  # ED, then ES: the end of the systolic plateau
    assert area[found[1]] - area.min() < 0.01 * (area.max() - area.min()) and 0 < found[1] < len(area) - 1
    assert turning_frames(measure_shape(cycle.labels[:3], cycle.spacing_mm, thresholds, validity=False), thresholds) == ()


def test_fit_uses_only_frames_that_hold_the_turning_frames_labels():
    """A neighbour without LA must not enter ED's fit: its LA distance is a constant that a negative
    weight would spread over the whole frame."""
    thresholds = load_thresholds()
    phantom = generate_sequence(2, view="4CH", n_frames=12, image_shape=(300, 260))
    labels = annotation_jitter(phantom.labels, phantom.spacing_mm, np.random.default_rng(2))
    labels[3][labels[3] == 3] = 0  # frame 3 (weight -1/7 in ED's one-sided fit) loses its LA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = measure_shape(labels, phantom.spacing_mm, thresholds)
        fitted, _ = fit_turning_points(labels, drawn, phantom.spacing_mm, thresholds, (0,), 3)
    la_before, la_after = (labels[0] == 3).sum(), (fitted[0] == 3).sum()
    assert abs(int(la_after) - int(la_before)) < 0.1 * la_before
    assert (fitted[0] != labels[0]).any()  # fitted on frames 0-2


def test_fit_that_follows_disagreeing_neighbours_beyond_flicker_is_refused():
    """ED's neighbours drawn 2 mm inside the true LV (as a rebuilt run that falls short): the fit
    would move ED's LV area beyond the consistency tolerance, so ED keeps its borders; with the
    bound off (0) the same fit is taken."""
    from scipy import ndimage

    thresholds = load_thresholds()
    phantom = generate_sequence(4, view="2CH", n_frames=12, image_shape=(300, 260))
    labels = phantom.labels.copy()
    for t in (1, 2, 3):
        lv = labels[t] == LV
        shrunk = ndimage.binary_erosion(lv, iterations=int(round(2.0 / min(phantom.spacing_mm))))
        labels[t][lv & ~shrunk] = 2  # the lost rim becomes myocardium
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = measure_shape(labels, phantom.spacing_mm, thresholds)
        bounded, _ = fit_turning_points(labels, drawn, phantom.spacing_mm, thresholds, (0,), 3)
        unbounded, _ = fit_turning_points(labels, drawn, phantom.spacing_mm, thresholds, (0,), 3, flicker_bound=0)
    np.testing.assert_array_equal(bounded[0], labels[0])
    area = lambda frame: (frame == LV).sum() * phantom.spacing_mm[0] * phantom.spacing_mm[1]  # noqa: E731
    assert area(labels[0]) - area(unbounded[0]) > thresholds.tolerance[thresholds.names.index("lv_area_mm2")]


def test_fit_takes_no_borders_from_frames_the_correction_rebuilt():
    """ED's neighbours 1 and 2 drawn one pixel inside (as rebuilt frames that fall a little short, within
    flicker): fitted from all neighbours, ED's LV shrinks toward them; with only the as-drawn frames
    0 and 3 as support, the turning-point model passes through ED exactly and ED keeps its borders (the
    flicker bound off in both: the support alone decides)."""
    from scipy import ndimage

    thresholds = load_thresholds()
    phantom = generate_sequence(4, view="2CH", n_frames=12, image_shape=(300, 260))
    labels = phantom.labels.copy()
    for t in (1, 2):
        lv = labels[t] == LV
        labels[t][lv & ~ndimage.binary_erosion(lv)] = 2
    support = np.ones(len(labels), dtype=bool)
    support[[1, 2]] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = measure_shape(labels, phantom.spacing_mm, thresholds)
        pulled, _ = fit_turning_points(labels, drawn, phantom.spacing_mm, thresholds, (0,), 3, flicker_bound=0)
        kept, _ = fit_turning_points(labels, drawn, phantom.spacing_mm, thresholds, (0,), 3, flicker_bound=0,
                                     support=support)
    assert (pulled[0] == LV).sum() < (labels[0] == LV).sum() - 20
    np.testing.assert_array_equal(kept[0], labels[0])
