"""Tests of echotemporal.phantoms: parametric truth, jitter, corruptions, real shapes, CAMUS tree."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import ndimage

from echotemporal.core.distances import label_distances, signed_distance
from echotemporal.core.errors import OutputExistsError
from echotemporal.phantoms import (
    CORRUPTION_KINDS,
    annotation_jitter,
    corrupt_sequence,
    default_real_shapes_dir,
    generate_sequence,
    load_full_resolution_camus,
    load_real_shapes,
    real_shape_sequence,
    real_shape_spacing_mm,
    write_phantom_tree,
)
from echotemporal.phantoms.contour import disk_volume_ml, polygon_area
from echotemporal.phantoms.raster import fill_polygon
from echotemporal.phantoms.records import TEMPORAL_CORRUPTION_KINDS

SMALL = (220, 180)  # about 0.7 x 1.0 mm pixels: fast, still ~5000 LV pixels

_REAL = default_real_shapes_dir()
needs_real_224 = pytest.mark.skipif(
    not (_REAL / "camus-gavkujo-224-npy" / "derived" / "labels_repaired_apex_up_uint8.npz").is_file(),
    reason="shared real-shape data not available",
)
needs_full_res = pytest.mark.skipif(
    not (_REAL / "camus-travislatchman-mhd" / "MIA23_Project1_data").is_dir(),
    reason="shared full-resolution CAMUS masks not available",
)


def _n_components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask)[1])


def _assert_anatomically_clean(frame: np.ndarray) -> None:
    for k in (1, 2, 3):
        mask = frame == k
        assert _n_components(mask) == 1, f"label {k} has {_n_components(mask)} components"
        assert np.array_equal(ndimage.binary_fill_holes(mask), mask), f"label {k} has holes"
    heart = (frame == 1) | (frame == 2)
    assert np.array_equal(ndimage.binary_fill_holes(heart), heart), "LV+MYO has holes"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def small_seq():
    return generate_sequence(7, n_frames=12, image_shape=SMALL)


# --------------------------------------------------------------------------------------- parametric


def test_generate_sequence_is_deterministic_from_seed():
    a = generate_sequence(3, n_frames=6, image_shape=SMALL)
    b = generate_sequence(3, n_frames=6, image_shape=SMALL)
    c = generate_sequence(4, n_frames=6, image_shape=SMALL)
    assert np.array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.lv_volume_ml, b.lv_volume_ml)
    assert a.params == b.params
    assert not np.array_equal(a.labels, c.labels)
    # A Generator seed works too and is deterministic given its own seed.
    g1 = generate_sequence(np.random.default_rng(9), n_frames=5, image_shape=SMALL)
    g2 = generate_sequence(np.random.default_rng(9), n_frames=5, image_shape=SMALL)
    assert np.array_equal(g1.labels, g2.labels)


def test_defaults_are_camus_like():
    for seed in range(3):
        seq = generate_sequence(seed)
        t, h, w = seq.labels.shape
        row_mm, col_mm = seq.spacing_mm
        assert 10 <= t <= 40
        assert 0.15 <= row_mm <= 0.35 and 0.15 <= col_mm <= 0.35 and col_mm > row_mm
        assert 100 <= h * row_mm <= 200 and 1.0 <= (w * col_mm) / (h * row_mm) <= 1.6
        assert 20.0 <= seq.ef_percent <= 75.0
        assert (seq.ed_frame, seq.es_frame) == (0, t - 1)
        lv_area_ed = seq.params["lv_area_mm2"][0]
        assert 1800 <= lv_area_ed <= 4500
        assert 65 <= seq.params["lv_length_mm"][0] <= 105


@pytest.mark.parametrize("view", ["2CH", "4CH"])
def test_labels_are_anatomically_consistent(view):
    seq = generate_sequence(11, view=view, n_frames=6, image_shape=SMALL)
    assert seq.labels.dtype == np.uint8 and seq.view == view
    for frame in seq.labels:
        assert set(np.unique(frame)) == {0, 1, 2, 3}
        _assert_anatomically_clean(frame)
        lv = frame == 1
        # LV borders only MYO (sides, apex) and LA (mitral plane), up to a pixel or two at the hinges.
        border = ndimage.binary_dilation(lv) & ~lv
        assert np.count_nonzero(frame[border] == 0) <= 4
        rows = np.arange(frame.shape[0])[:, None]
        lv_row = (rows * lv).sum() / lv.sum()
        la = frame == 3
        assert (rows * la).sum() / la.sum() > lv_row  # LA below the LV
        heart_top = np.nonzero((frame == 1) | (frame == 2))[0].min()
        assert heart_top < np.nonzero(lv)[0].min()  # MYO caps the apex, apex towards row 0


def test_ef_is_requested_and_equals_analytic_volumes():
    seq = generate_sequence(5, n_frames=10, image_shape=SMALL, ef_percent=35.0)
    v = seq.lv_volume_ml
    assert seq.ef_percent == pytest.approx(35.0, abs=1e-4)
    assert seq.ef_percent == pytest.approx(100 * (v[0] - v[-1]) / v[0], rel=1e-12)
    assert np.all(np.diff(v) < 0), "volume curve ED->ES must be monotone"
    # Smooth: second differences small compared to the stroke volume.
    assert np.abs(np.diff(v, 2)).max() < 0.2 * (v[0] - v[-1])
    for seed in range(4):
        assert 20.0 <= generate_sequence(seed, n_frames=4, image_shape=SMALL).ef_percent <= 75.0


def test_gls_is_exact_contour_strain():
    seq = generate_sequence(2, n_frames=8, image_shape=SMALL, ef_percent=60.0)
    lengths = seq.params["endo_length_mm"]
    assert seq.gls_percent == pytest.approx(100 * (lengths[-1] - lengths[0]) / lengths[0])
    assert -30.0 < seq.gls_percent < -10.0
    low = generate_sequence(2, n_frames=8, image_shape=SMALL, ef_percent=25.0)
    assert low.gls_percent > seq.gls_percent  # poorer EF, less shortening


def test_raster_area_matches_exact_polygon(small_seq):
    pixel_mm2 = small_seq.spacing_mm[0] * small_seq.spacing_mm[1]
    raster = (small_seq.labels == 1).sum(axis=(1, 2)) * pixel_mm2
    exact = np.asarray(small_seq.params["lv_area_mm2"])
    np.testing.assert_allclose(raster, exact, rtol=0.01)
    myo = (small_seq.labels == 2).sum(axis=(1, 2)) * pixel_mm2
    np.testing.assert_allclose(myo, small_seq.params["myo_area_mm2"], rtol=0.02)


def test_myocardium_thickens_with_roughly_constant_area():
    seq = generate_sequence(1, n_frames=6, image_shape=SMALL, ef_percent=65.0)
    myo = np.asarray(seq.params["myo_area_mm2"])
    assert 0.9 < myo[-1] / myo[0] < 1.15
    assert 0.15 < seq.params["wall_thickening_es"] < 0.8


def test_disk_volume_known_answer_half_spheroid():
    # Half prolate spheroid: semi-axis a along the axis, b across: V = 2/3 pi b^2 a.
    a, b = 80.0, 25.0
    phi = np.linspace(0.0, np.pi, 2001)
    contour = np.column_stack([b * np.cos(phi), -a * np.sin(phi)])
    volume, length = disk_volume_ml(contour, np.array([-b, 0.0]), np.array([b, 0.0]))
    assert length == pytest.approx(a, rel=1e-6)
    assert volume == pytest.approx(2.0 / 3.0 * np.pi * b**2 * a / 1000.0, rel=1e-4)
    assert polygon_area(contour) == pytest.approx(0.5 * np.pi * a * b, rel=1e-5)


def test_fill_polygon_matches_ellipse_area_and_rejects_outside():
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    rows, cols = 50 + 30 * np.sin(t), 40 + 20 * np.cos(t)
    mask = fill_polygon(rows, cols, (100, 80))
    assert mask.sum() == pytest.approx(np.pi * 30 * 20, rel=0.01)
    assert mask[50, 40] and not mask[5, 5]
    assert not fill_polygon(rows + 500, cols, (100, 80)).any()


def test_image_too_small_for_heart_raises():
    with pytest.raises(ValueError, match="heart needs"):
        generate_sequence(0, n_frames=3, image_shape=(40, 40), spacing_mm=(0.3, 0.3))
    with pytest.raises(ValueError, match="view"):
        generate_sequence(0, view="3CH")


def test_signed_distances_reproduce_labels(small_seq):
    frame = small_seq.labels[3]
    dist = label_distances(frame, small_seq.spacing_mm)
    assert np.array_equal(np.argmin(dist, axis=0), frame)
    ref = signed_distance(frame == 2, small_seq.spacing_mm)
    np.testing.assert_allclose(dist[2], ref)


# --------------------------------------------------------------------------------- jitter, corrupt


def test_annotation_jitter_moves_borders_about_one_pixel():
    seq = generate_sequence(4, n_frames=4, image_shape=(360, 300))
    jittered = annotation_jitter(seq.labels, seq.spacing_mm, np.random.default_rng(0))
    assert jittered.shape == seq.labels.shape and jittered.dtype == np.uint8
    for t in range(seq.n_frames):
        _assert_anatomically_clean(jittered[t])
        for k in (1, 2, 3):
            before, after = seq.labels[t] == k, jittered[t] == k
            perimeter = np.count_nonzero(before & ~ndimage.binary_erosion(before))
            mean_shift_px = np.count_nonzero(before ^ after) / perimeter
            assert 0.3 < mean_shift_px < 2.0, (t, k, mean_shift_px)
            # Nothing moves far: every changed pixel is within a few pixels of the original border.
            dist = np.abs(signed_distance(before))
            assert dist[before ^ after].max() < 6.0
    # Independent per frame and reproducible from the generator's seed.
    assert not np.array_equal(jittered[0] != seq.labels[0], jittered[1] != seq.labels[1])
    again = annotation_jitter(seq.labels, seq.spacing_mm, np.random.default_rng(0))
    assert np.array_equal(again, jittered)


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_each_corruption_changes_exactly_its_frames(small_seq, kind):
    labels = small_seq.labels
    out, records = corrupt_sequence(labels, small_seq.spacing_mm, np.random.default_rng(1), kinds=[kind])
    assert out.shape == labels.shape and out.dtype == np.uint8
    changed = set(np.flatnonzero((out != labels).any(axis=(1, 2))).tolist())
    assert changed == {r.frame for r in records}
    assert all(r.kind == kind for r in records)
    assert np.array_equal(labels, small_seq.labels)  # input untouched
    t_last = labels.shape[0] - 1
    if kind == "boundary_noise":
        assert len(records) == labels.shape[0]
        return
    assert len(records) == 1
    t = records[0].frame
    frame, before = out[t], labels[t]
    if kind in TEMPORAL_CORRUPTION_KINDS:
        assert 0 < t < t_last
    if kind in ("contraction", "dilation"):
        neighbours = 0.5 * ((labels[t - 1] == 1).sum() + (labels[t + 1] == 1).sum())
        change = (frame == 1).sum() / neighbours - 1.0
        assert 0.07 <= abs(change) <= 0.16 and (change < 0) == (kind == "contraction")
        assert _n_components(frame == 1) == 1 and (frame[before == 0] == 0).all()
    elif kind.startswith("shift"):
        axis = 0 if kind == "shift_vertical" else 1
        centre = lambda m: np.array(ndimage.center_of_mass(m))  # noqa: E731
        moved_mm = (centre(frame == 1) - centre(before == 1))[axis] * small_seq.spacing_mm[axis]
        assert 2.5 <= abs(moved_mm) <= 6.5
    elif kind == "blob":
        assert sum(_n_components(frame == k) for k in (1, 2, 3)) == 4
    elif kind == "hole":
        assert any(not np.array_equal(ndimage.binary_fill_holes(frame == k), frame == k) for k in (1, 2, 3))
    elif kind == "broken_myo":
        assert _n_components(frame == 2) >= 2
    elif kind == "missing_structure":
        assert len(set(np.unique(frame)) - {0}) == 2


def test_corrupt_sequence_several_and_errors(small_seq):
    out, records = corrupt_sequence(small_seq.labels, small_seq.spacing_mm, np.random.default_rng(3),
                                    kinds=["contraction", "shift_vertical", "blob"], n_corruptions=3)
    assert sorted(r.kind for r in records) == ["blob", "contraction", "shift_vertical"]
    assert len({r.frame for r in records}) == 3
    changed = set(np.flatnonzero((out != small_seq.labels).any(axis=(1, 2))).tolist())
    assert changed == {r.frame for r in records}
    with pytest.raises(ValueError, match="valid kinds"):
        corrupt_sequence(small_seq.labels, small_seq.spacing_mm, np.random.default_rng(0), kinds=["wobble"])
    with pytest.raises(ValueError, match="do not fit"):
        corrupt_sequence(small_seq.labels[:4], small_seq.spacing_mm, np.random.default_rng(0),
                         kinds=["contraction"], n_corruptions=3)


# ----------------------------------------------------------------------------------- real shapes


def test_real_shape_sequence_endpoints_and_monotone_lv_on_phantom(small_seq):
    ed, es = small_seq.labels[0], small_seq.labels[-1]
    seq = real_shape_sequence(ed, es, 9, spacing_mm=small_seq.spacing_mm, rng=np.random.default_rng(0))
    assert seq.labels.shape == (9, *ed.shape)
    assert np.array_equal(seq.labels[0], ed) and np.array_equal(seq.labels[-1], es)
    lv = (seq.labels == 1).sum(axis=(1, 2))
    assert np.all(np.diff(lv) <= 0.005 * lv[0])
    assert lv[0] > lv[4] > lv[-1]
    assert math.isnan(seq.ef_percent) and np.isnan(seq.lv_volume_ml).all()
    for frame in seq.labels:
        _assert_anatomically_clean(frame)


def test_real_shape_sequence_upsampled_keeps_field_of_view(small_seq):
    ed, es = small_seq.labels[0], small_seq.labels[-1]
    out_shape = (2 * ed.shape[0], 2 * ed.shape[1])
    seq = real_shape_sequence(ed, es, 5, spacing_mm=small_seq.spacing_mm, output_shape=out_shape)
    assert seq.labels.shape == (5, *out_shape)
    assert seq.spacing_mm == pytest.approx((small_seq.spacing_mm[0] / 2, small_seq.spacing_mm[1] / 2))
    area_in = (ed == 1).sum() * np.prod(small_seq.spacing_mm)
    area_out = (seq.labels[0] == 1).sum() * np.prod(seq.spacing_mm)
    assert area_out == pytest.approx(area_in, rel=0.02)
    small = seq.labels[0][::2, ::2]
    assert _dice(small == 1, ed == 1) > 0.97


def test_real_shape_spacing_undoes_depth_stretch():
    row_mm, col_mm = real_shape_spacing_mm(aspect=1.3, depth_mm=130.0)
    assert row_mm == pytest.approx(130.0 / 224) and col_mm == pytest.approx(1.3 * 130.0 / 224)
    with pytest.raises(ValueError):
        real_shape_spacing_mm(aspect=0.0)


@needs_real_224
def test_load_real_shapes_and_interpolate_real_pair():
    shapes = load_real_shapes("val")
    assert shapes.labels.shape[1:] == (224, 224) and shapes.labels.dtype == np.uint8
    assert set(shapes.splits.tolist()) == {"val"} and len(shapes) == 200
    assert set(shapes.views.tolist()) == {"2CH", "4CH"} and set(shapes.phases.tolist()) == {"ED", "ES"}
    assert shapes.names[0].startswith(shapes.patients[0])
    patient, view = shapes.pairs()[0]
    ed, es = shapes.pair(patient, view)
    seq = real_shape_sequence(ed, es, 12, spacing_mm=real_shape_spacing_mm(), rng=np.random.default_rng(1),
                              view=view)
    assert _dice(seq.labels[0] == 1, ed == 1) > 0.98 and _dice(seq.labels[-1] == 1, es == 1) > 0.98
    lv = (seq.labels == 1).sum(axis=(1, 2))
    assert np.all(np.diff(lv) <= 0.01 * lv[0]) and lv[0] > lv[-1]
    for frame in seq.labels:
        for k in (1, 2, 3):
            assert _n_components(frame == k) == 1
    with pytest.raises(ValueError, match="split"):
        load_real_shapes("training")


@needs_full_res
def test_load_full_resolution_camus():
    cases = load_full_resolution_camus()
    assert len(cases) == 10
    first = cases[0]
    assert (first.patient, first.view) == ("patient0001", "2CH")
    assert first.ed.shape == (778, 549) and first.spacing_mm == pytest.approx((0.154, 0.308))
    assert first.lv_edv_ml == pytest.approx(94.0) and first.lv_ef_percent == pytest.approx(63.2)
    assert all(c.ed.shape == c.es.shape and (c.es == 1).sum() < (c.ed == 1).sum() for c in cases)


# ---------------------------------------------------------------------------------------- tree, CLI


def test_write_phantom_tree_layout_and_manifest(tmp_path):
    from echotemporal.io import read_info_cfg, read_sequence

    root = write_phantom_tree(tmp_path / "tree", 1, corrupt=True, seed=2, jitter=False,
                              boundary_noise_probability=0.0)
    pdir = root / "patient0001"
    for view in ("2CH", "4CH"):
        assert (pdir / f"patient0001_{view}_half_sequence_gt.nii.gz").is_file()
        assert (pdir / f"patient0001_{view}_half_sequence_truth.nii.gz").is_file()
    manifest = json.loads((root / "manifest.json").read_text())
    with open(root / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"patient", "view", "frame", "kind", "detail"}
    for view in ("2CH", "4CH"):
        entry = manifest["patients"]["patient0001"]["views"][view]
        gt = read_sequence(pdir / f"patient0001_{view}_half_sequence_gt.nii.gz")
        truth = read_sequence(pdir / f"patient0001_{view}_half_sequence_truth.nii.gz")
        assert gt.labels.shape == truth.labels.shape == (entry["n_frames"], *entry["image_shape"])
        assert gt.spacing_mm == pytest.approx(tuple(entry["spacing_mm"]), rel=1e-6)
        # Without jitter, the gt differs from the truth exactly on the recorded frames.
        changed = set(np.flatnonzero((gt.labels != truth.labels).any(axis=(1, 2))).tolist())
        recorded = {int(r["frame"]) for r in rows if r["view"] == view}
        assert changed == recorded == {c["frame"] for c in entry["corruptions"]}
        info = read_info_cfg(pdir / f"Info_{view}.cfg")
        assert (info.ed_frame, info.es_frame, info.n_frames) == (0, entry["n_frames"] - 1, entry["n_frames"])
        assert info.ef_percent == pytest.approx(entry["ef_percent"])
        v = entry["lv_volume_ml"]
        assert entry["ef_percent"] == pytest.approx(100 * (v[0] - v[-1]) / v[0])
    # Both views share the patient's EF.
    views = manifest["patients"]["patient0001"]["views"]
    assert views["2CH"]["ef_percent"] == pytest.approx(views["4CH"]["ef_percent"], abs=1e-3)
    with pytest.raises(OutputExistsError):
        write_phantom_tree(root, 1)


def test_cli_phantom_clean(tmp_path):
    from click.testing import CliRunner

    from echotemporal.cli import main

    out = tmp_path / "clean"
    result = CliRunner().invoke(main, ["phantom", "-o", str(out), "--patients", "1", "--clean", "--no-jitter",
                                       "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "1 patient(s)" in result.output and "0 corrupted" in result.output
    assert (out / "patient0001" / "Info_4CH.cfg").is_file()
    with open(out / "manifest.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == []
    again = CliRunner().invoke(main, ["phantom", "-o", str(out), "--patients", "1"])
    assert again.exit_code != 0 and "overwrite" in again.output


def test_phantom_tree_reports_each_patient_once_written(tmp_path):
    from echotemporal.phantoms import write_phantom_tree

    seen: list[str] = []
    write_phantom_tree(tmp_path / "tree", 2, corrupt=False, jitter=False, on_patient=seen.append)
    assert seen == ["patient0001", "patient0002"]
    assert all((tmp_path / "tree" / pid).is_dir() for pid in seen)
