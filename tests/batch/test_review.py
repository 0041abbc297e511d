"""Review PDF of a batch: one page per patient plus the cohort page, pages that are not blank."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from echotemporal.batch import read_tables, run_batch
from echotemporal.cli import main
from echotemporal.core.errors import ConfigError, OutputExistsError
from echotemporal.io import InfoCfg, geometry_from_spacing, write_info_cfg, write_sequence
from echotemporal.phantoms import generate_sequence
from echotemporal.batch.review import cohort_figure, patient_figure, write_review

PATIENTS = ("patient0001", "patient0002", "patient0003")


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished batch: 2 biplane patients, 1 with only a 4CH view (monoplane), run in-process."""
    root = tmp_path_factory.mktemp("camus")
    for p, patient in enumerate(PATIENTS):
        (root / patient).mkdir()
        views = ("4CH",) if p == 2 else ("2CH", "4CH")
        for v, view in enumerate(views):
            phantom = generate_sequence(7 * p + v, view=view, n_frames=10, image_shape=(128, 112))
            write_sequence(root / patient / f"{patient}_{view}_half_sequence_gt.nii.gz", phantom.labels,
                           geometry_from_spacing(phantom.spacing_mm, 3))
            write_info_cfg(root / patient / f"Info_{view}.cfg",
                           InfoCfg(ed_frame=phantom.ed_frame, es_frame=phantom.es_frame, ef_percent=50.0 + p))
    out = tmp_path_factory.mktemp("batch") / "out"
    summary = run_batch(root, out, method="gaussian", workers=0, progress=False)
    assert summary.n_ok == 5
    return out


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def _pixels(fig) -> np.ndarray:  # noqa: ANN001 - a matplotlib Figure on an Agg canvas
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)


def test_review_pdf_has_one_page_per_patient_plus_cohort(batch_out: Path, tmp_path: Path) -> None:
    path, n_pages = write_review(batch_out, tmp_path / "review.pdf")
    assert path == tmp_path / "review.pdf" and path.stat().st_size > 10_000
    assert n_pages == len(PATIENTS) + 1
    assert _pdf_pages(path) == len(PATIENTS) + 1
    with pytest.raises(OutputExistsError):
        write_review(batch_out, path)


def test_patient_page_renders_non_blank_and_names_the_indices(batch_out: Path) -> None:
    tables = read_tables(batch_out)
    fig = patient_figure(tables, "patient0001")
    pixels = _pixels(fig)
    assert pixels.std() > 20  # curves, text and a table, not an empty page
    assert (pixels < 128).mean() > 0.005
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 3  # 2CH, 4CH, biplane
    texts = " ".join(t.get_text() for legend in legends for t in legend.get_texts())
    assert "EF" in texts and "GLS" in texts and "ED = frame" in texts
    assert "biplane" in fig.get_suptitle()
    mono = patient_figure(tables, "patient0003")
    assert "monoplane" in mono.get_suptitle()
    cohort = cohort_figure(tables)
    assert _pixels(cohort).std() > 20 and "3 patients" in cohort.get_suptitle()


def test_one_patient_as_png(batch_out: Path, tmp_path: Path) -> None:
    path, n_pages = write_review(batch_out, tmp_path / "p2.png", patient="patient0002")
    assert n_pages == 1 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="patient9999"):
        write_review(batch_out, tmp_path / "x.png", patient="patient9999")
    with pytest.raises(ConfigError, match=".pdf"):
        write_review(batch_out, tmp_path / "all.png")


def test_cli_plot(batch_out: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plot", str(batch_out), "-o", str(tmp_path / "r.pdf")])
    assert result.exit_code == 0, result.output
    assert f"{len(PATIENTS) + 1} page(s)" in result.output and _pdf_pages(tmp_path / "r.pdf") == len(PATIENTS) + 1
    missing = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "s.pdf")])
    assert missing.exit_code != 0 and "sequences.csv" in missing.output


def test_review_shows_the_masks_with_one_based_frames(batch_out: Path, tmp_path: Path) -> None:
    path, _ = write_review(batch_out, tmp_path / "masks.pdf")
    images = re.findall(rb"/Subtype\s*/Image", path.read_bytes())
    assert len(images) >= 5  # at least one mask image per sequence (5 sequences)
    tables = read_tables(batch_out)
    fig = patient_figure(tables, "patient0001", batch_out)
    mask_axes = [ax for ax in fig.axes if ax.images]
    assert mask_axes and all(ax.get_title().split(" frame ")[0] in ("2CH", "4CH") for ax in mask_axes)
    frames = {int(ax.get_title().split(" frame ")[1].split()[0]) for ax in mask_axes}
    assert min(frames) >= 1  # numbered from 1, as in the Info cfg
    without = patient_figure(tables, "patient0001")  # no batch folder given: curves only
    assert not any(ax.images for ax in without.axes)
    curve_ax = fig.axes[0]
    ticks = curve_ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks)) and "from 1" in curve_ax.get_xlabel()
