"""Plausibility gates: spacing, ED/ES, volumes and orientation, each with a known answer on a phantom."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from scipy import ndimage

from echotemporal.core.errors import InputFileError
from echotemporal.io import write_sequence
from echotemporal.io.header_spacing import spacing_in_header
from echotemporal.measure import plausibility
from echotemporal.measure.inputs import prepare_input
from echotemporal.phantoms import generate_sequence

SPACING = (0.8, 0.8)


@pytest.fixture(scope="module")
def phantom():
    return generate_sequence(7, n_frames=8, spacing_mm=SPACING)


def test_spacing_range_and_missing_header():
    assert plausibility.spacing_problem((0.3, 0.3)) is None
    assert "outside the 0.05-2 mm" in plausibility.spacing_problem((100.0, 100.0))
    assert "outside" in plausibility.spacing_problem((0.01, 0.3))
    assert "no pixel spacing" in plausibility.spacing_problem((1.0, 1.0), in_header=False)


def test_ed_es_gates_use_one_based_frames():
    assert plausibility.ed_es_problem(None, 3, 10) is None
    assert plausibility.ed_es_problem(0, 9, 10) is None
    assert "ED = ES = frame 1" in plausibility.ed_es_problem(0, 0, 10)
    assert "adjacent" in plausibility.ed_es_problem(0, 1, 10)
    assert plausibility.ejection_problem(120.0, 50.0, 0, 9) is None
    message = plausibility.ejection_problem(50.0, 120.0, 9, 0)
    assert "swapped" in message and "frame 1," in message and "-140.0 %" in message


def test_volume_warning_outside_physiology():
    assert plausibility.volume_warning([50.0, 130.0]) is None
    assert "outside the physiological" in plausibility.volume_warning([5e8, 1e8])
    assert plausibility.volume_warning([np.nan]) is None


def test_orientation_of_upright_transposed_and_flipped(phantom):
    labels = phantom.labels
    assert plausibility.orientation_problem(labels) is None
    assert "transposed or rotated" in plausibility.orientation_problem(labels.transpose(0, 2, 1))
    assert "upside down" in plausibility.orientation_problem(labels[:, ::-1])


def _thick_basal_wall(labels):
    """``labels`` without LA and with a myocardium 30 px thick on both sides of each frame's LV base,
    reaching 12 px below it: the myocardium's centroid lies below the LV's, the base stays open."""
    out = np.where(labels == 3, 0, labels)
    for frame in out:
        rows, cols = np.nonzero(frame == 1)
        base = rows.max()
        left, right = cols[rows == base].min(), cols[rows == base].max()
        for lo, hi in ((left - 30, left), (right + 1, right + 31)):
            block = frame[base - 30 : base + 12, lo:hi]
            block[block == 0] = 2
    return out


def test_orientation_follows_the_open_base_or_the_atrium_not_the_wall(phantom):
    # A U-Net draws the LV short or the basal wall thick: the myocardium's centroid then lies on the
    # base's side (2 of 40 sequences of one set were refused as upside down for it).
    thick = _thick_basal_wall(phantom.labels)
    lv_row = np.nonzero(thick[0] == 1)[0].mean()
    assert np.nonzero(thick[0] == 2)[0].mean() > lv_row
    assert plausibility.orientation_problem(thick) is None
    assert "upside down" in plausibility.orientation_problem(thick[:, ::-1])
    # The LV drawn closed (no opening): the atrium below it tells where the base is.
    closed = thick.copy()
    for frame, drawn in zip(closed, phantom.labels):
        frame[ndimage.binary_dilation(frame == 1, iterations=3) & (frame == 0)] = 2  # a rim all round
        frame[(drawn == 3) & (frame == 0)] = 3
    assert plausibility._open_base(np.where(closed[0] == 3, 0, closed[0]), closed[0] == 1) is None
    assert plausibility.orientation_problem(closed) is None
    assert "upside down" in plausibility.orientation_problem(closed[:, ::-1])


def test_swapped_lv_and_myocardium_labels_are_named_not_called_upside_down(phantom, tmp_path):
    labels = np.where(phantom.labels == 3, 0, phantom.labels)
    swapped = np.select([labels == 1, labels == 2], [2, 1], labels.astype(np.int64)).astype(np.uint8)
    assert plausibility.label_swap_problem(labels) is None
    assert plausibility.label_swap_problem(_thick_basal_wall(phantom.labels)) is None
    assert "labels look swapped" in plausibility.label_swap_problem(swapped)
    assert "2 of 2 frames" in plausibility.label_swap_problem(swapped[:2])
    assert plausibility.label_swap_problem(swapped[:1]) is not None  # one frame: that one decides
    path = tmp_path / "swapped.nii.gz"
    write_sequence(path, swapped, spacing_mm=SPACING)
    with pytest.raises(InputFileError, match=r"swapped.nii.gz: the LV and myocardium labels look swapped.*remap it to CAMUS labels"):
        prepare_input(path)
    assert "labels look swapped" in prepare_input(path, allow_implausible=True).warnings[0]
    # With ED/ES given, the wall's "volume" may grow from ED to ES: the labels are named, not the ED/ES.
    with pytest.raises(InputFileError, match="labels look swapped"):
        prepare_input(path, ed_frame=0, es_frame=len(swapped) - 1)


def test_a_sequence_without_any_heart_is_refused_by_name(phantom, tmp_path):
    path = tmp_path / "empty.nii.gz"
    only_la = np.where(phantom.labels == 3, 3, 0).astype(np.uint8)
    write_sequence(path, only_la, spacing_mm=SPACING)
    with pytest.raises(InputFileError, match=r"empty.nii.gz: no LV \(1\) or myocardium \(2\) in any frame"):
        prepare_input(path, allow_implausible=True)
    one = only_la.copy()
    one[3][phantom.labels[3] == 2] = 2  # a wall in one frame is something to work on
    walled = tmp_path / "walled.nii.gz"
    write_sequence(walled, one, spacing_mm=SPACING)
    assert prepare_input(walled, allow_implausible=True).sequence.n_frames == len(one)


def _zero_pixdim(src, dst):
    header = bytearray(gzip.open(src).read())
    struct.pack_into("<3f", header, 80, 0.0, 0.0, 0.0)
    with gzip.open(dst, "wb") as handle:
        handle.write(bytes(header))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_zero_pixdim_is_refused_unless_spacing_given(phantom, tmp_path):
    path = tmp_path / "a.nii.gz"
    write_sequence(path, phantom.labels, spacing_mm=SPACING)
    zero = tmp_path / "zero.nii.gz"
    _zero_pixdim(path, zero)
    assert spacing_in_header(path) and not spacing_in_header(zero)
    with pytest.raises(InputFileError, match="no pixel spacing.*--spacing ROW_MM COL_MM"):
        prepare_input(zero)
    prepared = prepare_input(zero, spacing_mm=(0.8, 0.8))
    assert prepared.sequence.spacing_mm == (0.8, 0.8)
    assert prepared.sequence.geometry.spacing[:2] == (0.8, 0.8)


def test_prepare_input_ed_es_sources_and_gates(phantom, tmp_path):
    path = tmp_path / "a.nii.gz"
    write_sequence(path, phantom.labels, spacing_mm=SPACING)
    cfg = tmp_path / "Info_4CH.cfg"
    cfg.write_text("ED: 1\nES: 8\nNbFrame: 8\n")
    assert (prepare_input(path, info_path=cfg).ed_es_source, prepare_input(path, info_path=cfg).es_frame) == ("cfg", 7)
    given = prepare_input(path, info_path=cfg, ed_frame=0, es_frame=6, fps=25.0)
    assert (given.ed_es_source, given.es_frame, given.frame_time_ms) == ("options", 6, 40.0)
    swapped = tmp_path / "Info_2CH.cfg"
    swapped.write_text("ED: 8\nES: 1\nNbFrame: 8\n")
    with pytest.raises(InputFileError, match="swapped"):
        prepare_input(path, info_path=swapped)
    assert "swapped" in prepare_input(path, info_path=swapped, allow_implausible=True).warnings[0]
    far = tmp_path / "Info_far.cfg"
    far.write_text("ED: 1\nES: 30\n")
    with pytest.raises(InputFileError, match=r"Info_far.cfg: ES: 30 is outside frames 1..8"):
        prepare_input(path, info_path=far)
    half = tmp_path / "Info_half.cfg"
    half.write_text("ED: 1\nNbFrame: 8\n")
    lone = prepare_input(path, info_path=half)
    assert (lone.ed_frame, lone.es_frame, lone.ed_es_source) == (None, None, None)
    assert any("Info_half.cfg: gives ED but no ES: both are detected" in w for w in lone.warnings)
    with pytest.raises(InputFileError, match="--ed and --es go together"):
        prepare_input(path, ed_frame=0)
    with pytest.raises(InputFileError, match="--fps 1000"):
        prepare_input(path, fps=1000.0)


def test_detected_ed_es_warning_names_the_file_and_the_gate():
    from echotemporal.measure.inputs import detected_ed_es_warning

    assert detected_ed_es_warning("a.nii.gz", 0, 9, 10, 120.0, 50.0) is None
    assert detected_ed_es_warning("a.nii.gz", None, None, 10, None, None) is None
    assert detected_ed_es_warning("a.nii.gz", 0, 0, 1, 50.0, 50.0) is None  # one frame: nothing was detected
    assert "ED = ES = frame 1" in detected_ed_es_warning("a.nii.gz", 0, 0, 2, 50.0, 50.0)
    adjacent = detected_ed_es_warning("a.nii.gz", 1, 2, 3, 120.0, 50.0)
    assert adjacent.startswith("a.nii.gz: ED/ES detected from the input's volume curve: ED frame 2 and ES frame 3")
    assert "--ed/--es" in adjacent
    negative = detected_ed_es_warning("a.nii.gz", 0, 5, 10, 50.0, 120.0, curve="corrected")
    assert "corrected volume curve" in negative and "swapped" in negative
    assert detected_ed_es_warning("a.nii.gz", 0, 5, 10, None, 120.0) is None  # no EDV: no EF to judge


@pytest.fixture()
def three_frames(phantom, tmp_path):
    """ES, ED, ES: the ED/ES detected on its curve are frames 2 and 3 (1-based), adjacent."""
    path = tmp_path / "three.nii.gz"
    write_sequence(path, phantom.labels[[phantom.es_frame, phantom.ed_frame, phantom.es_frame]], spacing_mm=SPACING)
    return path


def test_check_warns_when_detected_ed_es_are_implausible(three_frames):
    from echotemporal.measure.check import check_file

    report = check_file(three_frames)
    assert (report["ed_es_source"], report["ed_frame"], report["es_frame"]) == ("detected", 1, 2)
    assert str(three_frames) in report["warnings"][0] and "adjacent" in report["warnings"][0]
    given = check_file(three_frames, ed_frame=1, es_frame=2, allow_implausible=True)  # the gate of given ED/ES
    assert not any("ED/ES detected" in w for w in given["warnings"])


def test_smooth_warns_when_detected_ed_es_are_implausible(three_frames, tmp_path):
    from echotemporal.pipeline import smooth_file

    with pytest.warns(RuntimeWarning, match="detected from the input's volume curve.*adjacent") as caught:
        result = smooth_file(three_frames, tmp_path / "out.nii.gz", method="none")
    detected = [str(w.message) for w in caught if "ED/ES detected" in str(w.message)]
    assert len(detected) == 1  # the corrected curve gives the same pair: said once
    assert result.summary["input_warnings"] == detected
