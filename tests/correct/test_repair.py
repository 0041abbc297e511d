"""Tests of echotemporal.correct.repair.restore_good_frames: good input frames get their drawing back
where that flags nothing, and keep the correction where it would."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from echotemporal.correct.repair import restore_good_frames
from echotemporal.measure.sequence import measure_shape
from echotemporal.measure.temporal import load_thresholds

SPACING = (0.8, 0.8)


@pytest.fixture(scope="module")
def clean():
    from echotemporal.phantoms import generate_sequence

    labels = generate_sequence(3, n_frames=10, spacing_mm=SPACING).labels
    thresholds = load_thresholds()
    return labels, measure_shape(labels, SPACING, thresholds), thresholds


def test_a_good_frame_the_correction_moved_alone_gets_its_drawing_back(clean):
    work, before, thresholds = clean
    assert before.valid.all() and not before.flags.any()
    out = work.copy()
    out[5] = np.roll(work[5], 1, axis=1)  # 0.8 mm sideways: within the epicardial-centre tolerance
    shape = measure_shape(out, SPACING, thresholds)
    assert not shape.flags.any()
    labels, measures = restore_good_frames(out, shape, work, before, np.ones(10, dtype=bool), thresholds)
    np.testing.assert_array_equal(labels, work)
    np.testing.assert_allclose(measures.attributes, before.attributes)


def test_a_good_frame_stays_corrected_where_its_drawing_would_jump_from_its_corrected_neighbours(clean):
    work, before, thresholds = clean
    out = np.roll(work, 3, axis=2)  # the whole sequence 2.4 mm sideways: consistent, each frame changed
    shape = measure_shape(out, SPACING, thresholds)
    assert not shape.flags.any()
    only_five = np.arange(10) == 5
    labels, measures = restore_good_frames(out, shape, work, before, only_five, thresholds)
    np.testing.assert_array_equal(labels, out)  # frame 5 alone back would sit 2.4 mm off its neighbours
    assert not measures.flags.any()
    labels, _ = restore_good_frames(out, shape, work, before, np.ones(10, dtype=bool), thresholds)
    np.testing.assert_array_equal(labels, work)  # all of them back together: consistent again
    labels, _ = restore_good_frames(out, shape, work, before, np.zeros(10, dtype=bool), thresholds)
    np.testing.assert_array_equal(labels, out)  # nothing judged good: nothing restored


def test_two_invalid_frames_in_a_clean_real_shape_sequence_change_those_frames_and_nothing_else():
    """A 30-frame real-shape sequence (``val`` patients) with one native pixel of jitter, two of whose
    frames the jitter left invalid: the latent projection alone moved 21 frames; the good ones come
    back as drawn and only the two invalid frames change."""
    pytest.importorskip("torch")
    from echotemporal.core.config import SmoothingConfig
    from echotemporal.model.registry import load_model
    from echotemporal.phantoms import (
        REAL_SHAPE_JITTER_PX,
        annotation_jitter,
        default_real_shapes_dir,
        load_real_shapes,
        real_shape_sequence,
        real_shape_spacing_mm,
    )
    from echotemporal.pipeline import smooth_sequence

    if not (default_real_shapes_dir() / "camus-gavkujo-224-npy").is_dir():
        pytest.skip("shared real-shape data not available")
    real = load_real_shapes("val")
    rng = np.random.default_rng(11)
    patient, view = real.pairs()[int(rng.integers(len(real.pairs())))]
    ed, es = real.pair(patient, view)
    truth = real_shape_sequence(ed, es, 30, spacing_mm=real_shape_spacing_mm(aspect=1.3), rng=rng, view=view)
    labels = annotation_jitter(truth.labels, truth.spacing_mm, rng, amplitude_px=REAL_SHAPE_JITTER_PX)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = smooth_sequence(labels, truth.spacing_mm, model=load_model(), ed_frame=truth.ed_frame,
                                 es_frame=truth.es_frame, config=SmoothingConfig(turning_fit_frames=0))
    invalid = result.summary["invalid_frames_before"]
    assert len(invalid) == 2 and result.summary["n_inconsistent_before"] == 0
    assert result.summary["n_invalid_after"] == 0 and result.summary["n_inconsistent_after"] == 0
    changed = np.flatnonzero((result.labels != labels).any(axis=(1, 2)))
    assert changed.tolist() == sorted(invalid)
