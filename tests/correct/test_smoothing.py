"""Tests of echotemporal.pipeline.smooth_sequence on small phantoms and a tiny random shape model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from echotemporal.core.config import SmoothingConfig
from echotemporal.core.errors import ConfigError, InvalidLabelsError
from echotemporal.core.labels import Label
from echotemporal.pipeline import METHODS, gaussian_smooth_labels, smooth_sequence

SPACING = (0.8, 0.8)  # coarse pixels keep the phantoms ~170x210: fast tests


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def phantom():
    from echotemporal.phantoms import generate_sequence

    return generate_sequence(3, n_frames=10, spacing_mm=SPACING)


@pytest.fixture(scope="module")
def corrupted(phantom):
    from echotemporal.phantoms import corrupt_sequence

    labels, corruptions = corrupt_sequence(
        phantom.labels, phantom.spacing_mm, np.random.default_rng(1), kinds=("contraction",), n_corruptions=1
    )
    return labels, corruptions


@pytest.fixture(scope="module")
def tiny_model():
    """A tiny random ShapeModel (32x32 grid): right shapes and types, meaningless shapes."""
    torch = pytest.importorskip("torch")
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES
    from echotemporal.core.config import ModelConfig
    from echotemporal.model.network import ARVAE, ShapeModel

    torch.manual_seed(0)
    net = ARVAE(ModelConfig(grid_size=32, latent_dim=10, channels=(4, 8)))
    return ShapeModel(net, ATTRIBUTE_NAMES, np.tile([-3.0, 3.0], (len(ATTRIBUTE_NAMES), 1)))


def run(labels, spacing=SPACING, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate frames warn by design; asserted elsewhere
        return smooth_sequence(labels, spacing, **kwargs)


def test_none_returns_the_input_and_measures_it(corrupted, phantom):
    from echotemporal.measure.clinical import clinical_indices

    labels, corruptions = corrupted
    result = run(labels, config=SmoothingConfig(method="none"), ed_frame=0, es_frame=len(labels) - 1)
    assert result.method == "none"
    np.testing.assert_array_equal(result.labels, labels)
    assert result.labels is not labels  # a copy: callers may edit it
    s = result.summary
    assert s["n_inconsistent_before"] == s["n_inconsistent_after"]
    assert corruptions[0].frame in s["inconsistent_frames_before"]  # the contraction is found
    ci = clinical_indices(labels, SPACING, ed_frame=0, es_frame=len(labels) - 1)
    assert s["ef_percent_before"] == pytest.approx(ci.ef_percent)
    assert s["ef_percent_after"] == pytest.approx(ci.ef_percent)
    np.testing.assert_allclose(result.frames["lv_volume_ml_before"], ci.volumes_ml)
    assert s["ed_es_source"] == "given" and (s["ed_frame"], s["es_frame"]) == (0, len(labels) - 1)


def test_gaussian_keeps_clean_phantom_close_to_truth(phantom):
    result = run(phantom.labels, config=SmoothingConfig(method="gaussian"))
    assert result.labels.shape == phantom.labels.shape and result.labels.dtype == np.uint8
    lv_dice = [dice(a == Label.LV, b == Label.LV) for a, b in zip(result.labels, phantom.labels)]
    assert min(lv_dice) >= 0.95


def test_gaussian_filter_smooths_an_outlier_frame():
    seq = np.zeros((9, 20, 20), np.uint8)
    seq[:, 5:15, 5:15] = Label.LV
    seq[4] = 0  # one empty frame among identical ones
    out = gaussian_smooth_labels(seq, sigma_frames=1.0)
    assert (out[4, 5:15, 5:15] == Label.LV).all()
    assert (out[:, :5] == 0).all()


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.5])
def test_gaussian_filter_equals_the_argmax_of_the_filtered_one_hot_maps(sigma):
    """The window table (sigma 0.6, 1.0) and the direct filter (2.5: too many windows) both give
    scipy's temporal Gaussian of the one-hot maps, argmax with ties to the lower label; the input,
    whose heart box is the whole image, is left alone."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    seq = rng.integers(0, 4, size=(13, 12, 15)).astype(np.uint8)
    seq[:, 4:8] = rng.integers(1, 3, size=(1, 4, 15))  # pixels that never change keep their label
    copy = seq.copy()
    onehot = (seq[None] == np.arange(4)[:, None, None, None]).astype(np.float32)
    expected = ndimage.gaussian_filter1d(onehot, sigma, axis=1, mode="nearest").argmax(axis=0)
    np.testing.assert_array_equal(gaussian_smooth_labels(seq, sigma_frames=sigma), expected)
    np.testing.assert_array_equal(seq, copy)


def test_gaussian_corrects_a_contraction(corrupted):
    labels, corruptions = corrupted
    # sigma = 0.05*T is under a frame for T = 10 (the reference's setting changes nothing); widen it.
    result = run(labels, config=SmoothingConfig(method="gaussian", gaussian_sigma_fraction=0.2))
    t = corruptions[0].frame
    assert t in result.summary["inconsistent_frames_before"]
    assert result.frames["changed"][t]
    area = {w: result.frames[f"lv_area_mm2_{w}"].to_numpy() for w in ("before", "after")}
    jump = {w: abs(a[t] - (a[t - 1] + a[t + 1]) / 2) for w, a in area.items()}
    assert jump["after"] < 0.5 * jump["before"]


