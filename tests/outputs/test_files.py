"""Tests of echotemporal.outputs.files and pipeline.smooth_file: files, geometry, overwrite, figures."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from echotemporal.core.config import SmoothingConfig, load_config
from echotemporal.core.errors import InputFileError, OutputExistsError
from echotemporal.core.jsonable import to_jsonable
from echotemporal.outputs.files import output_paths, sequence_stem
from echotemporal.io import ImageGeometry, InfoCfg, read_sequence, write_info_cfg, write_sequence
from echotemporal.pipeline import default_output_path, smooth_file

SPACING = (0.8, 0.8)


@pytest.fixture(scope="module")
def phantom():
    from echotemporal.phantoms import generate_sequence

    return generate_sequence(5, n_frames=8, spacing_mm=SPACING)


@pytest.fixture()
def sequence_file(tmp_path, phantom):
    """A phantom written with a non-trivial geometry (origin, spacing, direction)."""
    geometry = ImageGeometry(
        spacing=(SPACING[1], SPACING[0], 1.0),
        origin=(12.5, -3.25, 7.0),
        direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    )
    path = tmp_path / "patient0001_4CH_half_sequence.nii.gz"
    write_sequence(path, phantom.labels, geometry)
    return path


def smooth_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smooth_file(*args, **kwargs)


def test_paths_and_stems(tmp_path):
    assert sequence_stem(tmp_path / "a_b.nii.gz") == "a_b"
    assert sequence_stem("x/seq.mhd") == "seq"
    assert default_output_path(tmp_path / "p_4CH.nii.gz") == tmp_path / "p_4CH_smoothed.nii.gz"
    paths = output_paths(tmp_path / "out.nii.gz", tmp_path / "rep", plot=True)
    assert paths["frames"] == tmp_path / "rep" / "out_frames.csv"
    assert paths["summary"].name == "out_summary.json" and paths["volume_figure"].suffix == ".png"
    assert "volume_figure" not in output_paths(tmp_path / "out.nii.gz")


def test_to_jsonable_makes_strict_json():
    obj = {"a": np.float32(1.5), "b": float("nan"), "c": np.arange(2), "d": (np.bool_(True), None)}
    text = json.dumps(to_jsonable(obj), allow_nan=False)
    assert json.loads(text) == {"a": 1.5, "b": None, "c": [0, 1], "d": [True, None]}


def test_smooth_file_writes_everything_with_input_geometry(sequence_file, tmp_path):
    result = smooth_quiet(sequence_file, method="gaussian", report_dir=tmp_path / "reports")
    out = default_output_path(sequence_file)
    assert out.is_file()
    original, written = read_sequence(sequence_file), read_sequence(out)
    assert written.geometry == original.geometry  # origin, spacing and direction copied exactly
    np.testing.assert_array_equal(written.labels, result.labels)

    frames = pd.read_csv(tmp_path / "reports" / f"{sequence_stem(out)}_frames.csv")
    assert len(frames) == len(original.labels)
    assert {"frame", "lv_area_mm2_before", "lv_area_mm2_after", "flag_lv_area_mm2_before", "valid_before",
            "valid_after", "lv_volume_ml_before", "lv_volume_ml_after", "strain_percent_before",
            "strain_percent_after"} <= set(frames.columns)
    np.testing.assert_allclose(frames["lv_volume_ml_after"], result.frames["lv_volume_ml_after"], rtol=1e-5)

    summary_path = tmp_path / "reports" / f"{sequence_stem(out)}_summary.json"
    summary = json.loads(summary_path.read_text())  # strict JSON (NaN would fail allow_nan=False writing)
    for key in ("ef_percent_before", "ef_percent_after", "gls_percent_after", "n_inconsistent_before",
                "n_invalid_after", "config", "package_version", "weights_sha256", "outputs", "input"):
        assert key in summary, key
    assert summary["ef_percent_before"] == pytest.approx(result.summary["ef_percent_before"])
    assert summary["outputs"]["labels"] == str(out)
    config = load_config(tmp_path / "reports" / f"{sequence_stem(out)}_config.yaml", SmoothingConfig)
    assert config == SmoothingConfig(method="gaussian")


def test_overwrite_protection_names_the_file(sequence_file):
    smooth_quiet(sequence_file, method="none")
    out = default_output_path(sequence_file)
    before = out.stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="overwrite") as info:
        smooth_quiet(sequence_file, method="none")
    assert out.name in str(info.value)
    assert out.stat().st_mtime_ns == before  # nothing was touched
    smooth_quiet(sequence_file, method="gaussian", overwrite=True)
    assert out.stat().st_mtime_ns >= before


def test_output_may_not_replace_the_input(sequence_file):
    with pytest.raises(InputFileError, match="replace the input"):
        smooth_quiet(sequence_file, sequence_file, method="none", overwrite=True)


def test_info_cfg_es_to_ed_sequence(tmp_path, phantom):
    stored = phantom.labels[::-1].copy()  # stored ES -> ED
    path = tmp_path / "p_2CH_half_sequence.nii.gz"
    write_sequence(path, stored, spacing_mm=SPACING)
    info = tmp_path / "Info_2CH.cfg"
    n = len(stored)
    write_info_cfg(info, InfoCfg(ed_frame=n - 1, es_frame=0, n_frames=n))
    result = smooth_quiet(path, method="gaussian", info_path=info)
    assert result.summary["ed_es_source"] == "cfg" and result.summary["stored_es_to_ed"] is True
    assert (result.summary["ed_frame"], result.summary["es_frame"]) == (n - 1, 0)
    vols = result.frames["lv_volume_ml_before"].to_numpy()
    assert vols[n - 1] > vols[0]  # ED (last stored frame) is the larger volume
    assert result.summary["ef_percent_before"] > 0


def test_info_cfg_out_of_range_is_a_one_line_error(tmp_path, sequence_file):
    info = tmp_path / "Info_4CH.cfg"
    write_info_cfg(info, InfoCfg(ed_frame=0, es_frame=40, n_frames=41))
    with pytest.raises(InputFileError, match="outside"):
        smooth_quiet(sequence_file, method="none", info_path=info)


def test_single_frame_2d_file_round_trip(tmp_path, phantom):
    path = tmp_path / "frame.nii.gz"
    write_sequence(path, phantom.labels[0], spacing_mm=SPACING)  # a 2D file
    result = smooth_quiet(path, method="gaussian")
    out = read_sequence(default_output_path(path))
    assert out.geometry == read_sequence(path).geometry and out.labels.shape == (1, *phantom.labels.shape[1:])
    assert result.summary["n_frames"] == 1


def test_figures_are_written(sequence_file, tmp_path):
    result = smooth_quiet(sequence_file, method="gaussian", plot=True)
    paths = {k: v for k, v in result.summary["outputs"].items() if k.endswith("figure")}
    assert set(paths) == {"volume_figure", "attributes_figure", "contours_figure"}
    for p in paths.values():
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_figure_contents(sequence_file):
    from echotemporal.plotting import attributes_figure, volume_figure
    from echotemporal.measure.temporal import load_thresholds

    result = smooth_quiet(sequence_file, method="none")
    fig = volume_figure(result.frames, result.summary)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("EF" in t for t in labels) and any(t.startswith("ED") for t in labels)
    assert any(t.startswith("ES") for t in labels)
    assert len(fig.axes) == 2  # volume above dV/dt: the shared frame axis is labelled once, at the bottom
    assert fig.axes[0].get_xlabel() == "" and fig.axes[1].get_xlabel().startswith("frame")
    thresholds = load_thresholds()
    fig = attributes_figure(result.frames, thresholds)
    assert len(fig.axes) == 2 * len(thresholds.names)


def test_frames_csv_is_the_csv_pandas_writes_including_nan_and_text(tmp_path, phantom):
    """The per-frame CSV is written without pandas; it must be byte for byte what
    ``DataFrame.to_csv(index=False, float_format="%.6g")`` writes: NaN cells (a frame without LV),
    booleans, integers, and the failed-criteria text with its separators."""
    from echotemporal.outputs.files import write_frames_csv
    from echotemporal.pipeline import smooth_sequence

    labels = phantom.labels.copy()
    labels[3][labels[3] == 1] = 0  # no LV: NaN attributes and volume, failed criteria
    labels[3, 2:5, 2:5] = 2  # and a stray MYO island: two failed criteria, joined by ";"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = smooth_sequence(labels, phantom.spacing_mm, config=SmoothingConfig(method="none"))
    assert np.isnan(result.frames["lv_volume_ml_before"][3]) and result.frames["failed_criteria_before"][3]
    assert ";" in result.frames["failed_criteria_before"][3]
    ours = write_frames_csv(result, tmp_path / "ours.csv").read_text()
    result.frames.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
    assert ours == (tmp_path / "pandas.csv").read_text()
    assert ours.count("\n") == len(labels) + 1
