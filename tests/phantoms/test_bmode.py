"""Known-answer tests of the B-mode renderer, the segmenter set's round trip, and (slow) the U-Net."""

from __future__ import annotations

import numpy as np
import pytest

from echotemporal.phantoms.bmode import BModeStyle, render_bmode, sector_mask
from echotemporal.phantoms.segmenter_set import (
    SegmenterCase,
    blank_run,
    load_segmenter_set,
    write_manifest,
    write_segmenter_case,
)

SPACING = (0.6, 0.8)


def _heart(n_frames: int = 3, shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    """(T, H, W) concentric ellipses: LV inside a MYO ring, an LA below, apex towards row 0."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros((n_frames, *shape), dtype=np.uint8)
    for t in range(n_frames):
        scale = 1.0 - 0.05 * t
        epi = ((rows - 45) / (30 * scale)) ** 2 + ((cols - 48) / (18 * scale)) ** 2 <= 1
        endo = ((rows - 45) / (24 * scale)) ** 2 + ((cols - 48) / (12 * scale)) ** 2 <= 1
        la = ((rows - 82) / 9) ** 2 + ((cols - 48) / 11) ** 2 <= 1
        labels[t][epi] = 2
        labels[t][endo] = 1
        labels[t][la & ~epi] = 3
    return labels


def test_sector_mask_is_a_fan_from_the_top_centre() -> None:
    fan = sector_mask((100, 101), (0.5, 0.5), half_angle_deg=30.0)
    assert fan[50, 50] and fan[99, 50]          # down the centre line
    assert not fan[5, 0] and not fan[5, 100]    # beside the apex: outside the fan
    assert fan[60, 50 + int(0.5 * 60 * np.tan(np.deg2rad(25)))]
    assert not fan[60, 50 + int(60 * np.tan(np.deg2rad(35))) + 1]


def test_render_shape_range_and_zero_outside_the_fan() -> None:
    labels = _heart()
    image = render_bmode(labels, SPACING, np.random.default_rng(0))
    assert image.shape == labels.shape and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    fan = sector_mask(labels.shape[1:], SPACING, 45.0)  # wider than any drawn angle
    assert np.all(image[:, ~fan] == 0.0)
    assert image[:, fan].mean() > 0.05


def test_render_is_deterministic_for_a_seed() -> None:
    labels = _heart()
    a = render_bmode(labels, SPACING, np.random.default_rng(7))
    b = render_bmode(labels, SPACING, np.random.default_rng(7))
    c = render_bmode(labels, SPACING, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blood_pool_darker_than_myocardium() -> None:
    labels = _heart()
    # Without near-field clutter, whose haze over the apex would lift this small heart's pool.
    image = render_bmode(labels, SPACING, np.random.default_rng(1), style=BModeStyle(clutter=(0.0, 0.0)))
    assert image[labels == 1].mean() < 0.6 * image[labels == 2].mean()
    assert image[labels == 3].mean() < 0.6 * image[labels == 2].mean()


def test_intensity_decreases_with_depth() -> None:
    labels = np.full((4, 120, 80), 2, dtype=np.uint8)  # uniform tissue: depth is the only trend
    style = BModeStyle(n_dropouts=(0, 0), clutter=(0.0, 0.0), attenuation_per_mm=(0.02, 0.02))
    image = render_bmode(labels, (0.5, 0.5), np.random.default_rng(2), style=style)
    centre = image[:, :, 35:45].mean(axis=(0, 2))
    assert centre[10:30].mean() > centre[50:70].mean() > centre[90:110].mean()


def test_dropout_region_lowers_the_wall_signal() -> None:
    labels = _heart(n_frames=2)
    # No clutter or additive noise: the drop-out gain is then the only difference between the two.
    quiet = {"clutter": (0.0, 0.0), "noise": (0.0, 0.0)}
    without = BModeStyle(n_dropouts=(0, 0), **quiet)
    strong = BModeStyle(n_dropouts=(3, 3), dropout_depth=(0.95, 0.95), dropout_radius_mm=(12.0, 12.0), **quiet)
    a = render_bmode(labels, SPACING, np.random.default_rng(3), style=without)
    b = render_bmode(labels, SPACING, np.random.default_rng(3), style=strong)
    wall = labels == 2
    assert b[wall].mean() < 0.85 * a[wall].mean()
    assert np.all(b <= a + 1e-6)  # a drop-out only removes signal


def test_wall_along_the_beam_loses_more_signal_than_a_wall_facing_it() -> None:
    # A vertical band (runs along the central beam) and a horizontal band (faces it); same seed, so the
    # speckle and noise are identical with and without the specular loss.
    labels = np.zeros((2, 100, 100), dtype=np.uint8)
    labels[:, 40:90, 44:56] = 2
    labels[:, 15:23, 30:70] = 2
    images = {}
    for loss in (0.0, 0.8):
        style = BModeStyle(n_dropouts=(0, 0), clutter=(0.0, 0.0), specular_dropout=(loss, loss))
        images[loss] = render_bmode(labels, (0.5, 0.5), np.random.default_rng(4), style=style)
    along = images[0.8][:, 55:75, 48:52].mean() / images[0.0][:, 55:75, 48:52].mean()
    facing = images[0.8][:, 17:21, 40:60].mean() / images[0.0][:, 17:21, 40:60].mean()
    assert along < 0.8 and facing > 0.9


def test_segmenter_set_round_trip(tmp_path) -> None:
    labels = _heart()
    case = SegmenterCase(
        name="000_patient0001_4CH_la", predicted=labels[::-1].copy(), truth=labels,
        image=np.zeros(labels.shape, dtype=np.uint8), spacing_mm=SPACING, ed_frame=0, es_frame=2,
        view="4CH", with_la=True, patient="patient0001", split="val",
    )
    write_segmenter_case(tmp_path, case)
    write_manifest(tmp_path, [case], {"generator": "test"})
    (back,) = load_segmenter_set(tmp_path)
    np.testing.assert_array_equal(back.predicted, case.predicted)
    np.testing.assert_array_equal(back.truth, labels)
    assert back.spacing_mm == SPACING and back.es_frame == 2 and back.with_la and back.view == "4CH"


@pytest.mark.slow
def test_unet_training_loss_decreases() -> None:
    torch = pytest.importorskip("torch")
    from echotemporal.phantoms.segmenter import predict_labels, train_segmenter

    torch.set_num_threads(1)
    labels = np.concatenate([_heart(4, (64, 64)) for _ in range(2)])
    rng = np.random.default_rng(5)
    images = np.concatenate([render_bmode(labels[:4], SPACING, rng), render_bmode(labels[4:], SPACING, rng)])
    with_la = np.array([True] * 4 + [False] * 4)
    targets = np.where(with_la[:, None, None] | (labels != 3), labels, 0).astype(np.uint8)
    net, log = train_segmenter(images, targets, with_la, steps=40, seed=0, batch_size=4, widths=(8, 16, 32))
    assert log.steps == 40 and not log.stopped_by_time
    assert log.losses[-5:].mean() < 0.7 * log.losses[:5].mean()
    predicted = predict_labels(net, images[4:], False, (64, 64))
    assert predicted.shape == (4, 64, 64) and not (predicted == 3).any()


def test_blank_run_places_one_run_of_the_asked_length() -> None:
    assert np.flatnonzero(blank_run(10, 3, "start")).tolist() == [0, 1, 2]
    assert np.flatnonzero(blank_run(10, 3, "end")).tolist() == [7, 8, 9]
    assert blank_run(4, 9, "end").all()  # clipped to the sequence
    starts = set()
    for seed in range(40):
        run = np.flatnonzero(blank_run(12, 5, "random", seed=seed))
        assert len(run) == 5 and (np.diff(run) == 1).all()  # one contiguous run inside the sequence
        starts.add(int(run[0]))
        assert (blank_run(12, 5, "random", seed=seed) == blank_run(12, 5, seed=seed)).all()  # seeded
    assert starts == set(range(8))  # every place the run fits, ends included
    with pytest.raises(ValueError, match="middle"):
        blank_run(10, 3, "middle")