@pytest.mark.parametrize("n_frames", [1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_one_or_two_frames_come_back_unchanged(phantom, tiny_model, n_frames, method):
    labels = phantom.labels[:n_frames]
    result = run(labels, model=tiny_model, config=SmoothingConfig(method=method))
    np.testing.assert_array_equal(result.labels, labels)
    assert len(result.frames) == n_frames
    assert any("nothing to smooth" in note for note in result.summary["notes"])
    assert result.summary["n_inconsistent_after"] == 0


def test_single_2d_frame_keeps_its_shape(phantom):
    result = run(phantom.labels[0], config=SmoothingConfig(method="gaussian"))
    assert result.labels.shape == phantom.labels[0].shape


def test_arvae_tiny_model_shapes_dtypes_and_carries_la(phantom, tiny_model):
    from echotemporal.measure.temporal import load_thresholds

    labels = phantom.labels
    result = run(labels, model=tiny_model, config=SmoothingConfig(max_rounds=2, cleanup=False, denoise_sigma_frames=0.0, robust=False,
                                                           turning_fit_frames=0),
                 ed_frame=0, es_frame=len(labels) - 1)
    assert result.method == "arvae"
    assert result.labels.shape == labels.shape and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 1, 2, 3}
    # LA is never dropped: wherever the input had LA and the model says background, LA stays.
    # Glitched input frames (flagged or invalid) take their LA from their clean neighbours.
    glitched = (result.frames["inconsistent_before"] | ~result.frames["valid_before"]).to_numpy()
    la_in, la_out = labels == Label.LA, result.labels == Label.LA
    assert not np.any(la_in[~glitched] & (result.labels[~glitched] == Label.BACKGROUND))
    assert np.all(la_out[~glitched] <= la_in[~glitched])  # and LA never appears elsewhere
    assert np.all(la_out[glitched] <= la_in.any(axis=0))
    assert 1 <= result.summary["rounds"] <= 2
    assert result.summary["weights_sha256"] == tiny_model.sha256
    assert set(result.summary["latent_tolerances"]) == set(load_thresholds().names)
    assert len(result.frames) == len(labels)


def test_arvae_cleanup_leaves_one_component_per_label(phantom, tiny_model):
    from scipy import ndimage

    result = run(phantom.labels, model=tiny_model, config=SmoothingConfig(max_rounds=1))
    for frame in result.labels:
        for value in (Label.LV, Label.MYO, Label.LA):
            assert ndimage.label(frame == value)[1] <= 1


def test_arvae_without_la_gives_no_la(phantom, tiny_model):
    labels = np.where(phantom.labels == Label.LA, 0, phantom.labels).astype(np.uint8)
    result = run(labels, model=tiny_model, config=SmoothingConfig(max_rounds=1))
    assert not np.any(result.labels == Label.LA)
    assert result.labels.shape == labels.shape


def test_empty_frame_is_survived(phantom, tiny_model):
    labels = phantom.labels.copy()
    labels[4] = 0
    for method in METHODS:
        result = run(labels, model=tiny_model, config=SmoothingConfig(method=method, max_rounds=1))
        assert result.labels.shape == labels.shape
        if method != "none":
            assert 4 in result.summary["inconsistent_frames_before"]  # a vanishing heart is flagged
    gauss = run(labels, config=SmoothingConfig(method="gaussian", gaussian_sigma_fraction=0.2))
    assert (gauss.labels[4] == Label.LV).sum() > 0.5 * (phantom.labels[4] == Label.LV).sum()


def test_no_heart_at_all_returns_input(tiny_model):
    labels = np.zeros((5, 30, 40), np.uint8)
    labels[:, 20:, 10:20] = Label.LA
    with pytest.warns(UserWarning, match="no LV or MYO"):
        result = smooth_sequence(labels, SPACING, model=tiny_model)
    np.testing.assert_array_equal(result.labels, labels)


def test_es_to_ed_storage_is_reversed_and_back(phantom):
    labels = phantom.labels
    n = len(labels)
    forward = run(labels, config=SmoothingConfig(method="gaussian"), ed_frame=0, es_frame=n - 1)
    stored = labels[::-1].copy()  # ES first: ED is the last frame
    backward = run(stored, config=SmoothingConfig(method="gaussian"), ed_frame=n - 1, es_frame=0)
    np.testing.assert_array_equal(backward.labels, forward.labels[::-1])
    s = backward.summary
    assert s["stored_es_to_ed"] is True
    assert (s["ed_frame"], s["es_frame"]) == (n - 1, 0)  # reported in the stored order
    assert s["ef_percent_after"] == pytest.approx(forward.summary["ef_percent_after"])
    np.testing.assert_allclose(
        backward.frames["lv_volume_ml_after"].to_numpy(), forward.frames["lv_volume_ml_after"].to_numpy()[::-1]
    )
    assert list(backward.frames["frame"]) == list(range(n))


def test_huge_image_is_handled_without_blowup(phantom, tiny_model):
    t, h, w = phantom.labels.shape
    big = np.zeros((4, 3 * h, 3 * w), np.uint8)
    big[:, h : 2 * h, w : 2 * w] = phantom.labels[:4]
    result = run(big, model=tiny_model, config=SmoothingConfig(max_rounds=1))
    assert result.labels.shape == big.shape
    assert not result.labels[:, : h // 2].any()  # far from the heart nothing appears


def test_keep_unflagged_frames_keeps_them_bit_identical(corrupted, tiny_model):
    labels, corruptions = corrupted
    result = run(labels, model=tiny_model, config=SmoothingConfig(keep_unflagged_frames=True, max_rounds=1))
    kept = result.frames["kept_input"].to_numpy()
    flagged = result.frames["inconsistent_before"].to_numpy()
    assert kept.any() and not (kept & flagged).any()
    np.testing.assert_array_equal(result.labels[kept], labels[kept])
    assert result.summary["n_kept_input_frames"] == int(kept.sum())


def test_frames_table_and_summary_are_complete(corrupted):
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES

    labels, _ = corrupted
    result = run(labels, config=SmoothingConfig(method="gaussian"))
    cols = set(result.frames.columns)
    for name in ATTRIBUTE_NAMES:
        assert {f"{name}_before", f"{name}_after", f"flag_{name}_before", f"flag_{name}_after"} <= cols
    assert {"frame", "valid_before", "valid_after", "lv_volume_ml_before", "lv_volume_ml_after",
            "strain_percent_before", "strain_percent_after", "inconsistent_before", "inconsistent_after"} <= cols
    s = result.summary
    for key in ("method", "n_frames", "edv_ml_before", "edv_ml_after", "esv_ml_before", "esv_ml_after",
                "ef_percent_before", "ef_percent_after", "gls_percent_before", "gls_percent_after",
                "ed_frame", "es_frame", "ed_es_source", "n_inconsistent_before", "n_inconsistent_after",
                "inconsistent_frames_before", "inconsistent_frames_after", "n_invalid_before",
                "n_invalid_after", "invalid_frames_before", "invalid_frames_after", "rounds", "residue",
                "config", "package_version", "weights_sha256", "seconds"):
        assert key in s, key
    assert s["n_inconsistent_before"] == int(result.frames["inconsistent_before"].sum())
    assert s["n_invalid_after"] == int((~result.frames["valid_after"]).sum())
    assert s["config"]["method"] == "gaussian" and s["weights_sha256"] is None
    assert s["ed_es_source"] == "detected"
    ef = 100 * (s["edv_ml_before"] - s["esv_ml_before"]) / s["edv_ml_before"]
    assert s["ef_percent_before"] == pytest.approx(ef)


def test_bad_inputs_raise_specific_errors(phantom):
    with pytest.raises(ConfigError, match="method"):
        smooth_sequence(phantom.labels, SPACING, config=SmoothingConfig(method="median"))
    with pytest.raises(InvalidLabelsError):
        smooth_sequence(np.full((3, 8, 8), 7, np.uint8), SPACING, config=SmoothingConfig(method="none"))
    with pytest.raises(ConfigError, match="spacing_mm"):
        smooth_sequence(phantom.labels, (0.0, 1.0), config=SmoothingConfig(method="none"))
    with pytest.raises(ConfigError, match="ed_frame"):
        smooth_sequence(phantom.labels, SPACING, config=SmoothingConfig(method="none"), ed_frame=99, es_frame=0)
    for bad in (0.0, -40.0, float("nan"), float("inf")):  # the CLI checks --fps; the library checks this
        with pytest.raises(ConfigError, match="frame_time_ms=.*milliseconds"):
            smooth_sequence(phantom.labels, SPACING, config=SmoothingConfig(method="none"), frame_time_ms=bad)
    timed = smooth_sequence(phantom.labels, SPACING, config=SmoothingConfig(method="none"), frame_time_ms=40)
    assert timed.summary["frame_time_ms"] == 40.0


class DiskModel:
    """Stub decoder: latent 0 is the radius (grid px) of an LV disk inside a 3 px MYO ring."""

    sha256 = ""

    def __init__(self, grid: int = 32):
        from echotemporal.measure.attributes import ATTRIBUTE_NAMES
        from echotemporal.core.config import ModelConfig

        self.config = ModelConfig(grid_size=grid)
        self.attribute_names = ATTRIBUTE_NAMES
        self.latent_bounds = np.tile([0.0, 16.0], (len(ATTRIBUTE_NAMES), 1))

    def decode(self, latents):
        g = self.config.grid_size
        yy, xx = np.mgrid[:g, :g]
        r = np.hypot(yy - (g - 1) / 2, xx - (g - 1) / 2)[None]
        radius = np.asarray(latents, dtype=np.float32)[:, :1, None]
        lv, ring = r < radius, r < radius + 3
        probs = np.stack([~ring, lv, ring & ~lv], axis=1).astype(np.float32)
        return probs


def test_residual_decoding_keeps_untouched_frames_bit_identical(phantom):
    from echotemporal.model.alignment import fit_alignment
    from echotemporal.core.config import AlignmentConfig
    from echotemporal.pipeline import decode_sequence

    model = DiskModel()
    labels = phantom.labels[:5]
    alignment = fit_alignment(labels, SPACING, AlignmentConfig(grid_size=32))
    z0 = np.zeros((5, 10))
    z0[:, 0] = 8.0
    same = decode_sequence(z0, alignment, labels, model, input_latents=z0)
    np.testing.assert_array_equal(same, labels)  # the detail the disk model lacks is all kept
    z = z0.copy()
    z[2, 0] = 11.0  # grow frame 2's decoded LV by 3 grid px
    out = decode_sequence(z, alignment, labels, model, input_latents=z0)
    changed = (out != labels).any(axis=(1, 2))
    assert changed.tolist() == [False, False, True, False, False]
    assert (out[2] == Label.LV).sum() > (labels[2] == Label.LV).sum()
    full = decode_sequence(z0, alignment, labels, model)  # full decoding: disks everywhere
    assert (full != labels).any(axis=(1, 2)).all()


@pytest.mark.parametrize("config", [
    SmoothingConfig(decoding="full", max_rounds=1),
    SmoothingConfig(whittaker_lambda=0.0, max_rounds=1),
    SmoothingConfig(projection="sparse", max_rounds=1),
])
def test_decoding_variants_run(corrupted, tiny_model, config):
    labels, _ = corrupted
    result = run(labels, model=tiny_model, config=config)
    assert result.labels.shape == labels.shape and result.labels.dtype == np.uint8
    assert result.summary["config"]["decoding"] == config.decoding
    assert result.summary["config"]["projection"] == config.projection


def test_unknown_decoding_is_a_config_error(phantom, tiny_model):
    with pytest.raises(ConfigError, match="decoding"):
        run(phantom.labels, model=tiny_model, config=SmoothingConfig(decoding="magic"))
    with pytest.raises(ConfigError, match="projection"):
        run(phantom.labels, model=tiny_model, config=SmoothingConfig(projection="l0"))


def test_inpaint_latents_interpolates_and_extrapolates_linearly():
    from echotemporal.correct.arvae import inpaint_latents as _inpaint_latents

    t = np.arange(6, dtype=float)
    z = np.stack([2.0 * t + 1.0, -t], axis=1)
    broken = z.copy()
    broken[[2, 5]] = 99.0  # an interior and an end frame lost their structure
    fixed = _inpaint_latents(broken, np.array([False, False, True, False, False, True]))
    np.testing.assert_allclose(fixed, z)


def test_cleanup_keeps_the_largest_component_per_frame_and_fills_holes():
    from echotemporal.correct.cleanup import cleanup_labels, hole_mask, largest_component

    frames = np.zeros((3, 12, 14), np.uint8)
    frames[0, 1:5, 1:5] = 1  # 16 px
    frames[0, 7:10, 7:10] = 1  # 9 px: removed
    frames[1, 1:4, 1:4] = 1  # 9 px, tie with the next: the later one (raster order) is kept
    frames[1, 6:9, 8:11] = 1
    frames[2, 2:10, 2:10] = 2  # a MYO ring around an LV with a background hole
    frames[2, 4:8, 4:8] = 1
    frames[2, 5, 5] = 0
    lv = frames == 1
    kept = largest_component(lv)
    assert kept[0].sum() == 16 and not kept[0, 7:10, 7:10].any()
    assert not kept[1, 1:4, 1:4].any() and kept[1, 6:9, 8:11].all()
    np.testing.assert_array_equal(kept[2], lv[2])
    holes = hole_mask(frames != 0)
    assert holes.sum() == 1 and holes[2, 5, 5]
    out = cleanup_labels(frames.copy(), (1, 2))
    assert out[2, 5, 5] == 1  # the hole takes the nearest label
    assert (out[0] == 1).sum() == 16 and (out[1] == 1).sum() == 9
    assert out[0, 8, 8] == 0


def test_measures_do_not_depend_on_the_thread_count(monkeypatch):
    from echotemporal.measure.sequence import THREADS_ENV, measure_clinical, measure_shape, measure_threads
    from echotemporal.measure.temporal import load_thresholds

    from echotemporal.phantoms import generate_sequence

    seq = generate_sequence(3, view="4CH", n_frames=8)
    thresholds = load_thresholds()
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv(THREADS_ENV, threads)
        assert measure_threads() == int(threads)

        shape = measure_shape(seq.labels, seq.spacing_mm, thresholds)
        clin = measure_clinical(seq.labels, seq.spacing_mm, None, None)
        results.append((shape, clin))
    (s1, c1), (s3, c3) = results
    np.testing.assert_array_equal(s1.attributes, s3.attributes)
    np.testing.assert_array_equal(s1.criteria, s3.criteria)
    np.testing.assert_array_equal(c1.volumes_ml, c3.volumes_ml)
    assert c1.ef_percent == c3.ef_percent and np.isfinite(c1.ef_percent)
    monkeypatch.setenv(THREADS_ENV, "zero")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        measure_threads()
    monkeypatch.delenv(THREADS_ENV)
    assert measure_threads() == 1  # the GIL-bound measures run in the calling thread by default


def test_shipped_model_corrects_a_shifted_broken_sequence_into_valid_consistent_frames():
    """End to end with the shipped weights: a jittered 4CH phantom with a vertically shifted frame,
    a broken myocardium and a hole comes back with every frame consistent and anatomically valid
    (the decoded LV/MYO meet the carried-over LA with no gap), and its corrupted frames closer to the truth."""
    pytest.importorskip("torch")
    from echotemporal.phantoms import annotation_jitter, corrupt_sequence, generate_sequence
    from echotemporal.model.registry import load_model

    truth = generate_sequence(10_000_004, view="4CH", n_frames=16)
    rng = np.random.default_rng(4)
    jittered = annotation_jitter(truth.labels, truth.spacing_mm, rng)
    labels, records = corrupt_sequence(
        jittered, truth.spacing_mm, rng, kinds=("shift_vertical", "broken_myo", "hole"), n_corruptions=3
    )
    result = run(labels, truth.spacing_mm, model=load_model(), ed_frame=truth.ed_frame, es_frame=truth.es_frame)
    s = result.summary
    assert s["n_inconsistent_before"] + s["n_invalid_before"] > 0
    assert s["n_inconsistent_after"] == 0 and s["n_invalid_after"] == 0, s["residue"]
    hit = sorted({r.frame for r in records})
    for value in (Label.LV, Label.MYO):  # the corrupted frames come back closer to the truth
        after = dice(result.labels[hit] == value, truth.labels[hit] == value)
        assert after > dice(labels[hit] == value, truth.labels[hit] == value)
        assert after > 0.9


def test_denoise_averages_border_flicker_without_breaking_validity_or_ed_es():
    """Every frame of a clean phantom gets fresh annotation jitter; the correction denoised over all frames is closer
    to the truth than the plain one, stays valid and consistent, and leaves ED and ES alone."""
    pytest.importorskip("torch")
    from echotemporal.phantoms import annotation_jitter, generate_sequence
    from echotemporal.model.registry import load_model

    truth = generate_sequence(10_000_011, view="2CH", n_frames=14)
    labels = annotation_jitter(truth.labels, truth.spacing_mm, np.random.default_rng(11))
    model = load_model()
    common = dict(model=model, ed_frame=truth.ed_frame, es_frame=truth.es_frame)
    # The Gaussian alone (the turning-point fit of ED and ES is tested in test_denoise.py).
    plain = run(labels, truth.spacing_mm, config=SmoothingConfig(denoise_sigma_frames=0.0, turning_fit_frames=0), **common)
    denoised = run(labels, truth.spacing_mm,
                   config=SmoothingConfig(denoise_sigma_frames=1.0, denoise_scope="all", turning_fit_frames=0), **common)
    default = run(labels, truth.spacing_mm, config=SmoothingConfig(denoise_sigma_frames=1.0, turning_fit_frames=0), **common)
    # By default only the frames the correction changed are denoised: the others come back as drawn.
    corrected = plain.frames["changed"].to_numpy()
    np.testing.assert_array_equal(default.labels[~corrected], labels[~corrected])
    for value in (Label.LV, Label.MYO):
        assert dice(denoised.labels == value, truth.labels == value) > dice(plain.labels == value, truth.labels == value)
    assert denoised.summary["n_invalid_after"] == 0 and denoised.summary["n_inconsistent_after"] == 0
    for anchor in (truth.ed_frame, truth.es_frame):
        np.testing.assert_array_equal(denoised.labels[anchor], plain.labels[anchor])
    n_changed = int((denoised.labels != plain.labels).any(axis=(1, 2)).sum())
    assert n_changed >= len(labels) // 2
    assert denoised.summary["n_denoised_frames"] == n_changed and plain.summary["n_denoised_frames"] == 0


def test_without_ed_es_the_turning_points_of_the_corrected_curve_keep_their_borders():
    """A full cycle given without ED/ES: the temporal Gaussian leaves the ED and ES the corrected curve
    shows alone (averaged with their neighbours, the volume extremes would flatten), and smooths the rest."""
    pytest.importorskip("torch")
    from echotemporal.correct.denoise import turning_frames
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds
    from echotemporal.model.registry import load_model
    from echotemporal.phantoms import annotation_jitter, generate_cycle_sequence

    truth = generate_cycle_sequence(5, frames_per_beat=20, image_shape=(300, 260))
    labels = annotation_jitter(truth.labels, truth.spacing_mm, np.random.default_rng(12))
    model = load_model()
    plain = run(labels, truth.spacing_mm, model=model, config=SmoothingConfig(denoise_sigma_frames=0.0, turning_fit_frames=0))
    denoised = run(labels, truth.spacing_mm, model=model,
                   config=SmoothingConfig(denoise_sigma_frames=1.0, denoise_scope="all", turning_fit_frames=0))
    thresholds = load_thresholds()
    turning = turning_frames(measure_shape(plain.labels, truth.spacing_mm, thresholds, validity=False), thresholds)
    inner = [t for t in turning if 0 < t < len(labels) - 1]
    assert inner and any(abs(t - truth.es_frame) <= 2 for t in inner), (turning, truth.es_frame)
    for t in turning:
        np.testing.assert_array_equal(denoised.labels[t], plain.labels[t])
    assert int((denoised.labels != plain.labels).any(axis=(1, 2)).sum()) >= len(labels) // 2
    assert denoised.summary["n_invalid_after"] == 0 and denoised.summary["n_inconsistent_after"] == 0


def test_glitched_frames_borrow_detail_only_from_near_clean_frames(phantom):
    from echotemporal.model.alignment import fit_alignment
    from echotemporal.core.config import AlignmentConfig
    from echotemporal.correct.decoding import MAX_BORROW_FRAMES, SequenceDecoder

    labels = phantom.labels[:10]
    alignment = fit_alignment(labels, SPACING, AlignmentConfig(grid_size=32))
    borrow = np.zeros(10, dtype=bool)
    borrow[2:9] = True  # clean frames: 0, 1, 9
    decoder = SequenceDecoder(labels, alignment, DiskModel(), np.zeros((10, 10)), borrow=borrow)
    assert MAX_BORROW_FRAMES == 2
    assert decoder.sources[2] == [1] and decoder.sources[3] == [1]
    assert decoder.sources[5] == [] and decoder.sources[6] == []  # decoded in full
    assert decoder.sources[7] == [9] and decoder.sources[8] == [9]


def test_residual_decoding_equals_the_dense_formula(phantom):
    """The decoder interpolates only where a label can flip; the result is the class docstring's
    dense formula evaluated on every pixel (plain frames, borrowing frames, repeated calls)."""
    from echotemporal.model.alignment import fit_alignment, probabilities_to_native
    from echotemporal.core.config import AlignmentConfig
    from echotemporal.correct.decoding import SequenceDecoder

    class SoftDiskModel(DiskModel):  # soft borders: no exact ties between classes
        def decode(self, latents):
            g = self.config.grid_size
            yy, xx = np.mgrid[:g, :g]
            r = np.hypot(yy - (g - 1) / 2, xx - (g - 1) / 2)[None]
            radius = np.asarray(latents, dtype=np.float32)[:, :1, None]
            lv, heart = 1 / (1 + np.exp((r - radius) / 0.6)), 1 / (1 + np.exp((r - radius - 3) / 0.6))
            return np.stack([1 - heart, lv, heart - lv], axis=1).astype(np.float32)

    model = SoftDiskModel()
    labels = phantom.labels[:8]
    alignment = fit_alignment(labels, SPACING, AlignmentConfig(grid_size=32))
    z0 = np.zeros((8, 10))
    z0[:, 0] = np.linspace(7.0, 9.0, 8)
    z = z0.copy()
    z[[1, 2, 5, 6], 0] += [2.5, -2.0, 1.5, 3.0]
    borrow = np.zeros(8, dtype=bool)
    borrow[[5, 6]] = True  # both borrow from 4 and 7
    decoder = SequenceDecoder(labels, alignment, model, z0, cleanup=False, borrow=borrow)
    out = decoder(z)

    p = probabilities_to_native(model.decode(z), alignment)
    p0 = probabilities_to_native(model.decode(z0), alignment)
    y = np.stack([labels == c for c in range(3)], axis=1).astype(np.float32)
    y[:, 0] += labels >= 3  # LA reads as background
    expected = labels.copy()
    for t in range(8):
        if borrow[t]:
            src = decoder.sources[t]
            assert src == [4, 7]
            q = p[t] + np.mean([y[s] - p0[s] for s in src], axis=0)
        else:
            d = np.abs(p[t] - p0[t]).max(axis=0)
            if d.max() < 1 / 6:
                continue
            q = p[t] + np.clip(1 - 2 * d, 0, 1) * (y[t] - p0[t])
        expected[t] = q.argmax(axis=0)
        carried = (expected[t] == 0) & (decoder.carry[t] >= 3)
        expected[t][carried] = decoder.carry[t][carried]
    changed = (out != labels).any(axis=(1, 2))
    assert changed[[1, 2, 5, 6]].all() and not changed[[0, 3, 4, 7]].any()
    # Float rounding of the two interpolations may differ on near-ties only.
    assert (out != expected).sum() <= 3
    np.testing.assert_array_equal(decoder(z), out)  # remembered frames come back the same
    z[1, 0] += 0.5
    again = decoder(z)
    assert (again[1] != out[1]).any() and np.array_equal(again[[0, 2, 3, 4, 5, 6, 7]], out[[0, 2, 3, 4, 5, 6, 7]])


def _cut_left_wall(frame: np.ndarray) -> None:
    """A 2-row cut through the left wall at the LV's mid-height, in place ((H, W) labels): invalid."""
    lv_rows = np.flatnonzero((frame == Label.LV).any(axis=1))
    band = frame[lv_rows[len(lv_rows) // 2] : lv_rows[len(lv_rows) // 2] + 2]
    wall = band[:, : np.flatnonzero((band == Label.LV).any(axis=0))[0]]
    wall[wall == Label.MYO] = Label.BACKGROUND


@pytest.mark.parametrize("broken", [[4], [3, 4, 5], [9], [3, 4, 5, 6, 7]])
def test_residue_frames_take_the_shape_between_their_good_neighbours(phantom, broken):
    """Known answer: frames left invalid by the correction (the lateral wall cut through, the LV
    open to the background) become the signed-distance interpolation of their good neighbours,
    close to the truth; the other frames are untouched. A run of invalid frames may be longer
    (five here) than a run of frames only flagged (``MAX_INTERPOLATED_RUN``) where at least half
    of the sequence is good."""
    from echotemporal.correct.repair import interpolate_residue as _interpolate_residue
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds

    thresholds = load_thresholds()
    truth = phantom.labels
    labels = truth.copy()
    for t in broken:
        _cut_left_wall(labels[t])
    shape = measure_shape(labels, SPACING, thresholds)
    assert not shape.valid[broken].any()
    out, after = _interpolate_residue(labels, shape, SPACING, thresholds)
    assert after.valid.all() and not after.flags.any()
    keep = np.setdiff1d(np.arange(len(truth)), broken)
    np.testing.assert_array_equal(out[keep], labels[keep])
    for t in broken:
        for value in (Label.LV, Label.MYO):
            a, b = out[t] == value, truth[t] == value
            assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.93


@pytest.mark.parametrize(("broken", "limit"), [([3, 4, 5, 6, 7], 4), ([2, 3, 4, 5, 6, 7], 8), ([5, 6, 7, 8, 9], 8)])
def test_a_long_invalid_run_is_left_as_it_is_beyond_the_limit_at_an_end_or_where_most_frames_are_residue(
    phantom, monkeypatch, broken, limit
):
    """Five invalid frames of ten with ``MAX_INVALID_RUN`` = 4 (too long to bridge); six of ten with
    the default limit (most of the sequence residue: bridges between its few good frames would make
    up most of it); the last five (an end run: extrapolated, not bridged, so held to
    ``MAX_INTERPOLATED_RUN``): nothing is interpolated, every frame comes back as it was."""
    from echotemporal.correct import repair
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds

    thresholds = load_thresholds()
    labels = phantom.labels.copy()
    for t in broken:
        _cut_left_wall(labels[t])
    shape = measure_shape(labels, SPACING, thresholds)
    monkeypatch.setattr(repair, "MAX_INVALID_RUN", limit)
    out, after = repair.interpolate_residue(labels, shape, SPACING, thresholds)
    np.testing.assert_array_equal(out, labels)
    assert not after.valid[broken].any()


@pytest.mark.parametrize("shift_px", [2, 3])
def test_a_flagged_frame_is_bridged_from_one_frame_farther_on_each_side(phantom, shift_px):
    """Known answer (``repair._widened_bridges``): frame 4 moved sideways by 2 pixels is the only flagged
    frame; frames 3-5 become the signed-distance blend of frames 2 and 6 (valid, unflagged, close to
    the truth) and every other frame is left bit for bit. Moved by 3 pixels, frames 3 and 5 are
    flagged too: the run of 3 would widen beyond ``MAX_INTERPOLATED_RUN`` and nothing changes."""
    from echotemporal.correct.repair import _widened_bridges
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds

    thresholds = load_thresholds()
    truth = phantom.labels
    labels = truth.copy()
    labels[4] = np.roll(labels[4], shift_px, axis=1)
    shape = measure_shape(labels, SPACING, thresholds)
    flagged = np.flatnonzero(~shape.clean).tolist()
    out, after = _widened_bridges(labels, shape, SPACING, thresholds)
    if shift_px == 3:
        assert flagged == [3, 4, 5]
        np.testing.assert_array_equal(out, labels)
        return
    assert flagged == [4]
    assert after.clean.all()
    np.testing.assert_array_equal(out[[0, 1, 2, 6, 7, 8, 9]], labels[[0, 1, 2, 6, 7, 8, 9]])
    for t in (3, 4, 5):
        for value in (Label.LV, Label.MYO):
            assert dice(out[t] == value, truth[t] == value) > 0.95
    assert dice(out[4] == Label.MYO, truth[4] == Label.MYO) > dice(labels[4] == Label.MYO, truth[4] == Label.MYO)


def _one_frame_moved_with_flagging_bridges(phantom, monkeypatch, flag_after):
    """Frame 4 of ``phantom`` moved sideways by 2 pixels (the only flagged frame), and ``repair.measure_shape``
    patched to also flag frame ``flag_after(replaced)`` of a proposal replacing the frames ``replaced``
    (a sorted list; None: no extra flag), as an attribute's second difference can beside a replaced
    run. Returns (truth, labels, their measures, thresholds)."""
    import dataclasses

    from echotemporal.correct import repair
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds

    thresholds = load_thresholds()
    truth = phantom.labels
    labels = truth.copy()
    labels[4] = np.roll(labels[4], 2, axis=1)
    shape = measure_shape(labels, SPACING, thresholds)
    assert np.flatnonzero(~shape.clean).tolist() == [4]

    def flagging(frames, *args, **kwargs):
        measured = measure_shape(frames, *args, **kwargs)
        replaced = np.flatnonzero((frames != labels).reshape(len(frames), -1).any(axis=1)).tolist()
        frame = flag_after(replaced) if replaced else None
        if frame is None:
            return measured
        flags = measured.flags.copy()
        flags[frame, 0] = True
        return dataclasses.replace(measured, flags=flags)

    monkeypatch.setattr(repair, "measure_shape", flagging)
    return truth, labels, shape, thresholds


def test_a_bridge_that_flags_its_neighbour_reaches_one_frame_farther_again(phantom, monkeypatch):
    """``repair._widened_bridges``, second reach: frame 4 moved by 2 pixels; the bridge from frames 2 and 6
    is made to flag frame 7 (as an attribute's second difference can, beside a replaced run), so it
    is refused and the bridge from frames 1 and 7 replaces frames 2-6 (valid, unflagged, near the
    truth); frames 0 and 7-9 are left bit for bit. With ``WIDEN_FRAMES`` = 1 nothing changes."""
    from echotemporal.correct import repair

    # The first reach's bridge (frames 3-5) flags frame 7.
    truth, labels, shape, thresholds = _one_frame_moved_with_flagging_bridges(
        phantom, monkeypatch, lambda replaced: 7 if replaced[0] == 3 else None
    )
    monkeypatch.setattr(repair, "WIDEN_FRAMES", 1)
    out, _ = repair._widened_bridges(labels, shape, SPACING, thresholds)
    np.testing.assert_array_equal(out, labels)
    monkeypatch.setattr(repair, "WIDEN_FRAMES", 2)
    out, after = repair._widened_bridges(labels, shape, SPACING, thresholds)
    assert after.clean.all()
    np.testing.assert_array_equal(out[[0, 7, 8, 9]], labels[[0, 7, 8, 9]])
    assert all((out[t] != labels[t]).any() for t in (2, 3, 4))
    for t in range(2, 7):
        for value in (Label.LV, Label.MYO):
            assert dice(out[t] == value, truth[t] == value) > 0.95


@pytest.mark.parametrize("widen", [2, 4])
def test_a_bridge_reaches_as_far_as_four_frames_on_each_side(phantom, monkeypatch, widen):
    """``repair._widened_bridges``, far reach: frame 4 moved by 2 pixels; the bridges that reach 1 and 2
    frames farther are made to flag the frame after them (as a step the segmenter draws in one
    attribute does), so both are refused; the default ``WIDEN_FRAMES`` (4) reaches 3 frames farther,
    bridges from frames 0 and 8 and replaces frames 1-7, valid, unflagged and near the truth, frames
    0, 8 and 9 left bit for bit. With ``WIDEN_FRAMES`` = 2 nothing changes."""
    from echotemporal.correct import repair

    assert repair.WIDEN_FRAMES == 4
    truth, labels, shape, thresholds = _one_frame_moved_with_flagging_bridges(
        phantom, monkeypatch, lambda replaced: replaced[-1] + 1 if replaced[0] >= 2 else None
    )
    monkeypatch.setattr(repair, "WIDEN_FRAMES", widen)
    out, after = repair._widened_bridges(labels, shape, SPACING, thresholds)
    if widen == 2:
        np.testing.assert_array_equal(out, labels)
        return
    assert after.clean.all()
    np.testing.assert_array_equal(out[[0, 8, 9]], labels[[0, 8, 9]])
    assert all((out[t] != labels[t]).any() for t in (1, 2, 3, 4))
    for t in range(1, 8):
        for value in (Label.LV, Label.MYO):
            assert dice(out[t] == value, truth[t] == value) > 0.93


def test_a_residue_run_whose_bridge_to_the_end_fails_is_carried_to_the_end(phantom, monkeypatch):
    """A residue run within ``MAX_INTERPOLATED_RUN`` frames of the end, whose bridge to the good frame
    beyond it is rejected (as when that frame, ES, is off too), is carried to the end and
    extrapolated from the frames before it; the frames before the run are untouched."""
    from echotemporal.correct import repair
    from echotemporal.measure.sequence import measure_shape
    from echotemporal.measure.temporal import load_thresholds

    thresholds = load_thresholds()
    truth = phantom.labels
    labels = truth.copy()
    n = len(labels)
    _cut_left_wall(labels[n - 2])
    shape = measure_shape(labels, SPACING, thresholds)
    assert not shape.valid[n - 2] and shape.valid[n - 1]
    proposals, take = [], repair.accept_replacements

    def no_bridge_to_the_end(out, shape, replaced, candidate, spacing_mm, thresholds):
        proposals.append(np.flatnonzero(candidate).tolist())
        if not candidate[n - 1]:
            return out, shape  # rejected
        return take(out, shape, replaced, candidate, spacing_mm, thresholds)

    monkeypatch.setattr(repair, "accept_replacements", no_bridge_to_the_end)
    out, after = repair.interpolate_residue(labels, shape, SPACING, thresholds)
    assert proposals[0] == [n - 2] and [n - 2, n - 1] in proposals
    assert after.valid.all() and not after.flags.any()
    assert (out[n - 1] != labels[n - 1]).any()
    np.testing.assert_array_equal(out[: n - 2], labels[: n - 2])
    for value in (Label.LV, Label.MYO):
        a, b = out[n - 2] == value, truth[n - 2] == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9


def test_a_sequence_that_needs_no_correction_comes_back_as_drawn_unless_all_frames_are_denoised():
    """Clean jittered phantoms (no frame flagged or invalid): the default output is the input, bit for bit,
    ED/ES included; with ``denoise_scope="all"`` the turning-point fit averages the ED/ES flicker."""
    pytest.importorskip("torch")
    from echotemporal.model.registry import load_model
    from echotemporal.phantoms import annotation_jitter, generate_sequence

    model = load_model()
    n_fitted = 0
    for seed in (10_000_011, 10_000_012):
        truth = generate_sequence(seed, view="4CH", n_frames=14)
        labels = annotation_jitter(truth.labels, truth.spacing_mm, np.random.default_rng(seed))
        common = dict(model=model, ed_frame=truth.ed_frame, es_frame=truth.es_frame)
        default = run(labels, truth.spacing_mm, **common)
        assert default.summary["n_inconsistent_before"] == 0 and default.summary["n_invalid_before"] == 0
        np.testing.assert_array_equal(default.labels, labels)
        everything = run(labels, truth.spacing_mm, config=SmoothingConfig(denoise_scope="all"), **common)
        moved = (everything.labels != labels).any(axis=(1, 2))
        n_fitted += int(moved[truth.ed_frame]) + int(moved[truth.es_frame])
    assert n_fitted >= 2


def test_sequence_scope_denoises_every_frame_of_a_broken_sequence_and_leaves_a_clean_one_as_drawn():
    """``denoise_scope="sequence"``: a jittered phantom with one glitch gets the flicker of the frames the
    correction left alone averaged too (closer to the truth than as drawn, ED/ES not smoothed), while
    the same phantom without the glitch, which needs nothing, comes back bit for bit."""
    pytest.importorskip("torch")
    from echotemporal.model.registry import load_model
    from echotemporal.phantoms import annotation_jitter, corrupt_sequence, generate_sequence

    model = load_model()
    truth = generate_sequence(10_000_011, view="2CH", n_frames=14)
    jittered = annotation_jitter(truth.labels, truth.spacing_mm, np.random.default_rng(11))
    broken, records = corrupt_sequence(jittered, truth.spacing_mm, np.random.default_rng(3), kinds=("blob",))
    glitch = {r.frame for r in records}
    common = dict(model=model, ed_frame=truth.ed_frame, es_frame=truth.es_frame)
    corrected = run(broken, truth.spacing_mm, **common)
    sequence = run(broken, truth.spacing_mm, config=SmoothingConfig(denoise_scope="sequence"), **common)
    assert sequence.summary["n_invalid_after"] == 0 and sequence.summary["n_inconsistent_after"] == 0
    left = np.array([t not in glitch and not corrected.frames["changed"].iloc[t] for t in range(len(broken))])
    left[[truth.ed_frame, truth.es_frame]] = False  # the turning-point fit may move them in both scopes
    assert left.sum() >= len(broken) // 2
    np.testing.assert_array_equal(corrected.labels[left], broken[left])  # "corrected": as drawn
    moved = (sequence.labels[left] != broken[left]).any(axis=(1, 2))
    assert moved.sum() >= left.sum() // 2
    for value in (Label.LV, Label.MYO):
        before = np.mean([dice(broken[t] == value, truth.labels[t] == value) for t in np.flatnonzero(left)])
        after = np.mean([dice(sequence.labels[t] == value, truth.labels[t] == value) for t in np.flatnonzero(left)])
        assert after > before
    # ED and ES take the same turning-point fit in both scopes: the neighbours lend their borders as
    # they were before the Gaussian, which would have pulled them toward the extremum's inside.
    for t in (truth.ed_frame, truth.es_frame):
        np.testing.assert_array_equal(sequence.labels[t], corrected.labels[t])
    clean = run(jittered, truth.spacing_mm, config=SmoothingConfig(denoise_scope="sequence"), **common)
    assert clean.summary["n_inconsistent_before"] == 0 and clean.summary["n_invalid_before"] == 0
    np.testing.assert_array_equal(clean.labels, jittered)


def _off_centre(labels: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    """(T, H, W) labels placed in a larger background canvas, ``pad`` = (top, bottom, left, right) pixels."""
    t, h, w = labels.shape
    top, bottom, left, right = pad
    canvas = np.zeros((t, h + top + bottom, w + left + right), np.uint8)
    canvas[:, top : top + h, left : left + w] = labels
    return canvas


def test_the_correction_on_the_heart_crop_equals_the_correction_of_the_whole_image():
    """The correction works on the drawn structures' box (plus a margin), then puts the result back:
    labels, frame table and position attributes equal those of the whole image processed as it is."""
    pytest.importorskip("torch")
    from echotemporal.correct import smoothing
    from echotemporal.measure.temporal import load_thresholds
    from echotemporal.model.registry import load_model
    from echotemporal.phantoms import annotation_jitter, corrupt_sequence, generate_sequence

    truth = generate_sequence(10_000_006, view="4CH", n_frames=12)
    rng = np.random.default_rng(6)
    labels, _ = corrupt_sequence(annotation_jitter(truth.labels, truth.spacing_mm, rng), truth.spacing_mm, rng,
                                 kinds=("shift_vertical", "broken_myo"), n_corruptions=2)
    labels = _off_centre(labels, (40, 0, 260, 30))  # most of the image is background, the heart touches the bottom
    spacing, model, thresholds = truth.spacing_mm, load_model(), load_thresholds()
    box = smoothing.work_box(labels, spacing)
    assert box is not None and box[0].stop == labels.shape[1] and box[1].start > 0  # a real crop
    result = run(labels, spacing, model=model, thresholds=thresholds, ed_frame=truth.ed_frame, es_frame=truth.es_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = smoothing._correct(labels, spacing, truth.ed_frame, truth.es_frame, model, SmoothingConfig(), thresholds)
    assert result.summary["n_inconsistent_before"] + result.summary["n_invalid_before"] > 0
    np.testing.assert_array_equal(result.labels, whole.labels)
    for name in ("epi_center_x_mm", "epi_center_y_mm"):
        k = thresholds.names.index(name)
        np.testing.assert_allclose(result.columns[f"{name}_before"], whole.before.attributes[:, k], atol=1e-9)
        np.testing.assert_allclose(result.columns[f"{name}_after"], whole.after.attributes[:, k], atol=1e-9)


def test_an_output_that_outgrows_the_crop_is_redone_on_the_whole_image(monkeypatch, phantom):
    """When the crop's output comes near an edge that cuts the image (a decoded shape outgrowing what
    was drawn), the correction runs again on the whole image, and only the second run's warnings show."""
    from echotemporal.correct import smoothing

    labels = _off_centre(phantom.labels, (30, 30, 30, 30))
    real = smoothing._correct
    seen = []

    def spy(work, *args):
        seen.append(work.shape)
        done = real(work, *args)
        if len(seen) == 1:  # the crop: pretend a decoded wall filled it to its edge
            warnings.warn("said on the crop", UserWarning)
            done.labels[:, :, 0] = Label.MYO
        return done

    monkeypatch.setattr(smoothing, "_correct", spy)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = smooth_sequence(labels, SPACING, config=SmoothingConfig(method="gaussian"))
    assert len(seen) == 2 and seen[0][2] < labels.shape[2] and seen[1] == labels.shape
    assert not (result.labels[:, :, :20] == Label.MYO).any()
    assert not any("said on the crop" in str(w.message) for w in said)


def test_a_crop_that_stays_clear_of_its_edges_is_kept_and_its_warnings_show_once(monkeypatch, phantom):
    from echotemporal.correct import smoothing

    labels = _off_centre(phantom.labels, (30, 30, 30, 30))
    labels[labels != Label.LA] = 0  # LA only: nothing the shape model can correct, said once
    calls = []
    real = smoothing._correct
    monkeypatch.setattr(smoothing, "_correct", lambda work, *args: calls.append(work.shape) or real(work, *args))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = smooth_sequence(labels, SPACING)
    assert len(calls) == 1 and calls[0][1] < labels.shape[1]
    np.testing.assert_array_equal(result.labels, labels)
    assert sum("no LV or MYO" in str(w.message) for w in said) == 1


@pytest.mark.parametrize(
    "footprint, clear",
    [((slice(5, 15), slice(5, 15)), True), ((slice(2, 15), slice(5, 15)), False),
     ((slice(5, 20), slice(5, 15)), True), ((slice(5, 15), slice(5, 18)), False)],
)
def test_clear_of_cut_edges_only_counts_the_edges_that_cut_the_image(footprint, clear):
    """A 20x20 crop at rows 10-30 (the image's bottom edge) and columns 10-30 of a 30x40 image: a
    margin of 3 pixels is needed from the top, left and right edges, none from the bottom."""
    from echotemporal.correct.smoothing import _clear_of_cut_edges

    out = np.zeros((2, 20, 20), np.uint8)
    out[(1, *footprint)] = Label.LV
    assert _clear_of_cut_edges(out, (slice(10, 30), slice(10, 30)), (2, 30, 40), (3, 3)) is clear
