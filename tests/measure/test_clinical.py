"""Known-answer tests for echotemporal.measure.clinical: Simpson volumes, EF, strain, biplane pairing, ED/ES."""

from __future__ import annotations

import warnings
from itertools import pairwise

import numpy as np
import pytest

from echotemporal.measure.clinical import (
    N_DISKS,
    biplane_volumes_ml,
    clinical_indices,
    detect_ed_es,
    disk_diameters_mm,
    ejection_fraction_percent,
    lv_volumes_ml,
    strain_curve_percent,
)
from echotemporal.core.errors import ConfigError

CAMUS_SPACING = (0.154, 0.308)  # (row_mm, col_mm): CAMUS depth x lateral, anisotropic
FOV_MM = (125.0, 100.0)


def half_ellipsoid_frame(
    a_mm: float,
    b_mm: float,
    spacing_mm: tuple[float, float] = CAMUS_SPACING,
    *,
    scale: float = 1.0,
    tilt_deg: float = 0.0,
    wall_mm: float = 8.0,
    la_mm: float = 30.0,
) -> np.ndarray:
    """(H, W) CAMUS-like frame: the long-axis cut of a half prolate ellipsoid, cut at its equator.

    LV = upper half-ellipse (semi-axes ``a_mm`` along the long axis, ``b_mm`` across), apex up, flat base
    on the mitral plane; MYO a band of ``wall_mm`` around sides and apex, open at the base; LA a
    half-ellipse below the mitral plane. Everything is scaled by ``scale`` about the base centre and
    tilted by ``tilt_deg``. Pixels are sampled at their centres in physical coordinates.
    """
    sp = np.asarray(spacing_mm)
    shape = (int(FOV_MM[0] / sp[0]), int(FOV_MM[1] / sp[1]))
    y = np.arange(shape[0])[:, None] * sp[0] - 85.0
    x = np.arange(shape[1])[None, :] * sp[1] - 50.0
    theta = np.deg2rad(tilt_deg)
    s = (-y * np.cos(theta) + x * np.sin(theta)) / scale  # along the axis, towards the apex
    w = (y * np.sin(theta) + x * np.cos(theta)) / scale  # across
    frame = np.zeros(shape, np.uint8)
    upper = s >= 0
    frame[upper & ((s / (a_mm + wall_mm)) ** 2 + (w / (b_mm + wall_mm)) ** 2 <= 1)] = 2
    frame[upper & ((s / a_mm) ** 2 + (w / b_mm) ** 2 <= 1)] = 1
    frame[~upper & ((s / la_mm) ** 2 + (w / (b_mm + wall_mm / 2)) ** 2 <= 1)] = 3
    return frame


def half_ellipsoid_ml(a_mm: float, b_mm: float) -> float:
    """Analytic volume of a half prolate spheroid, semi-axes a (long), b, b: 2/3·π·a·b² in mL."""
    return 2.0 / 3.0 * np.pi * a_mm * b_mm**2 / 1000.0


@pytest.fixture(autouse=True)
def _no_stray_warnings():
    # Clean inputs must not warn; tests that expect a warning say so with pytest.warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


@pytest.mark.parametrize(
    ("spacing_mm", "tilt_deg"),
    [(CAMUS_SPACING, 0.0), (CAMUS_SPACING, 15.0), ((0.25, 0.25), 0.0), ((0.35, 0.2), -10.0)],
)
def test_simpson_volume_of_half_prolate_ellipsoid(spacing_mm, tilt_deg):
    a, b = 50.0, 22.0
    frame = half_ellipsoid_frame(a, b, spacing_mm, tilt_deg=tilt_deg)
    volume = lv_volumes_ml(frame[None], spacing_mm)
    assert volume.shape == (1,)
    assert volume[0] == pytest.approx(half_ellipsoid_ml(a, b), rel=0.03)


def test_disk_diameters_follow_ellipse_and_length_reaches_apex():
    a, b = 50.0, 22.0
    diameters, lengths = disk_diameters_mm(half_ellipsoid_frame(a, b)[None], CAMUS_SPACING)
    assert diameters.shape == (1, N_DISKS)
    assert lengths[0] == pytest.approx(a, abs=0.3)
    s = (np.arange(N_DISKS) + 0.5) * lengths[0] / N_DISKS
    expected = 2 * b * np.sqrt(np.clip(1 - (s / a) ** 2, 0, None))
    # sub-pixel chords: within one lateral pixel (0.308 mm) everywhere but the apex cap
    np.testing.assert_allclose(diameters[0, :-2], expected[:-2], atol=0.35)


