"""Tests for ``echotemporal check`` and its library function ``report.check_sequence``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from echotemporal.cli import main
from echotemporal.io import InfoCfg, write_info_cfg, write_sequence

REPORT_KEYS = {
    "file", "info_file", "n_frames", "image_shape", "spacing_mm", "flagged_frames", "inconsistent_frames",
    "n_inconsistent_frames", "failed_criteria", "invalid_frames", "n_invalid_frames", "lv_volumes_ml",
    "strain_percent", "ed_frame", "es_frame", "ed_es_source", "stored_es_to_ed", "edv_ml", "esv_ml",
    "ef_percent", "gls_percent", "attributes", "warnings", "package_version", "frame_time_ms",
}


@pytest.fixture(scope="module")
def phantom():
    from echotemporal import phantoms
    return phantoms.generate_sequence(3, view="4CH", n_frames=12)


@pytest.fixture
def phantom_file(tmp_path: Path, phantom) -> Path:
    return write_sequence(tmp_path / "phantom_4CH_half_sequence.nii.gz", phantom.labels, spacing_mm=phantom.spacing_mm)


def _run(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def test_check_json_on_clean_phantom(phantom, phantom_file: Path) -> None:
    from echotemporal.measure.anatomy import CRITERIA
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES

    result = _run(str(phantom_file), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    n = len(phantom.labels)
    assert report["n_frames"] == n
    assert report["image_shape"] == list(phantom.labels.shape[1:])
    assert report["spacing_mm"] == pytest.approx(list(phantom.spacing_mm))
    assert set(report["attributes"]) == set(ATTRIBUTE_NAMES)
    assert set(report["failed_criteria"]) == set(CRITERIA)
    # a clean phantom: nothing flagged, every frame valid, EF near the analytic one
    assert report["inconsistent_frames"] == [] and all(v == [] for v in report["flagged_frames"].values())
    assert report["invalid_frames"] == []
    assert len(report["lv_volumes_ml"]) == n and len(report["strain_percent"]) == n
    assert report["ed_es_source"] == "detected"
    assert report["ef_percent"] == pytest.approx(phantom.ef_percent, abs=5.0)
    assert report["edv_ml"] > report["esv_ml"] > 0
    assert report["gls_percent"] < 0  # the endocardial contour shortens in systole


def test_check_human_summary(phantom_file: Path) -> None:
    result = _run(str(phantom_file))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert str(phantom_file) in out
    assert "0 inconsistent frame" in out and "EF " in out and "GLS " in out
    assert len(out.splitlines()) <= 10


def test_check_info_cfg_es_to_ed_is_reported_in_file_order(tmp_path: Path, phantom) -> None:
    labels = phantom.labels
    n = len(labels)
    forward = write_sequence(tmp_path / "fwd.nii.gz", labels, spacing_mm=phantom.spacing_mm)
    backward = write_sequence(tmp_path / "bwd.nii.gz", labels[::-1], spacing_mm=phantom.spacing_mm)
    ed, es = int(phantom.ed_frame), int(phantom.es_frame)
    cfg_fwd = write_info_cfg(tmp_path / "Info_fwd.cfg", InfoCfg(ed_frame=ed, es_frame=es, n_frames=n))
    cfg_bwd = write_info_cfg(tmp_path / "Info_bwd.cfg", InfoCfg(ed_frame=n - 1 - ed, es_frame=n - 1 - es, n_frames=n))

    fwd = json.loads(_run(str(forward), "--json", "--info", str(cfg_fwd)).stdout)
    result = _run(str(backward), "--json", "--info", str(cfg_bwd))
    assert result.exit_code == 0, result.output
    bwd = json.loads(result.stdout)
    assert fwd["ed_es_source"] == "given" and not fwd["stored_es_to_ed"]
    assert (fwd["ed_frame"], fwd["es_frame"]) == (ed, es)
    assert bwd["stored_es_to_ed"]
    assert (bwd["ed_frame"], bwd["es_frame"]) == (n - 1 - ed, n - 1 - es)
    assert bwd["lv_volumes_ml"] == pytest.approx(fwd["lv_volumes_ml"][::-1])
    assert bwd["strain_percent"] == pytest.approx(fwd["strain_percent"][::-1], abs=1e-9)
    assert bwd["ef_percent"] == pytest.approx(fwd["ef_percent"])
    assert bwd["gls_percent"] == pytest.approx(fwd["gls_percent"])


@pytest.mark.parametrize(("kind", "key"), [("shift_vertical", "inconsistent_frames"), ("hole", "invalid_frames")])
def test_check_finds_the_corrupted_frame(tmp_path: Path, phantom, kind: str, key: str) -> None:
    from echotemporal.phantoms import corrupt_sequence

    labels, corruptions = corrupt_sequence(
        phantom.labels, phantom.spacing_mm, np.random.default_rng(0), kinds=(kind,), n_corruptions=1
    )
    path = write_sequence(tmp_path / "corrupted.nii.gz", labels, spacing_mm=phantom.spacing_mm)
    result = _run(str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    frame = corruptions[0].frame
    assert frame in report[key]
    per_item = report["flagged_frames" if key == "inconsistent_frames" else "failed_criteria"]
    hit = {name: frames for name, frames in per_item.items() if frame in frames}
    assert hit
    human = _run(str(path)).stdout.splitlines()  # the summary lists each culprit and its frames, from 1
    for name, frames in hit.items():
        assert f"  {name}: frames {', '.join(str(f + 1) for f in frames)}" in human


def test_check_sequence_library_call_is_json_able(phantom) -> None:
    from echotemporal.measure.check import check_sequence

    report = check_sequence(phantom.labels, phantom.spacing_mm, ed_frame=0, es_frame=len(phantom.labels) - 1)
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN
    assert report["ed_frame"] == 0 and report["ed_es_source"] == "given"
    with pytest.raises(ValueError, match="outside the sequence"):
        check_sequence(phantom.labels, phantom.spacing_mm, ed_frame=len(phantom.labels))


def test_check_float_image_fails_with_one_line_naming_the_file(tmp_path: Path) -> None:
    bmode = (np.random.default_rng(0).random((3, 10, 8)) * 255).astype(np.float32)
    path = tmp_path / "patient0001_4CH_half_sequence.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(bmode), str(path))
    result = _run(str(path), "--json")
    assert result.exit_code != 0
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert str(path) in message and "B-mode" in message
    assert "Traceback" not in result.output


def test_check_missing_file_fails_with_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.nii.gz"
    result = _run(str(path))
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert str(path) in message and "not found" in message


def test_check_cfg_beyond_the_sequence_names_the_cfg(tmp_path: Path) -> None:
    frames = np.zeros((3, 8, 8), np.uint8)
    frames[:, 2:6, 2:6], frames[:, 3:5, 3:5] = 2, 1  # something drawn: an empty one is refused first
    seq = write_sequence(tmp_path / "s.nii.gz", frames, spacing_mm=(0.3, 0.3))
    cfg = tmp_path / "Info_4CH.cfg"
    cfg.write_text("ED: 1\nES: 20\nNbFrame: 20\n")
    result = _run(str(seq), "--info", str(cfg))
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(cfg) in result.stderr and "ES: 20" in result.stderr


def test_check_help_is_instant_and_lists_options() -> None:
    result = CliRunner().invoke(main, ["check", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output and "--info" in result.output


def test_check_sequence_survives_an_empty_sequence() -> None:
    from echotemporal.measure.check import check_sequence

    report = check_sequence(np.zeros((3, 40, 30), np.uint8), (0.3, 0.3))
    json.dumps(report, allow_nan=False)
    assert report["ef_percent"] is None and report["lv_volumes_ml"] == [None, None, None]
    assert report["warnings"]  # the reasons travel with the report instead of cluttering stderr


def test_help_of_every_command_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from echotemporal.cli import main\n"
        "names = ['--help'] + [[name, '--help'] for name in main.commands]\n"
        "for args in names:\n"
        "    result = CliRunner().invoke(main, args if isinstance(args, list) else [args])\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "print(len(names), 'torch' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 9  # the group and its commands (check, smooth, batch, plot, phantom, ...)
    assert out[1] == "False", "echotemporal --help imported torch"
    assert out[2] == "False", "echotemporal --help imported pandas"
