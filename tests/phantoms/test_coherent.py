"""Tests of echotemporal.phantoms.coherent and failure_set: each coherent failure kind does what it says."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from echotemporal.measure.attributes import lv_landmarks
from echotemporal.core.labels import drop_la
from echotemporal.phantoms import (
    COHERENT_KINDS,
    broken_frames,
    coherent_failure_case,
    coherent_failure_set,
    coherent_failures,
    default_real_shapes_dir,
    generate_sequence,
    load_real_shapes,
)

SMALL = (220, 180)  # about 0.7 x 1.0 mm pixels
EIGHT = np.ones((3, 3), dtype=bool)

needs_real_224 = pytest.mark.skipif(
    not (default_real_shapes_dir() / "camus-gavkujo-224-npy" / "derived" / "labels_repaired_apex_up_uint8.npz").is_file(),
    reason="shared real-shape data not available",
)


@pytest.fixture(scope="module")
def phantom():
    return generate_sequence(11, n_frames=14, image_shape=SMALL)


def _break(phantom, kind: str, seed: int = 0, with_la: bool = True):
    truth = phantom.labels if with_la else drop_la(phantom.labels)
    out, runs = coherent_failures(truth, phantom.spacing_mm, np.random.default_rng(seed), kinds=(kind,),
                                  broken_fraction=(0.5, 0.5))
    assert len(runs) == 1 and runs[0].kind == kind
    return truth, out, runs[0]


def _axial_mm(frame: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, float]:
    """(H, W) axial coordinate (mm, 0 at the mitral plane, + towards the apex) of the frame's LV, and its length."""
    marks = lv_landmarks(frame, spacing)
    base = np.array([marks.base_midpoint[0] * spacing[0], marks.base_midpoint[1] * spacing[1]])
    apex = np.array([marks.apex[0] * spacing[0], marks.apex[1] * spacing[1]])
    length = float(np.linalg.norm(apex - base))
    u = (apex - base) / length
    rows = np.arange(frame.shape[0])[:, None] * spacing[0] - base[0]
    cols = np.arange(frame.shape[1])[None, :] * spacing[1] - base[1]
    return rows * u[0] + cols * u[1], length


def _n(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, structure=EIGHT)[1])


def _plateau(run) -> int:
    return (run.first_frame + run.last_frame) // 2


def test_wall_dropout_removes_one_side_of_the_myocardium(phantom):
    truth, out, run = _break(phantom, "wall_dropout")
    for t in run.frames:
        changed = out[t] != truth[t]
        assert changed.sum() > 0
        assert np.all(truth[t][changed] == 2), "only myocardium is lost"
        assert set(np.unique(out[t][changed]).tolist()) <= {0, 1}
        # One side of the long axis only (septal or lateral wall).
        marks = lv_landmarks(truth[t], phantom.spacing_mm)
        cols = np.nonzero(changed)[1]
        side = np.sign(cols - marks.base_midpoint[1])
        assert abs(side.mean()) > 0.95
    t = _plateau(run)
    lost_mm2 = float(((truth[t] == 2) & (out[t] != 2)).sum()) * phantom.spacing_mm[0] * phantom.spacing_mm[1]
    assert lost_mm2 > 40.0  # a segment of wall, not a few pixels


def test_lv_split_cuts_the_cavity_in_pieces(phantom):
    for seed in range(3):
        truth, out, run = _break(phantom, "lv_split", seed)
        for t in run.frames:
            assert _n(out[t] == 1) >= 2, f"seed {seed} frame {t}: LV in one piece"
            changed = out[t] != truth[t]
            assert np.all(truth[t][changed] == 1)


def test_base_leak_hangs_at_least_10mm_below_the_mitral_plane(phantom):
    for with_la in (True, False):
        truth, out, run = _break(phantom, "base_leak", 1, with_la)
        t = _plateau(run)
        axial, _ = _axial_mm(truth[t], phantom.spacing_mm)
        structure = (out[t] == 1) | (out[t] == 2)
        assert axial[structure].min() <= -10.0
        assert axial[(truth[t] == 1) | (truth[t] == 2)].min() > -3.0  # the truth does not hang there
        for f in run.frames:
            changed = out[f] != truth[f]
            assert changed.any() and np.all(np.isin(truth[f][changed], (0, 3)))
            assert _n(out[f] == 1) == 1  # attached to the LV, not a floating blob


def test_apex_cut_moves_the_lv_apex_down(phantom):
    truth, out, run = _break(phantom, "apex_cut", 2)
    for t in run.frames:
        axial, length = _axial_mm(truth[t], phantom.spacing_mm)
        lost = axial[out[t] == 1].max()
        assert length - lost >= 2.0
        changed = out[t] != truth[t]
        assert axial[changed].min() > 0.5 * length, "only the apical part changes"
    t = _plateau(run)
    axial, length = _axial_mm(truth[t], phantom.spacing_mm)
    assert length - axial[out[t] == 1].max() >= min(8.0, length / 3.0 - 1.0)


