"""Tests of the `echotemporal smooth` and `echotemporal demo` commands (click CliRunner)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from echotemporal.cli import main
from echotemporal.io import read_sequence

SPACING = (0.8, 0.8)




@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny random model saved as a checkpoint, loadable with --weights."""
    torch = pytest.importorskip("torch")
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES
    from echotemporal.core.config import ModelConfig
    from echotemporal.model.network import ARVAE
    from echotemporal.training.loop import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    net = ARVAE(ModelConfig(grid_size=32, latent_dim=10, channels=(4, 8)))
    ckpt = make_checkpoint(net, ATTRIBUTE_NAMES, np.tile([-3.0, 3.0], (len(ATTRIBUTE_NAMES), 1)))
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("weights") / "tiny.pt")


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_smooth_default_output_and_one_summary_line(seq_path):
    result = invoke("smooth", seq_path, "--method", "gaussian")
    assert result.exit_code == 0, result.output
    out = seq_path.with_name("case_4CH_half_sequence_smoothed.nii.gz")
    assert out.is_file()
    stdout_lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(stdout_lines) == 1 and "gaussian" in stdout_lines[0] and "EF" in stdout_lines[0]
    summary = json.loads(seq_path.with_name("case_4CH_half_sequence_smoothed_summary.json").read_text())
    assert summary["method"] == "gaussian"


def test_smooth_offers_every_method_of_the_library_including_lcc_gaussian(seq_path):
    """``--method lcc-gaussian`` (the by-hand baseline of the benchmark) writes what the library's baseline gives."""
    from echotemporal.core.config import SmoothingConfig
    from echotemporal.correct.baselines import lcc_gaussian_labels

    broken = read_sequence(seq_path).labels.copy()
    broken[3, :4, :4] = 1  # a speck away from the heart, which the largest-component step removes
    from echotemporal.io import write_sequence

    path = seq_path.with_name("speck_4CH_half_sequence.nii.gz")
    write_sequence(path, broken, spacing_mm=SPACING)
    result = invoke("smooth", path, "--method", "lcc-gaussian")
    assert result.exit_code == 0, result.output
    written = read_sequence(path.with_name("speck_4CH_half_sequence_smoothed.nii.gz")).labels
    expected = lcc_gaussian_labels(broken, SmoothingConfig().gaussian_sigma_fraction * len(broken))
    np.testing.assert_array_equal(written, expected)
    assert not (written[3, :4, :4] == 1).any()
    summary = json.loads(path.with_name("speck_4CH_half_sequence_smoothed_summary.json").read_text())
    assert summary["method"] == "lcc-gaussian"


def test_smooth_refuses_to_overwrite(seq_path):
    assert invoke("smooth", seq_path, "--method", "none").exit_code == 0
    line = one_line_error(invoke("smooth", seq_path, "--method", "none"))
    assert "case_4CH_half_sequence_smoothed" in line and "--overwrite" in line
    assert invoke("smooth", seq_path, "--method", "none", "--overwrite").exit_code == 0


def test_smooth_missing_input_is_one_line(tmp_path):
    line = one_line_error(invoke("smooth", tmp_path / "nope.nii.gz"))
    assert "nope.nii.gz" in line


def test_smooth_bad_config_key_is_one_line(seq_path, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("whittaker_lambda: 2.0\nsigma: 3\n")
    line = one_line_error(invoke("smooth", seq_path, "--config", cfg))
    assert "sigma" in line and "valid keys" in line


def test_smooth_config_preset_and_flag_precedence(seq_path, tmp_path):
    cfg = tmp_path / "preset.yaml"
    cfg.write_text("method: none\ngaussian_sigma_fraction: 0.2\n")
    out = tmp_path / "o.nii.gz"
    result = invoke("smooth", seq_path, "-o", out, "--config", cfg, "--method", "gaussian", "--report-dir", tmp_path / "r")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "o_summary.json").read_text())
    assert summary["method"] == "gaussian" and summary["config"]["gaussian_sigma_fraction"] == 0.2


def test_smooth_missing_weights_is_one_line(seq_path, tmp_path):
    line = one_line_error(invoke("smooth", seq_path, "--weights", tmp_path / "none.pt"))
    assert "none.pt" in line


def test_smooth_arvae_with_weights_and_plot(seq_path, tiny_weights, tmp_path):
    out = tmp_path / "arvae.nii.gz"
    result = invoke("smooth", seq_path, "-o", out, "--weights", tiny_weights, "--plot")
    assert result.exit_code == 0, result.output
    written = read_sequence(out)
    assert written.labels.shape == read_sequence(seq_path).labels.shape
    assert (tmp_path / "arvae_volume.png").is_file() and (tmp_path / "arvae_attributes.png").is_file()
    summary = json.loads((tmp_path / "arvae_summary.json").read_text())
    assert summary["method"] == "arvae" and len(summary["weights_sha256"]) == 64


def test_demo_with_tiny_weights(tmp_path, tiny_weights, monkeypatch):
    import functools

    from echotemporal import phantoms

    # A coarse, short phantom: the random model's output is large and slow to measure at CAMUS size.
    small = functools.partial(phantoms.generate_sequence, n_frames=10, spacing_mm=SPACING)
    monkeypatch.setattr(phantoms, "generate_sequence", small)
    out_dir = tmp_path / "demo"
    result = invoke("demo", "-o", out_dir, "--weights", tiny_weights, "--seed", "1")
    assert result.exit_code == 0, result.output
    for name in ("phantom_4CH_half_sequence.nii.gz", "phantom_4CH_half_sequence_truth.nii.gz", "Info_4CH.cfg",
                 "corruptions.json", "phantom_4CH_half_sequence_smoothed.nii.gz",
                 "phantom_4CH_half_sequence_smoothed_volume.png"):
        assert (out_dir / name).is_file(), name
    assert str(out_dir) in result.stdout
    line = one_line_error(invoke("demo", "-o", out_dir, "--weights", tiny_weights))
    assert "--overwrite" in line


@pytest.mark.slow
def test_demo_with_shipped_weights(tmp_path):
    from echotemporal.model.registry import DEFAULT_WEIGHTS, weights_dir

    if not (weights_dir() / DEFAULT_WEIGHTS).is_file():
        pytest.skip("shipped weights not present")
    result = invoke("demo", "-o", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "phantom_4CH_half_sequence_smoothed_summary.json").read_text())
    assert summary["n_inconsistent_after"] <= summary["n_inconsistent_before"]
