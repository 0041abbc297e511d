"""Options shared by the commands: one name per concept, old spellings hidden; the shipped preset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from click.testing import CliRunner

from echotemporal.cli import main
from echotemporal.core.config import SmoothingConfig, load_config

PRESET = Path(__file__).resolve().parents[2] / "configs" / "smoothing.yaml"


def test_every_writing_command_names_its_output_dash_o_output():
    runner = CliRunner()
    for command in ("smooth", "demo", "batch", "plot", "phantom", "prepare", "train", "traverse"):
        text = runner.invoke(main, [command, "--help"]).output
        assert "-o, --output" in text, command
        assert "--output-dir" not in text and "--out " not in text, command


def test_old_output_spellings_still_parse(tmp_path):
    runner = CliRunner()
    # Parsed as -o: the command then fails on another argument, never on an unknown option.
    result = runner.invoke(main, ["phantom", "--output-dir", str(tmp_path / "tree"), "--patients", "0"])
    assert result.exit_code == 2 and "--patients" in result.output and "No such option" not in result.output
    result = runner.invoke(main, ["batch", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "Missing option" not in result.output and "No such option" not in result.output
    assert runner.invoke(main, ["batch", str(tmp_path / "none"), "--outt", "x"]).exit_code == 2  # a real typo fails


def test_smoothing_preset_lists_every_default():
    data = yaml.safe_load(PRESET.read_text())
    assert list(data) == [f.name for f in dataclasses.fields(SmoothingConfig)]
    assert load_config(PRESET, SmoothingConfig) == SmoothingConfig()
