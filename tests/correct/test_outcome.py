"""The outcome of a correction (clean / residue / worse) and the rule that keeps the input when worse."""

from __future__ import annotations

import warnings

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.correct import smoothing
from echotemporal.correct.smoothing import judge_outcome, smooth_sequence
from echotemporal.measure.sequence import ShapeMeasures
from echotemporal.phantoms import generate_sequence


def _measures(flags: list[bool], valid: list[bool]) -> ShapeMeasures:
    n = len(flags)
    return ShapeMeasures(np.zeros((n, 1)), np.array(flags)[:, None], np.ones((n, 1), bool), np.array(valid))


def test_outcome_compares_inconsistent_and_invalid_counts():
    before = _measures([False, True, False], [True, False, True])
    assert judge_outcome(before, _measures([False] * 3, [True] * 3)) == "clean"
    assert judge_outcome(before, _measures([False, True, False], [True] * 3)) == "residue"
    assert judge_outcome(before, _measures([True, True, False], [True] * 3)) == "worse"
    assert judge_outcome(before, _measures([False] * 3, [False, False, True])) == "worse"


def test_a_worse_correction_returns_the_input_unless_forced(monkeypatch):
    phantom = generate_sequence(21, n_frames=10, image_shape=(240, 200))
    labels = phantom.labels

    def breaking(work, spacing, before, model, config, thresholds, anchors):
        out = work.copy()
        out[4] = 0  # the "correction" erases a frame: invalid and inconsistent
        from echotemporal.measure.sequence import measure_shape

        return smoothing.MethodOutcome(out, measure_shape(out, spacing, thresholds, reference=(work, before)))

    monkeypatch.setattr(smoothing, "_run_method", breaking)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = smooth_sequence(labels, phantom.spacing_mm, config=SmoothingConfig(method="none"))
        forced = smooth_sequence(labels, phantom.spacing_mm, config=SmoothingConfig(method="none", on_worse="keep_output"))
    assert kept.summary["outcome"] == "worse" and kept.summary["kept_input_because_worse"]
    np.testing.assert_array_equal(kept.labels, labels)
    assert any("--force" in note for note in kept.summary["notes"])
    assert forced.summary["outcome"] == "worse" and not forced.summary["kept_input_because_worse"]
    assert not forced.labels[4].any()