def test_over_under_changes_the_lv_area_with_the_drawn_sign(phantom):
    seen = set()
    for seed in range(8):
        truth, out, run = _break(phantom, "over_under", seed)
        sign = 1 if "sign=1" in run.detail else -1
        for t in run.frames:
            change = float((out[t] == 1).sum()) / float((truth[t] == 1).sum()) - 1.0
            assert sign * change > 0.02, f"seed {seed} frame {t}: LV area change {change:+.3f}"
        seen.add(sign)
        if seen == {-1, 1}:
            break
    assert seen == {-1, 1}


def test_base_swap_changes_labels_only_near_the_base(phantom):
    variants = set()
    for seed in range(10):
        truth, out, run = _break(phantom, "base_swap", seed)
        variants.add(run.detail.split()[0])
        for t in run.frames:
            changed = out[t] != truth[t]
            assert changed.any()
            axial, _ = _axial_mm(truth[t], phantom.spacing_mm)
            assert np.abs(axial[changed]).max() <= 19.0
            assert np.all(out[t][changed] != 0) and np.all(truth[t][changed] != 0), "a swap, not a loss"
    assert len(variants) >= 2


def test_myo_fragments_break_the_myocardium_in_three_to_seven_pieces(phantom):
    counts = []
    for seed in range(4):
        truth, out, run = _break(phantom, "myo_fragments", seed)
        for t in run.frames:
            n = _n(out[t] == 2)
            assert 3 <= n <= 7, f"seed {seed} frame {t}: {n} pieces"
            changed = out[t] != truth[t]
            assert np.all(truth[t][changed] == 2) and np.all(out[t][changed] == 0)
        counts.append(_n(out[_plateau(run)] == 2))
    assert max(counts) > 3


@pytest.mark.parametrize("with_la", [True, False])
def test_mixed_runs_leave_other_frames_identical_and_break_30_to_70_percent(phantom, with_la):
    truth = phantom.labels if with_la else drop_la(phantom.labels)
    for seed in range(4):
        out, runs = coherent_failures(truth, phantom.spacing_mm, np.random.default_rng(seed))
        broken = broken_frames(runs, len(truth))
        assert 0.3 <= broken.mean() <= 0.7
        assert np.array_equal(out[~broken], truth[~broken])
        assert all((out[t] != truth[t]).any() for t in np.flatnonzero(broken))
        assert all(5 <= run.last_frame - run.first_frame + 1 <= 15 for run in runs)
        if not with_la:
            assert not (out == 3).any()


def test_error_evolves_smoothly_within_a_run(phantom):
    for kind in COHERENT_KINDS:
        truth, out, run = _break(phantom, kind, 3)
        changed = out != truth
        ratios = [float((changed[t] ^ changed[t + 1]).sum()) / float((changed[t] | changed[t + 1]).sum())
                  for t in range(run.first_frame, run.last_frame)]
        # Consecutive frames share most of their error; independent errors would share almost none.
        assert np.median(ratios) < 0.6, f"{kind}: {np.round(ratios, 2)}"


def test_deterministic_given_the_seed(phantom):
    a, runs_a = coherent_failures(phantom.labels, phantom.spacing_mm, np.random.default_rng(5))
    b, runs_b = coherent_failures(phantom.labels, phantom.spacing_mm, np.random.default_rng(5))
    c, _ = coherent_failures(phantom.labels, phantom.spacing_mm, np.random.default_rng(6))
    assert np.array_equal(a, b) and runs_a == runs_b
    assert not np.array_equal(a, c)


def test_rejects_unknown_kind(phantom):
    with pytest.raises(ValueError, match="unknown coherent failure kinds"):
        coherent_failures(phantom.labels, phantom.spacing_mm, np.random.default_rng(0), kinds=("glitch",))


def test_parametric_failure_case_without_la():
    case = coherent_failure_case(0, 4, source="parametric", with_la=False, jitter_px=0.0)
    assert case.source == "parametric" and not case.with_la
    assert not (case.truth == 3).any() and not (case.labels == 3).any()
    assert 0.3 <= case.broken.mean() <= 0.7
    assert np.array_equal(case.labels[~case.broken], case.truth[~case.broken])
    assert all((case.labels[t] != case.truth[t]).any() for t in np.flatnonzero(case.broken))


def test_near_total_failure_cases_break_nearly_every_frame_in_long_runs():
    from echotemporal.phantoms.failure_set import NEAR_TOTAL

    for index in (0, 2):  # a half-sequence and a full cycle, parametric
        case = coherent_failure_case(index, 9, source="parametric", jitter_px=0.0, full_cycle=index >= 2, **NEAR_TOTAL)
        assert case.broken.mean() >= 0.9
        assert min(run.last_frame - run.first_frame + 1 for run in case.runs) >= 8 or len(case.runs) == 1
        assert all((case.labels[t] != case.truth[t]).any() for t in np.flatnonzero(case.broken))
    plain = coherent_failure_case(0, 9, source="parametric", jitter_px=0.0)
    assert plain.broken.mean() <= 0.7  # the defaults are the coherent set's


