"""The outcome of a correction (clean / residue / worse) and the rule that keeps the input when worse."""

from __future__ import annotations

import warnings

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.correct import smoothing
from echotemporal.correct.smoothing import judge_outcome, smooth_sequence
from echotemporal.measure.clinical.indices import EF_TURNED_MARGIN
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


def test_reverting_an_unhelped_frame_ends_when_it_flags_a_frame_beyond_its_neighbours(monkeypatch):
    """A reverted frame that makes a frame two or more away newly inconsistent (the metric reaches
    over gaps) stays corrected; the loop once kept the same revert forever (weak U-Net case)."""
    from echotemporal.correct import arvae

    n = 8
    labels = np.zeros((n, 4, 4), dtype=np.uint8)
    out = labels.copy()
    out[[2, 3]] = 1  # frames 2 and 3 were changed and are still invalid; their input frames were valid
    shape = _measures([False] * n, [True, True, False, False, True, True, True, True])
    before = _measures([False] * n, [True] * n)
    calls = []

    def restore(shape, before, rows, thresholds):  # putting frame 2 back flags frame 5
        calls.append(np.flatnonzero(rows).tolist())
        assert len(calls) < 10, "the revert loop does not end"
        flags = np.zeros((n, 1), dtype=bool)
        flags[5] = bool(rows[2])
        return ShapeMeasures(np.zeros((n, 1)), flags, np.ones((n, 1), bool), np.ones(n, bool))

    monkeypatch.setattr(arvae, "restore_frames", restore)
    result, _ = arvae._revert_unhelped(out.copy(), shape, labels, before, thresholds=None)
    assert calls == [[2, 3], [2]]  # frame 3, the nearest to the new flag, is dropped first; then frame 2
    np.testing.assert_array_equal(result, out)  # both kept corrected: no revert left that flags nothing


def _trust(trusted: list[bool]):
    from echotemporal.correct.trust import FrameTrust

    t = np.array(trusted)
    return FrameTrust(*(t.astype(float), t, t.astype(float), t, ~t, t, np.zeros_like(t), t, t.astype(float)))


def test_review_notes_name_an_untrustable_sequence_and_an_esv_above_the_edv():
    from types import SimpleNamespace

    from echotemporal.correct.smoothing import review_notes

    sane = SimpleNamespace(edv_ml=120.0, esv_ml=50.0, ed_frame=0, es_frame=14)
    inverted = SimpleNamespace(edv_ml=111.3, esv_ml=149.9, ed_frame=0, es_frame=14)
    assert review_notes(_trust([True, False, True] + [False] * 12), sane, 15) == []
    assert review_notes(None, sane, 15) == []  # gaussian / none: no trust judged
    [untrusted] = review_notes(_trust([False] * 14 + [True]), sane, 15)
    assert untrusted.startswith("only 1 of 15 frames could be trusted") and "review" in untrusted
    # Two trusted frames carry one beat, not two: in 81 frames they are too few to rebuild from.
    [two_beats] = review_notes(_trust([True] + [False] * 40 + [True] + [False] * 39), sane, 81)
    assert two_beats.startswith("only 2 of 81 frames could be trusted")
    assert review_notes(_trust([True] + [False] * 20 + [True] + [False] * 18), sane, 40) == []
    [esv] = review_notes(None, inverted, 15)
    assert "ESV 149.9 mL >= EDV 111.3 mL" in esv and "ED frame 1, ES frame 15" in esv
    rebuilt = np.arange(15) >= 9
    moved = SimpleNamespace(edv_ml=120.0, esv_ml=80.0, ed_frame=0, es_frame=14, ef_percent=33.3)
    sane.ef_percent = 58.3
    [ef] = review_notes(None, moved, 15, before=sane, reestimated=rebuilt)
    assert ef.startswith("EF 58.3 -> 33.3 % (ED frame 1, ES frame 15) with 6 frame(s) rebuilt") and "frames 10-15" in ef
    assert review_notes(None, moved, 15, before=sane, reestimated=~rebuilt & False) == []  # nothing rebuilt
    near = SimpleNamespace(edv_ml=120.0, esv_ml=55.0, ed_frame=0, es_frame=14, ef_percent=54.2)
    assert review_notes(None, near, 15, before=sane, reestimated=rebuilt) == []  # moved by 4 points only


def test_a_sequence_with_no_trusted_frame_says_so_in_its_summary(monkeypatch):
    phantom = generate_sequence(21, n_frames=10, image_shape=(240, 200))
    real = smoothing.smooth_arvae

    def distrusting(*args, **kwargs):
        outcome = real(*args, **kwargs)
        outcome.trust = _trust([False] * len(phantom.labels))
        return outcome

    monkeypatch.setattr(smoothing, "smooth_arvae", distrusting)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = smooth_sequence(phantom.labels, phantom.spacing_mm)
    assert any(note.startswith("only 0 of 10 frames could be trusted") for note in result.summary["notes"])
    assert any(str(w.message).startswith("only 0 of 10 frames") for w in caught)


