"""Plausibility gates in a batch: a refused sequence is a failed row with the gate's one-line message and
the batch goes on; --spacing supplies a header's missing spacing to every sequence; accepted implausible
values and detected ED/ES that give no EF land in the warnings column."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from echotemporal.batch import read_tables, run_batch
from echotemporal.cli import main
from echotemporal.core.errors import InputFileError
from echotemporal.io import InfoCfg, read_sequence, write_info_cfg, write_sequence
from echotemporal.phantoms import generate_sequence

SUFFIX = "_half_sequence_gt"
NO_SPACING = ("patient0001", "2CH")  # NIfTI pixdim 0: no spacing in the header
ED_IS_ES = ("patient0002", "4CH")  # Info cfg ED = ES
DETECTED_ADJACENT = ("patient0003", "4CH")  # no Info cfg; ES, ED, ES: detected ED/ES adjacent


def _zero_pixdim(path: Path) -> None:
    header = bytearray(gzip.open(path).read())
    struct.pack_into("<3f", header, 80, 0.0, 0.0, 0.0)
    with gzip.open(path, "wb") as handle:
        handle.write(bytes(header))


@pytest.fixture(scope="module")
def camus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("camus")
    for p in (1, 2, 3):
        patient = f"patient{p:04d}"
        (root / patient).mkdir()
        for v, view in enumerate(("2CH", "4CH")):
            phantom = generate_sequence(10 * p + v, view=view, n_frames=8, image_shape=(128, 112))
            path = root / patient / f"{patient}_{view}{SUFFIX}.nii.gz"
            if (patient, view) == DETECTED_ADJACENT:
                write_sequence(path, phantom.labels[[phantom.es_frame, phantom.ed_frame, phantom.es_frame]],
                               spacing_mm=phantom.spacing_mm)
                continue
            write_sequence(path, phantom.labels, spacing_mm=phantom.spacing_mm)
            if (patient, view) == NO_SPACING:
                _zero_pixdim(path)
            es = phantom.ed_frame if (patient, view) == ED_IS_ES else phantom.es_frame
            write_info_cfg(root / patient / f"Info_{view}.cfg", InfoCfg(ed_frame=phantom.ed_frame, es_frame=es))
    return root


def test_gated_sequences_fail_alone_with_the_gates_message(camus_root: Path, tmp_path: Path) -> None:
    summary = run_batch(camus_root, tmp_path / "out", method="none", workers=0, progress=False)
    rows = read_tables(tmp_path / "out").sequences.set_index(["patient", "view"])
    assert summary.n_failed == 2 and summary.n_ok == 4
    assert "no pixel spacing" in rows.loc[NO_SPACING, "error"] and "--spacing ROW_MM COL_MM" in rows.loc[NO_SPACING, "error"]
    assert "ED = ES" in rows.loc[ED_IS_ES, "error"] and "\n" not in rows.loc[ED_IS_ES, "error"]
    assert rows.loc[(NO_SPACING[0], "4CH"), "status"] == rows.loc[(ED_IS_ES[0], "2CH"), "status"] == "ok"
    warned = rows.loc[DETECTED_ADJACENT, "warnings"]
    assert "ED/ES detected from the input's volume curve" in warned and "adjacent" in warned
    assert rows.drop(index=[DETECTED_ADJACENT])["warnings"].isna().all()  # read back: empty cells are NaN
    assert summary.n_warned == 1


def test_spacing_and_allow_implausible_reach_every_sequence(camus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "batch", str(camus_root), "-o", str(out), "--method", "none", "--workers", "0", "--no-progress",
        "--spacing", "0.3", "0.4", "--allow-implausible",
    ])
    assert result.exit_code == 0, result.output
    tables = read_tables(out)
    rows = tables.sequences.set_index(["patient", "view"])
    assert (rows["status"] == "ok").all()
    assert "accepted: --allow-implausible" in rows.loc[ED_IS_ES, "warnings"]
    assert f"{rows['warnings'].notna().sum()} sequence(s) with warnings" in result.stderr
    corrected = read_sequence(out / NO_SPACING[0] / f"{NO_SPACING[0]}_{NO_SPACING[1]}{SUFFIX}.nii.gz")
    assert corrected.spacing_mm == pytest.approx((0.3, 0.4))  # the batch's spacing, not the header's
    assert tables.config["spacing_mm"] == [0.3, 0.4]
    area = tables.frames.set_index(["patient", "view"]).loc[(ED_IS_ES[0], "2CH"), "lv_area_mm2_before"]
    inputs = read_sequence(camus_root / ED_IS_ES[0] / f"{ED_IS_ES[0]}_2CH{SUFFIX}.nii.gz")
    assert area.iloc[0] == pytest.approx((inputs.labels[0] == 1).sum() * 0.3 * 0.4)


def test_implausible_spacing_stops_the_batch_before_any_work(camus_root: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="--spacing: pixel spacing 5 x 5 mm"):
        run_batch(camus_root, tmp_path / "out", method="none", workers=0, progress=False, spacing_mm=(5.0, 5.0))
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["batch", str(camus_root), "-o", str(tmp_path / "cli"), "--spacing", "5", "5"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1 and "--spacing" in result.output