@pytest.mark.slow
def test_parametric_failure_set_is_reproducible_and_mixes_la():
    cases = [coherent_failure_case(i, 4, source="parametric", jitter_px=0.0) for i in range(3)]
    again = coherent_failure_case(2, 4, source="parametric", jitter_px=0.0)
    assert np.array_equal(again.labels, cases[2].labels) and again.runs == cases[2].runs
    assert {c.with_la for c in cases} == {True, False}
    for case in cases:
        assert case.truth.shape == case.labels.shape
        assert 0.3 <= case.broken.mean() <= 0.7
        assert np.array_equal(case.labels[~case.broken], case.truth[~case.broken])
        assert case.with_la == bool((case.truth == 3).any())


@needs_real_224
def test_real_failure_set_uses_measurement_patients_only():
    with pytest.raises(ValueError, match="measurement"):
        coherent_failure_set(2, 0, real_split="train")
    val = load_real_shapes("val")
    as_train = replace(val, splits=np.full(val.splits.shape, "train"))
    with pytest.raises(ValueError, match="splits"):
        coherent_failure_case(1, 0, real=as_train)
    case = coherent_failure_case(1, 0, with_la=False, real=val, jitter_px=0.0)
    assert case.source == "real-val" and case.truth.shape[1:] == (224, 224)
    assert not (case.labels == 3).any() and not (case.truth == 3).any()
    assert 0.3 <= case.broken.mean() <= 0.7
    assert np.array_equal(case.labels[~case.broken], case.truth[~case.broken])


def test_failure_tree_writes_input_truth_cfg_and_every_run_in_the_camus_layout(tmp_path):
    import csv
    import json

    from echotemporal.io import read_info_cfg, read_sequence
    from echotemporal.io.camus import discover_camus
    from echotemporal.phantoms.failure_set import write_failure_tree

    cases = coherent_failure_set(2, 5, source="parametric")
    root = write_failure_tree(tmp_path / "set", cases)
    for case in cases:
        folder = root / f"patient{case.index + 1:04d}"
        stem = f"{folder.name}_{case.view}_half_sequence"
        assert (read_sequence(folder / f"{stem}_gt.nii.gz").labels == case.labels).all()
        assert (read_sequence(folder / f"{stem}_truth.nii.gz").labels == case.truth).all()
        info = read_info_cfg(folder / f"Info_{case.view}.cfg")
        assert (info.ed_frame, info.es_frame, info.n_frames) == (case.ed_frame, case.es_frame, len(case.truth))
    with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(c.runs) for c in cases)
    assert {(r["kind"], int(r["first_frame"])) for r in rows} == {(run.kind, run.first_frame) for c in cases for run in c.runs}
    assert [e["broken_frames"] for e in json.loads((root / "manifest.json").read_text())["cases"]] == [int(c.broken.sum()) for c in cases]
    assert len(discover_camus(root)) == 2  # `batch` finds both
    with pytest.raises(Exception, match="exists"):
        write_failure_tree(root, cases)  # never overwritten without overwrite=True


@needs_real_224
def test_one_native_pixel_of_jitter_on_the_224_grid_is_clean_for_the_thresholds_and_two_are_not():
    """Real-shape sequences on the 224 grid jittered by ``REAL_SHAPE_JITTER_PX`` (one native pixel, as the
    thresholds were calibrated) are almost never flagged; a whole 224 pixel (two native ones) is."""
    import warnings

    from echotemporal.measure.attributes import compute_attributes
    from echotemporal.measure.temporal import detect_inconsistent_frames
    from echotemporal.phantoms import REAL_SHAPE_JITTER_PX, annotation_jitter, real_shape_sequence, real_shape_spacing_mm

    real = load_real_shapes("val")
    pairs = real.pairs()
    share = {}
    for amplitude in (REAL_SHAPE_JITTER_PX, 2 * REAL_SHAPE_JITTER_PX):
        flagged = frames = 0
        for k in range(12):
            rng = np.random.default_rng(500 + k)
            patient, view = pairs[int(rng.integers(len(pairs)))]
            ed, es = real.pair(patient, view)
            seq = real_shape_sequence(ed, es, 16, spacing_mm=real_shape_spacing_mm(aspect=1.3), rng=rng, view=view)
            labels = annotation_jitter(seq.labels, seq.spacing_mm, rng, amplitude_px=amplitude)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flags = detect_inconsistent_frames(compute_attributes(labels, seq.spacing_mm)).any(axis=1)
            flagged, frames = flagged + int(flags.sum()), frames + flags.size
        share[amplitude] = flagged / frames
    assert REAL_SHAPE_JITTER_PX == 0.5
    assert share[REAL_SHAPE_JITTER_PX] <= 0.02
    assert share[2 * REAL_SHAPE_JITTER_PX] >= 0.05


def test_mirror_half_sequence_puts_es_mid_cycle_and_comes_back_towards_ed():
    from echotemporal.phantoms.failure_set import mirror_half_sequence

    half = np.arange(6)[:, None, None] * np.ones((1, 2, 3), dtype=int)  # frame k holds k: ED 0 .. ES 5
    cycle = mirror_half_sequence(half)
    assert cycle.shape == (10, 2, 3)
    assert [int(f[0, 0]) for f in cycle] == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]  # ES at T - 1 = 5, ED not repeated