def test_ejection_fraction_of_two_ellipsoids():
    ed_ab, es_ab = (50.0, 22.0), (42.0, 16.0)
    seq = np.stack([half_ellipsoid_frame(*ed_ab), half_ellipsoid_frame(*es_ab)])
    edv, esv = half_ellipsoid_ml(*ed_ab), half_ellipsoid_ml(*es_ab)
    analytic_ef = 100 * (edv - esv) / edv
    for given in ({"ed_frame": 0, "es_frame": 1}, {}):
        ind = clinical_indices(seq, CAMUS_SPACING, **given)
        assert (ind.ed_frame, ind.es_frame) == (0, 1)
        assert ind.edv_ml == pytest.approx(edv, rel=0.03)
        assert ind.esv_ml == pytest.approx(esv, rel=0.03)
        assert ind.ef_percent == pytest.approx(analytic_ef, abs=2.0)
        assert ind.ef_percent == pytest.approx(ejection_fraction_percent(ind.edv_ml, ind.esv_ml))


@pytest.mark.parametrize("spacing_mm", [CAMUS_SPACING, (0.25, 0.25)])
def test_strain_of_uniformly_scaled_contour_is_the_scale_change(spacing_mm):
    seq = np.stack([half_ellipsoid_frame(50.0, 22.0, spacing_mm, scale=s) for s in (1.0, 0.95, 0.9)])
    strain = strain_curve_percent(seq, spacing_mm, ed_frame=0)
    assert strain[0] == 0.0
    assert strain[1] == pytest.approx(-5.0, abs=0.5)
    assert strain[2] == pytest.approx(-10.0, abs=0.5)
    ind = clinical_indices(seq, spacing_mm)
    assert ind.es_frame == 2
    assert ind.gls_percent == pytest.approx(-10.0, abs=0.5)
    # volumes scale with the cube of the scale
    assert ind.esv_ml / ind.edv_ml == pytest.approx(0.9**3, rel=0.02)


def test_strain_excludes_the_mitral_plane():
    # A wider base lengthens the mitral plane but not the hinge-apex-hinge contour by as much; the
    # contour length must be about half the ellipse perimeter, not the whole closed outline.
    a, b = 50.0, 22.0
    frame = half_ellipsoid_frame(a, b)
    seq = np.stack([frame, frame])
    assert np.all(strain_curve_percent(seq, CAMUS_SPACING) == 0.0)
    h = ((a - b) / (a + b)) ** 2
    half_perimeter = np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h))) / 2  # Ramanujan
    from echotemporal.measure.clinical import measure_frames

    contour_mm = measure_frames(seq, CAMUS_SPACING).contour_mm
    assert contour_mm[0] == pytest.approx(half_perimeter, rel=0.02)


def test_biplane_of_identical_views_equals_monoplane():
    seq = np.stack([half_ellipsoid_frame(50.0, 22.0), half_ellipsoid_frame(42.0, 16.0)])
    t, volumes = biplane_volumes_ml(seq, CAMUS_SPACING, seq, CAMUS_SPACING, ed_es_2ch=(0, 1), ed_es_4ch=(0, 1))
    np.testing.assert_allclose(t, [0.0, 1.0])
    np.testing.assert_allclose(volumes, lv_volumes_ml(seq, CAMUS_SPACING), rtol=1e-12)


