"""CAMUS-2019 ED/ES mask pairs: discovered, read as 2-frame sequences, run by batch --ed-es-pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from echotemporal.batch import read_tables
from echotemporal.cli import main
from echotemporal.core.errors import InputFileError
from echotemporal.io import InfoCfg, write_info_cfg
from echotemporal.io.camus_pairs import discover_camus_pairs, read_ed_es_pair
from echotemporal.measure.clinical import ejection_fraction_percent, lv_volumes_ml
from echotemporal.phantoms import generate_sequence


def _write_mask(path: Path, frame: np.ndarray, spacing_mm: tuple[float, float]) -> None:
    image = sitk.GetImageFromArray(frame[None])  # 3D with one slice, as the 2019 release stores them
    image.SetSpacing((spacing_mm[1], spacing_mm[0], 1.0))
    sitk.WriteImage(image, str(path))


@pytest.fixture(scope="module")
def camus2019(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("camus2019")
    truth = {}
    for p in (1, 2):
        folder = root / f"patient{p:04d}"
        folder.mkdir()
        for v, view in enumerate(("2CH", "4CH")):
            phantom = generate_sequence(10 * p + v, view=view, n_frames=10, image_shape=(128, 112))
            ed, es = phantom.labels[phantom.ed_frame], phantom.labels[phantom.es_frame]
            if (p, view) != (2, "4CH"):  # patient0002 4CH has no ES mask: not a pair
                _write_mask(folder / f"patient{p:04d}_{view}_ES_gt.mhd", es, phantom.spacing_mm)
            _write_mask(folder / f"patient{p:04d}_{view}_ED_gt.mhd", ed, phantom.spacing_mm)
            write_info_cfg(folder / f"Info_{view}.cfg", InfoCfg(ed_frame=phantom.ed_frame, es_frame=phantom.es_frame,
                                                              n_frames=10))
            edv, esv = lv_volumes_ml(np.stack([ed, es]), phantom.spacing_mm)
            truth[(f"patient{p:04d}", view)] = ejection_fraction_percent(edv, esv)
    return root, truth


def test_pairs_are_discovered_and_read_as_two_frames(camus2019):
    root, _ = camus2019
    cases = discover_camus_pairs(root)
    assert [(c.patient, c.view) for c in cases] == [("patient0001", "2CH"), ("patient0001", "4CH"), ("patient0002", "2CH")]
    seq = read_ed_es_pair(cases[0].path, cases[0].es_path)
    assert seq.labels.shape == (2, 128, 112) and seq.geometry.spacing[2] == 1.0
    with pytest.raises(InputFileError, match="differ"):
        other = root / "patient0001" / "odd_ES_gt.mhd"
        _write_mask(other, np.zeros((64, 64), np.uint8), (0.3, 0.3))
        read_ed_es_pair(cases[0].path, other)


def test_batch_without_the_option_says_how(camus2019, tmp_path):
    root, _ = camus2019
    result = CliRunner().invoke(main, ["batch", str(root), "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1 and "--ed-es-pairs" in result.output


def test_batch_on_pairs_gives_the_masks_ef(camus2019, tmp_path):
    root, truth = camus2019
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", str(root), "-o", str(out), "--ed-es-pairs", "--method", "none",
                                       "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    seq = read_tables(out).sequences
    assert len(seq) == 3 and (seq["n_frames"] == 2).all()
    for row in seq.to_dict("records"):
        assert row["ef_percent_before"] == pytest.approx(truth[(row["patient"], row["view"])], abs=1e-6)
        assert row["output"].endswith(f"_{row['view']}_EDES_gt.nii.gz") and (out / row["output"]).is_file()
    patients = read_tables(out).patients.set_index("patient")
    assert patients.loc["patient0001", "mode"] == "biplane" and patients.loc["patient0002", "mode"] == "monoplane"
