"""`smooth` and `check`: outcome in the summary line and exit code, --force/--strict, --ed/--es/--fps/--spacing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from echotemporal.cli import main
from echotemporal.correct import smoothing
from echotemporal.io import read_sequence, write_sequence

SPACING = (0.8, 0.8)




def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_clean_exits_0_and_says_so(seq_path, tmp_path):
    result = invoke("smooth", seq_path, "-o", tmp_path / "o.nii.gz", "--method", "none", "--strict")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("CLEAN ")


def test_residue_names_frames_one_based_and_strict_exits_3(seq_path, phantom, tmp_path):
    labels = phantom.labels.copy()
    labels[3][labels[3] == 1] = 2  # frame 4 (1-based) loses its LV: invalid, and "none" leaves it so
    path = tmp_path / "glitch_4CH.nii.gz"
    write_sequence(path, labels, spacing_mm=SPACING)
    relaxed = invoke("smooth", path, "-o", tmp_path / "a.nii.gz", "--method", "none")
    strict = invoke("smooth", path, "-o", tmp_path / "b.nii.gz", "--method", "none", "--strict")
    assert relaxed.exit_code == 0 and strict.exit_code == 3, strict.output
    assert relaxed.output.splitlines()[-1].startswith("RESIDUE ") and "invalid frame(s) 4" in relaxed.output


def test_worse_exits_4_keeps_input_unless_force(seq_path, phantom, tmp_path, monkeypatch):
    def breaking(work, spacing, before, model, config, thresholds, anchors):
        out = work.copy()
        out[4] = 0
        from echotemporal.measure.sequence import measure_shape

        return smoothing.MethodOutcome(out, measure_shape(out, spacing, thresholds, reference=(work, before)))

    monkeypatch.setattr(smoothing, "_run_method", breaking)
    kept = invoke("smooth", seq_path, "-o", tmp_path / "k.nii.gz", "--method", "none")
    forced = invoke("smooth", seq_path, "-o", tmp_path / "f.nii.gz", "--method", "none", "--force")
    assert kept.exit_code == 4 and forced.exit_code == 4, kept.output
    assert kept.output.splitlines()[-1].startswith("WORSE ") and "input kept" in kept.output
    np.testing.assert_array_equal(read_sequence(tmp_path / "k.nii.gz").labels, phantom.labels)
    assert not read_sequence(tmp_path / "f.nii.gz").labels[4].any()


def test_ed_es_are_one_based_and_fps_gives_frame_time(seq_path, tmp_path):
    out = tmp_path / "o.nii.gz"
    result = invoke("smooth", seq_path, "-o", out, "--method", "none", "--ed", 1, "--es", 7, "--fps", 50)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o_summary.json").read_text())
    assert (summary["ed_frame"], summary["es_frame"], summary["ed_es_source"]) == (0, 6, "options")
    assert summary["frame_time_ms"] == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--ed", 2, "--es", 2), "ED = ES = frame 2"),
        (("--ed", 2, "--es", 3), "adjacent"),
        (("--ed", 8, "--es", 1), "swapped"),
        (("--ed", 1, "--es", 30), "--es 30 is outside frames 1..8"),
    ],
)
def test_implausible_ed_es_is_one_line_error(seq_path, tmp_path, args, words):
    for command in (("smooth", seq_path, "-o", tmp_path / "o.nii.gz", "--method", "none"), ("check", seq_path)):
        result = invoke(*command, *args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error:"), result.output
        assert words in lines[0]


def test_implausible_spacing_and_orientation_refused_with_override(phantom, tmp_path):
    big = tmp_path / "big.nii.gz"
    write_sequence(big, phantom.labels, spacing_mm=(100.0, 100.0))
    refused = invoke("check", big)
    assert refused.exit_code == 1 and "--spacing ROW_MM COL_MM" in refused.output
    given = invoke("check", big, "--spacing", 0.8, 0.8)
    assert given.exit_code == 0 and "0.8 x 0.8 mm" in given.output
    turned = tmp_path / "turned.nii.gz"
    write_sequence(turned, np.ascontiguousarray(phantom.labels.transpose(0, 2, 1)), spacing_mm=SPACING)
    result = invoke("check", turned)
    assert result.exit_code == 1 and "looks transposed or rotated" in result.output
    allowed = invoke("check", turned, "--allow-implausible")
    assert allowed.exit_code == 0 and "looks transposed" in allowed.output  # as a warning line


def test_check_prints_one_based_frames(seq_path, tmp_path):
    cfg = tmp_path / "Info_4CH.cfg"
    cfg.write_text("ED: 1\nES: 8\nNbFrame: 8\n")
    result = invoke("check", seq_path, "--info", cfg)
    assert result.exit_code == 0, result.output
    assert "numbered from 1" in result.output and "ED frame 1, ES frame 8 (given)" in result.output