def test_biplane_pairs_views_on_normalized_time():
    # 2CH: 2 frames (ED, ES); 4CH: 3 frames stored ES->ED, with a wider ellipse (b differs per view).
    two = np.stack([half_ellipsoid_frame(50.0, 20.0), half_ellipsoid_frame(42.0, 15.0)])
    four_fwd = np.stack([half_ellipsoid_frame(a, b) for a, b in ((50.0, 24.0), (46.0, 20.0), (42.0, 17.0))])
    four_rev = four_fwd[::-1].copy()
    t, vol = biplane_volumes_ml(two, CAMUS_SPACING, four_fwd, CAMUS_SPACING, ed_es_2ch=(0, 1), ed_es_4ch=(0, 2))
    _, vol_rev = biplane_volumes_ml(two, CAMUS_SPACING, four_rev, CAMUS_SPACING, ed_es_2ch=(0, 1), ed_es_4ch=(2, 0))
    np.testing.assert_allclose(t, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(vol_rev, vol, rtol=1e-12)
    # expected from the formula, with the 2CH diameters linearly interpolated at t = 0.5
    d2, l2 = disk_diameters_mm(two, CAMUS_SPACING)
    d4, l4 = disk_diameters_mm(four_fwd, CAMUS_SPACING)
    a_mid, l2_mid = d2.mean(axis=0), l2.mean()
    expected_mid = np.pi / 4 * np.sum(a_mid * d4[1]) * max(l2_mid, l4[1]) / N_DISKS / 1000
    assert vol[1] == pytest.approx(expected_mid, rel=1e-12)
    # ...and the ED volume is the one of an elliptic half-ellipsoid, 2/3·π·a·b2ch·b4ch
    assert vol[0] == pytest.approx(2 / 3 * np.pi * 50 * 20 * 24 / 1000, rel=0.03)
    # detection from the views' own curves (ED first, as detection assumes) gives the same pairing
    _, vol_det = biplane_volumes_ml(two, CAMUS_SPACING, four_fwd, CAMUS_SPACING, n_samples=3)
    np.testing.assert_allclose(vol_det, vol, rtol=1e-12)


def test_detect_ed_es_on_a_synthetic_curve():
    frames = np.arange(30)
    # a cardiac cycle starting late in systole: the global minimum (frame 0..1) comes before ED
    curve = 80 + 40 * np.cos(2 * np.pi * (frames - 6) / 24)
    curve[:2] = 30.0
    assert detect_ed_es(curve) == (6, 18)
    curve_with_nan = curve.copy()
    curve_with_nan[18] = np.nan
    ed, es = detect_ed_es(curve_with_nan)
    assert ed == 6 and es in (17, 19)
    # ties: the first maximum is ED, the last frame of an end-systolic plateau is ES
    assert detect_ed_es(np.array([90.0, 90.0, 70.0, 50.0, 50.0])) == (0, 4)


@pytest.mark.parametrize("curve", [np.full(5, 70.0), np.full(5, np.nan), np.array([10.0, 20, 30])])
def test_detect_ed_es_undetectable_warns_and_falls_back(curve):
    with pytest.warns(RuntimeWarning, match="cannot be detected"):
        assert detect_ed_es(curve) == (0, 4 if len(curve) == 5 else 2)


def test_flat_curve_gives_nan_indices():
    frame = half_ellipsoid_frame(50.0, 22.0)
    with pytest.warns(RuntimeWarning, match="flat or NaN"):
        ind = clinical_indices(np.stack([frame] * 3), CAMUS_SPACING)
    assert np.isnan(ind.ef_percent) and np.isnan(ind.edv_ml) and np.isnan(ind.gls_percent)
    assert np.all(np.isfinite(ind.volumes_ml))


def test_empty_and_hingeless_frames_give_nan_and_a_warning():
    good = half_ellipsoid_frame(50.0, 22.0)
    empty = np.zeros_like(good)
    lv_only = np.where(good == 1, 1, 0).astype(np.uint8)  # no MYO: no hinges
    seq = np.stack([good, empty, lv_only, half_ellipsoid_frame(42.0, 16.0)])
    with pytest.warns(RuntimeWarning, match=r"2 of 4 frames unmeasurable.*frame\(s\) \[1\] \(0-based\): no LV"):
        volumes = lv_volumes_ml(seq, CAMUS_SPACING)
    assert np.isnan(volumes[1]) and np.isnan(volumes[2])
    assert np.isfinite(volumes[[0, 3]]).all()
    with pytest.warns(RuntimeWarning):
        ind = clinical_indices(seq, CAMUS_SPACING)
    assert (ind.ed_frame, ind.es_frame) == (0, 3)
    assert np.isfinite(ind.ef_percent) and np.isnan(ind.strain_percent[1])
    with pytest.warns(RuntimeWarning):
        all_empty = clinical_indices(np.zeros((3, 40, 40), np.uint8), CAMUS_SPACING, ed_frame=0, es_frame=2)
    assert np.isnan(all_empty.ef_percent) and np.all(np.isnan(all_empty.volumes_ml))


def test_ejection_fraction_known_values_and_degenerate():
    assert ejection_fraction_percent(100.0, 40.0) == pytest.approx(60.0)
    with pytest.warns(RuntimeWarning, match="cannot give an EF"):
        assert np.isnan(ejection_fraction_percent(0.0, 10.0))


def test_user_errors_name_the_value():
    frame = half_ellipsoid_frame(50.0, 22.0)[None]
    with pytest.raises(ConfigError, match="spacing_mm"):
        lv_volumes_ml(frame, (0.0, 0.3))
    with pytest.raises(ConfigError, match="ed_frame=5"):
        clinical_indices(frame, CAMUS_SPACING, ed_frame=5)


def test_kernel_boundary_polygon_matches_slow_marching_squares():
    from skimage.measure import find_contours

    from echotemporal.measure.clinical.geometry import _boundary_polygon

    rng = np.random.default_rng(0)
    mask = np.pad(rng.random((30, 40)) < 0.45, 1)  # many saddles and islands
    points, segments = _boundary_polygon(mask)
    contours = find_contours(mask.astype(float), 0.5)
    expected_vertices = {tuple(v) for c in contours for v in c}
    assert {tuple(v) for v in points} == expected_vertices
    assert np.all(np.bincount(segments.ravel(), minlength=len(points)) == 2)
    # same edges, saddles resolved the same way (inside corners kept apart)
    edges = {frozenset((tuple(points[i]), tuple(points[j]))) for i, j in segments}
    expected_edges = {frozenset((tuple(a), tuple(b))) for c in contours for a, b in pairwise(c)}
    assert edges == expected_edges


def _five_frame_sequence() -> np.ndarray:
    return np.stack([half_ellipsoid_frame(a, b) for a, b in ((50, 22), (48, 21), (46, 19), (44, 18), (42, 16))])


def test_indices_from_frame_measures_equal_clinical_indices():
    from echotemporal.measure.clinical import indices_from_measures, measure_frames

    seq = _five_frame_sequence()
    measures = measure_frames(seq, CAMUS_SPACING)
    assert measures.unmeasurable == (None,) * 5
    direct = clinical_indices(seq, CAMUS_SPACING)
    via = indices_from_measures(measures)
    np.testing.assert_array_equal(via.volumes_ml, direct.volumes_ml)
    np.testing.assert_array_equal(via.strain_percent, direct.strain_percent)
    assert (via.ed_frame, via.es_frame, via.ef_percent, via.gls_percent) == (
        direct.ed_frame, direct.es_frame, direct.ef_percent, direct.gls_percent
    )
    # Volumes decrease with the ellipse: ED first, ES last, as the analytic volumes say.
    assert (via.ed_frame, via.es_frame) == (0, 4)
    expected_ef = 100 * (1 - half_ellipsoid_ml(42, 16) / half_ellipsoid_ml(50, 22))
    assert via.ef_percent == pytest.approx(expected_ef, abs=1.5)


def test_frame_measures_do_not_depend_on_the_crop():
    # Frame-local geometry: padding the images (another crop of the same frames) changes no bit,
    # which is what makes the reuse of measures across differently cropped versions exact.
    from echotemporal.measure.clinical import measure_frames

    seq = _five_frame_sequence()
    padded = np.pad(seq, ((0, 0), (7, 3), (11, 0)))
    a = measure_frames(seq, CAMUS_SPACING)
    b = measure_frames(padded, CAMUS_SPACING)
    np.testing.assert_array_equal(a.volumes_ml, b.volumes_ml)
    np.testing.assert_array_equal(a.contour_mm, b.contour_mm)
    np.testing.assert_array_equal(a.diameters_mm, b.diameters_mm)


def test_clinical_measures_of_a_correction_measure_only_its_changed_frames(monkeypatch):
    from echotemporal.measure.clinical import frames
    from echotemporal.measure.sequence import measure_clinical

    seq = _five_frame_sequence()
    first = measure_clinical(seq, CAMUS_SPACING, 0, 4)
    calls = []
    real = frames._crop_geometry
    monkeypatch.setattr(frames, "_crop_geometry", lambda *a: calls.append(1) or real(*a))
    changed = seq.copy()
    changed[1] = half_ellipsoid_frame(47, 20)
    second = measure_clinical(changed, CAMUS_SPACING, 0, 4, reference=(seq, first))
    assert len(calls) == 1  # only the changed frame
    np.testing.assert_array_equal(second.volumes_ml[[0, 2, 3, 4]], first.volumes_ml[[0, 2, 3, 4]])
    fresh = measure_clinical(changed, CAMUS_SPACING, 0, 4)
    np.testing.assert_array_equal(second.volumes_ml, fresh.volumes_ml)


def test_frame_measures_reuse_only_identical_frames():
    from echotemporal.measure.clinical import (
        FrameMeasures,
        indices_from_measures,
        measure_frames,
    )

    seq = _five_frame_sequence()
    corrected = seq.copy()
    corrected[2] = half_ellipsoid_frame(45, 18.5)  # one frame changed by a correction
    corrected[4] = 0  # and one emptied
    reference = measure_frames(seq, CAMUS_SPACING)
    reused = measure_frames(corrected, CAMUS_SPACING, reference=(seq, reference))
    full = measure_frames(corrected, CAMUS_SPACING)
    np.testing.assert_array_equal(reused.volumes_ml, full.volumes_ml)
    np.testing.assert_array_equal(reused.contour_mm, full.contour_mm)
    assert reused.unmeasurable == full.unmeasurable == (None, None, None, None, "no LV")
    assert np.isfinite(reused.volumes_ml[:4]).all() and reused.volumes_ml[2] != reference.volumes_ml[2]
    # Identical frames really take the reference's numbers (here deliberately fake ones), changed
    # frames are measured again.
    fake = FrameMeasures(np.arange(5.0) + 100, np.arange(5.0) + 200, ("x",) * 5, np.ones((5, N_DISKS)), np.ones(5))
    taken = measure_frames(corrected, CAMUS_SPACING, reference=(seq, fake))
    np.testing.assert_array_equal(taken.volumes_ml[[0, 1, 3]], [100.0, 101.0, 103.0])
    assert taken.volumes_ml[2] == full.volumes_ml[2] and np.isnan(taken.volumes_ml[4])
    assert taken.unmeasurable == ("x", "x", None, "x", "no LV")
    with pytest.warns(RuntimeWarning, match="1 of 5 frames unmeasurable"):
        after = indices_from_measures(reused, ed_frame=0, es_frame=3)
    with pytest.warns(RuntimeWarning, match="1 of 5 frames unmeasurable"):
        expected = clinical_indices(corrected, CAMUS_SPACING, ed_frame=0, es_frame=3)
    assert after.ef_percent == expected.ef_percent and after.gls_percent == expected.gls_percent
    with pytest.raises(ConfigError, match="reference"):
        measure_frames(corrected[:4], CAMUS_SPACING, reference=(seq, reference))


def test_biplane_from_measures_equals_biplane_from_labels():
    from echotemporal.measure.clinical import biplane_volumes_from_measures, measure_frames

    two = _five_frame_sequence()
    four = np.stack([half_ellipsoid_frame(a, b) for a, b in ((50, 24), (47, 21), (44, 18), (42, 17))])
    expected = biplane_volumes_ml(two, CAMUS_SPACING, four, CAMUS_SPACING)
    got = biplane_volumes_from_measures(measure_frames(two, CAMUS_SPACING), measure_frames(four, CAMUS_SPACING))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert len(got[1]) == 5 and got[1][0] > got[1][-1] > 0  # ED -> ES, volumes fall
    given = biplane_volumes_from_measures(
        measure_frames(two, CAMUS_SPACING), measure_frames(four, CAMUS_SPACING), ed_es_2ch=(0, 4), ed_es_4ch=(0, 3)
    )
    np.testing.assert_array_equal(given[1], expected[1])


def test_kernel_ordered_loop_matches_slow_depth_first_search():
    # The walk direction decides where the strain arc is cut: it must stay the one an undirected
    # depth-first search of the segment graph takes.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import depth_first_order

    from echotemporal.measure.clinical.geometry import _boundary_polygon
    from echotemporal.measure.clinical.strain import _ordered_loop

    rng = np.random.default_rng(1)
    mask = np.pad(rng.random((20, 25)) < 0.5, 1)  # many loops, saddles
    points, segments = _boundary_polygon(mask)
    n = len(points)
    graph = coo_matrix((np.ones(len(segments)), (segments[:, 0], segments[:, 1])), shape=(n, n)).tocsr()
    for start in range(n):
        expected = depth_first_order(graph, start, directed=False, return_predecessors=False)
        np.testing.assert_array_equal(_ordered_loop(n, segments, start), expected)
