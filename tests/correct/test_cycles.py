"""Cardiac cycles through the correction: every beat's ED/ES on the corrected curve, per-beat indices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from echotemporal.core.labels import LV, MYO
from echotemporal.correct.smoothing import smooth_sequence
from echotemporal.phantoms import generate_cycle_sequence


@pytest.fixture(scope="module")
def model():
    from echotemporal.model.registry import load_model

    return load_model()


@pytest.fixture(scope="module")
def cycle():
    return generate_cycle_sequence(4, n_beats=1, frames_per_beat=24, image_shape=(300, 260))


def _grow_lv(frame: np.ndarray, px: int) -> np.ndarray:
    """A glitch: the LV dilated by ``px`` pixels into the myocardium (a choppy dilation)."""
    from scipy import ndimage

    out = frame.copy()
    out[ndimage.binary_dilation(frame == LV, iterations=px) & (frame == MYO)] = LV
    return out


def _run(labels, phantom, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smooth_sequence(labels, phantom.spacing_mm, model=model, frame_time_ms=phantom.frame_time_ms)


def test_clean_full_cycle_gives_one_beat_at_the_true_frames(cycle, model):
    result = _run(cycle.labels, cycle, model)
    s = result.summary
    assert s["n_beats_after"] == 1 and s["cycle_kind_after"] == "full"
    beat = s["beats_after"][0]
    assert abs(beat["ed_frame"] - cycle.beat_ed_frames[0]) <= 1 and abs(beat["es_frame"] - cycle.beat_es_frames[0]) <= 1
    assert s["ef_percent_after"] == pytest.approx(beat["ef_percent"])
    assert beat["rate_unit"] == "mL/s" and beat["peak_filling_rate"] > 0 and beat["peak_ejection_rate"] > 0
    frames = result.frames
    assert set(frames["phase"]) <= {"systole", "diastole", ""} and (frames["beat"] >= -1).all()
    np.testing.assert_allclose(frames["time_ms"], np.arange(len(frames)) * cycle.frame_time_ms)


@pytest.mark.parametrize("end", [0, -1])
def test_a_glitched_end_frame_moves_neither_ed_es_nor_ef(cycle, model, end):
    clean = _run(cycle.labels, cycle, model).summary
    labels = cycle.labels.copy()
    labels[end] = _grow_lv(labels[end], 6)
    s = _run(labels, cycle, model).summary
    assert [b["ed_frame"] for b in s["beats_after"]] == [b["ed_frame"] for b in clean["beats_after"]]
    assert [b["es_frame"] for b in s["beats_after"]] == [b["es_frame"] for b in clean["beats_after"]]
    assert abs(s["ef_percent_after"] - clean["ef_percent_after"]) <= 1.0


def test_two_beats_give_two_beats_with_mean_and_sd(model):
    phantom = generate_cycle_sequence(6, n_beats=2, frames_per_beat=20, image_shape=(300, 260))
    s = _run(phantom.labels, phantom, model).summary
    assert s["n_beats_after"] == 2
    for detected, ed, es in zip(s["beats_after"], phantom.beat_ed_frames, phantom.beat_es_frames):
        assert abs(detected["ed_frame"] - ed) <= 1 and abs(detected["es_frame"] - es) <= 1
    efs = [b["ef_percent"] for b in s["beats_after"]]
    assert s["ef_percent_mean_after"] == pytest.approx(np.mean(efs))
    assert s["ef_percent_sd_after"] == pytest.approx(np.std(efs, ddof=1))