def _reversing(work, spacing, before, model, config, thresholds, anchors):
    """A "correction" that plays the sequence backwards (same frames, the volume curve turned over)."""
    from echotemporal.measure.sequence import measure_shape

    out = np.ascontiguousarray(work[::-1])
    return smoothing.MethodOutcome(out, measure_shape(out, spacing, thresholds, reference=(work, before)))


def test_a_correction_that_turns_the_volume_curve_over_is_worse(monkeypatch):
    """Same frame counts, but the given ES ends up larger than the given ED: the input is kept."""
    phantom = generate_sequence(21, n_frames=10, image_shape=(240, 200))
    labels = phantom.labels
    last = len(labels) - 1

    monkeypatch.setattr(smoothing, "_run_method", _reversing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = smooth_sequence(labels, phantom.spacing_mm, ed_frame=0, es_frame=last)
        forced = smooth_sequence(labels, phantom.spacing_mm, ed_frame=0, es_frame=last,
                                 config=SmoothingConfig(on_worse="keep_output"))
    assert kept.summary["outcome"] == "worse" and kept.summary["kept_input_because_worse"]
    np.testing.assert_array_equal(kept.labels, labels)
    assert kept.summary["ef_percent_after"] == kept.summary["ef_percent_before"] > 0
    assert any(">= EDV" in note and "--force" in note for note in kept.summary["notes"])
    from echotemporal.outputs.files import summary_line

    assert ">= EDV" in kept.summary["worse_reason"] and kept.summary["worse_reason"] in summary_line(kept)
    assert forced.summary["outcome"] == "worse" and forced.summary["ef_percent_after"] < 0
    assert any(note.startswith("ESV") and "review" in note for note in forced.summary["notes"])


def test_a_robust_correction_that_turns_the_curve_over_falls_back_to_the_in_place_one(monkeypatch):
    phantom = generate_sequence(21, n_frames=10, image_shape=(240, 200))
    labels = phantom.labels
    last = len(labels) - 1
    seen = []

    def robust_reverses(work, spacing, before, model, config, thresholds, anchors):
        from echotemporal.measure.sequence import measure_shape

        seen.append(config.robust)
        out = np.ascontiguousarray(work[::-1]) if config.robust else work.copy()  # plain: the input as drawn
        rebuilt = (np.arange(len(work)) >= 5) if config.robust else None  # the robust run re-estimated frames
        return smoothing.MethodOutcome(out, measure_shape(out, spacing, thresholds, reference=(work, before)),
                                       reestimated=rebuilt)

    monkeypatch.setattr(smoothing, "_run_method", robust_reverses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = smooth_sequence(labels, phantom.spacing_mm, ed_frame=0, es_frame=last)
    assert seen == [True, False]
    assert result.summary["outcome"] != "worse" and not result.summary["kept_input_because_worse"]
    assert result.summary["ef_percent_after"] > 0
    assert any("corrected in place instead" in note and ">= EDV" in note for note in result.summary["notes"])


def test_a_heart_that_barely_contracts_cannot_be_turned_over(monkeypatch):
    """An input whose EF is under ``EF_TURNED_MARGIN`` (ED and ES within the border flicker of each
    other): a correction that puts the ESV at or above the EDV is not judged worse for it."""
    from scipy import ndimage

    from echotemporal.core.labels import Label

    phantom = generate_sequence(21, n_frames=10, image_shape=(240, 200))
    labels = np.repeat(phantom.labels[:1], 10, axis=0)
    last = len(labels) - 1
    lv = labels[last] == Label.LV
    rim = lv & ~ndimage.binary_erosion(lv)
    rim[int(np.median(np.flatnonzero(lv.any(axis=1)))) :] = False
    labels[last][rim] = Label.MYO  # the ES LV one pixel smaller toward the apex

    monkeypatch.setattr(smoothing, "_run_method", _reversing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = smooth_sequence(labels, phantom.spacing_mm, ed_frame=0, es_frame=last)
    assert 0 < result.summary["ef_percent_before"] < EF_TURNED_MARGIN
    assert result.summary["ef_percent_after"] <= 0
    assert result.summary["outcome"] != "worse" and not result.summary["kept_input_because_worse"]


def test_the_summary_line_says_when_its_ef_is_a_mean_over_beats():
    from types import SimpleNamespace

    from echotemporal.outputs.files import summary_line

    base = dict(method="arvae", n_frames=120, n_inconsistent_before=3, n_inconsistent_after=0, n_invalid_before=2,
                n_invalid_after=0, ef_percent_before=38.1, ef_percent_after=43.5, seconds=1.0, outcome="clean")
    several = summary_line(SimpleNamespace(summary={**base, "n_beats_before": 3, "n_beats_after": 3}))
    assert "EF 38.1%->43.5% (mean of 3 beats)," in several
    one = summary_line(SimpleNamespace(summary={**base, "n_beats_before": 1, "n_beats_after": 1}))
    assert "EF 38.1%->43.5%," in one and "mean" not in one
