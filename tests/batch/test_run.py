"""Batch over a tiny generated CAMUS tree: tables, failures, resume, Ctrl-C, Dask = process pool."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from echotemporal import batch
from echotemporal.batch import (
    BIPLANE_COLUMNS,
    PATIENT_COLUMNS,
    SEQUENCE_COLUMNS,
    read_tables,
    run_batch,
)
from echotemporal.cli import main
from echotemporal.core.errors import OutputExistsError
from echotemporal.io import InfoCfg, geometry_from_spacing, read_sequence, write_info_cfg, write_sequence
from echotemporal.phantoms import generate_sequence

SUFFIX = "_half_sequence_gt"
N_FRAMES = 10
SHAPE = (128, 112)  # small frames keep the suite fast; the benchmark uses CAMUS-size ones
BROKEN = ("patient0002", "4CH")  # a B-mode-like float image instead of a label map
TRUNCATED = ("patient0003", "2CH")  # a file cut inside its header
EF_CFG = {"patient0001": 55.0, "patient0002": 40.0, "patient0003": 62.5}


def _write_tree(root: Path) -> Path:
    """3 patients x 2 views of small phantoms, Info cfgs with EF, one float image, one truncated file."""
    for p, patient in enumerate(EF_CFG, start=1):
        folder = root / patient
        folder.mkdir(parents=True)
        for v, view in enumerate(("2CH", "4CH")):
            phantom = generate_sequence(10 * p + v, view=view, n_frames=N_FRAMES, image_shape=SHAPE)
            path = folder / f"{patient}_{view}{SUFFIX}.nii.gz"
            geometry = geometry_from_spacing(phantom.spacing_mm, 3)
            if (patient, view) == BROKEN:
                rng = np.random.default_rng(p)
                image = rng.uniform(0, 255, size=phantom.labels.shape).astype(np.float32)
                import SimpleITK as sitk

                sitk.WriteImage(sitk.GetImageFromArray(image), str(path))
            else:
                write_sequence(path, phantom.labels, geometry)
            if (patient, view) == TRUNCATED:
                data = path.read_bytes()
                path.write_bytes(data[:64])
            info = InfoCfg(ed_frame=phantom.ed_frame, es_frame=phantom.es_frame, n_frames=N_FRAMES,
                           ef_percent=EF_CFG[patient])
            write_info_cfg(folder / f"Info_{view}.cfg", info)
    return root


@pytest.fixture(scope="module")
def camus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tree(tmp_path_factory.mktemp("camus"))


@pytest.fixture(scope="module")
def pool_out(camus_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, batch.BatchSummary]:
    out = tmp_path_factory.mktemp("pool") / "out"
    summary = run_batch(camus_root, out, method="gaussian", workers=2, progress=False)
    return out, summary


def _without_seconds(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in ("seconds",) if c in table]).reset_index(drop=True)


def test_tables_have_the_right_rows_and_columns(camus_root: Path, pool_out: tuple[Path, batch.BatchSummary]) -> None:
    out, summary = pool_out
    tables = read_tables(out)
    seq = tables.sequences
    assert tuple(seq.columns) == SEQUENCE_COLUMNS
    assert list(zip(seq["patient"], seq["view"])) == [(p, v) for p in EF_CFG for v in ("2CH", "4CH")]
    assert (summary.n_sequences, summary.n_ok, summary.n_failed) == (6, 4, 2)
    assert sorted(map(tuple, seq.loc[seq["status"] == "failed", ["patient", "view"]].to_numpy())) == sorted(
        [BROKEN, TRUNCATED]
    )
    ok = seq[seq["status"] == "ok"]
    assert set(seq.loc[seq["status"] == "failed", "outcome"]) == {"failed"}
    assert set(ok["outcome"]) <= {"clean", "residue", "worse"}
    assert summary.outcomes["failed"] == 2 and sum(summary.outcomes.values()) == 6
    assert (ok["n_frames"] == N_FRAMES).all()
    assert (ok["n_beats_after"] >= 1).all()
    beats = tables.beats  # one row per beat, before and after, frames numbered from 1
    assert set(zip(beats["patient"], beats["view"])) == set(zip(ok["patient"], ok["view"]))
    assert beats["ed_frame"].min() >= 1 and set(beats["when"]) == {"before", "after"}
    assert ok["ef_percent_after"].notna().all() and ok["edv_ml_after"].gt(0).all()
    assert (ok["n_inconsistent_after"] >= 0).all() and ok["seconds"].gt(0).all()
    # Info cfg EF sits beside ours, per sequence and per patient.
    assert dict(zip(ok["patient"], ok["info_ef_percent"])) == {p: EF_CFG[p] for p in ok["patient"]}

    frames = tables.frames
    assert list(frames.columns[:3]) == ["patient", "view", "frame"]
    assert {"lv_volume_ml_before", "lv_volume_ml_after", "inconsistent_before", "valid_after"} <= set(frames.columns)
    assert len(frames) == N_FRAMES * len(ok)
    assert set(zip(frames["patient"], frames["view"])) == set(zip(ok["patient"], ok["view"]))

    patients = tables.patients
    assert tuple(patients.columns) == PATIENT_COLUMNS
    assert list(patients["patient"]) == list(EF_CFG)
    modes = dict(zip(patients["patient"], patients["mode"]))
    assert modes == {"patient0001": "biplane", "patient0002": "monoplane", "patient0003": "monoplane"}
    assert dict(zip(patients["patient"], patients["info_ef_percent"])) == EF_CFG
    mono = patients.set_index("patient").loc["patient0002"]
    row_2ch = ok.set_index(["patient", "view"]).loc[("patient0002", "2CH")]
    assert mono["ef_percent_after"] == pytest.approx(row_2ch["ef_percent_after"])
    assert mono["views"] == "2CH"
    assert mono["view_outcomes"] == f"2CH {row_2ch['outcome']}"
    bi = patients.set_index("patient").loc["patient0001"]
    assert 0 < bi["esv_ml_after"] < bi["edv_ml_after"]
    assert bi["ef_percent_after"] == pytest.approx(100 * (bi["edv_ml_after"] - bi["esv_ml_after"]) / bi["edv_ml_after"])

    curve = tables.biplane
    assert tuple(curve.columns) == BIPLANE_COLUMNS
    assert set(curve["patient"]) == {"patient0001"}
    assert curve["t"].iloc[0] == 0 and curve["t"].iloc[-1] == 1
    assert curve["volume_ml_after"].iloc[0] == pytest.approx(bi["edv_ml_after"])

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["method"] == "gaussian" and config["smoothing"]["method"] == "gaussian"
    assert "echotemporal_version" in config and "weights_sha256" in config


def test_corrected_files_mirror_the_input_tree(camus_root: Path, pool_out: tuple[Path, batch.BatchSummary]) -> None:
    out, _ = pool_out
    source = camus_root / "patient0001" / f"patient0001_4CH{SUFFIX}.nii.gz"
    written = out / "patient0001" / source.name
    corrected, original = read_sequence(written), read_sequence(source)
    assert corrected.labels.shape == original.labels.shape
    assert corrected.geometry == original.geometry
    info = Path("patient0001") / "Info_4CH.cfg"
    assert (out / info).read_text() == (camus_root / info).read_text()
    assert not (out / BROKEN[0] / f"{BROKEN[0]}_{BROKEN[1]}{SUFFIX}.nii.gz").exists()


def test_broken_files_are_failed_rows_with_one_line_messages(pool_out: tuple[Path, batch.BatchSummary]) -> None:
    out, _ = pool_out
    seq = read_tables(out).sequences.set_index(["patient", "view"])
    float_error = seq.loc[BROKEN, "error"]
    assert "non-integer" in float_error or "label values" in float_error
    assert f"{BROKEN[0]}_{BROKEN[1]}" in float_error  # names the file
    truncated_error = seq.loc[TRUNCATED, "error"]
    assert truncated_error and "\n" not in truncated_error
    assert seq.loc[(BROKEN[0], "2CH"), "status"] == "ok"  # the other view of that patient went on


def test_existing_output_needs_resume_or_overwrite(camus_root: Path, pool_out: tuple[Path, batch.BatchSummary]) -> None:
    out, _ = pool_out
    with pytest.raises(OutputExistsError, match="--resume"):
        run_batch(camus_root, out, method="gaussian", workers=0, progress=False)


def test_resume_skips_finished_sequences(
    camus_root: Path, pool_out: tuple[Path, batch.BatchSummary], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pool_out[0], out)
    ok_file = out / "patient0001" / f"patient0001_2CH{SUFFIX}.nii.gz"
    os.utime(ok_file, (1_000_000, 1_000_000))
    before = read_tables(out)
    summary = run_batch(camus_root, out, method="gaussian", workers=0, resume=True, progress=False)
    assert summary.n_skipped == 4 and (summary.n_ok, summary.n_failed) == (4, 2)
    assert ok_file.stat().st_mtime == 1_000_000  # not rewritten
    after = read_tables(out)
    ok = before.sequences["status"] == "ok"
    pd.testing.assert_frame_equal(
        after.sequences[ok].reset_index(drop=True), before.sequences[ok].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(after.frames, before.frames)
    pd.testing.assert_frame_equal(after.patients, before.patients)


def test_resume_after_a_crash_completes_without_losing_rows(
    camus_root: Path, pool_out: tuple[Path, batch.BatchSummary], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pool_out[0], out)
    full = read_tables(out)
    # A crash after the first patient: only its rows reached sequences.csv.
    full.sequences.head(2).to_csv(out / "sequences.csv", index=False)
    kept = out / "patient0001" / f"patient0001_4CH{SUFFIX}.nii.gz"
    mtime = kept.stat().st_mtime_ns
    summary = run_batch(camus_root, out, method="gaussian", workers=0, resume=True, progress=False)
    assert summary.n_skipped == 2 and summary.n_ok == 4
    assert kept.stat().st_mtime_ns == mtime
    resumed = read_tables(out)
    for name in ("sequences", "frames", "patients", "biplane"):
        pd.testing.assert_frame_equal(_without_seconds(getattr(resumed, name)), _without_seconds(getattr(full, name)))


def test_ctrl_c_leaves_consistent_tables_that_resume_completes(
    camus_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    from echotemporal.batch.run import BatchState
    from echotemporal.batch.worker import PatientResult

    add = BatchState.add
    calls = {"n": 0}

    def add_then_interrupt(self: BatchState, result: PatientResult) -> None:
        add(self, result)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(BatchState, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_batch(camus_root, out, method="gaussian", workers=0, progress=False)
    partial = read_tables(out)
    assert list(partial.sequences["patient"].unique()) == ["patient0001"]
    assert set(partial.frames["patient"]) == {"patient0001"} and list(partial.patients["patient"]) == ["patient0001"]
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind
    monkeypatch.setattr(BatchState, "add", add)
    summary = run_batch(camus_root, out, method="gaussian", workers=0, resume=True, progress=False)
    assert (summary.n_skipped, summary.n_ok, summary.n_failed) == (2, 4, 2)


def test_a_sequence_past_the_time_limit_is_a_failed_row_and_the_batch_goes_on(
    camus_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from echotemporal.outputs import sequence_file

    smooth_file = sequence_file.smooth_file

    def never_ending_for_one(path, *args, **kwargs):  # patient0001's 4CH never ends (pure Python: interruptible)
        while "patient0001_4CH" in str(path):
            time.sleep(0.01)
        return smooth_file(path, *args, **kwargs)

    monkeypatch.setattr(sequence_file, "smooth_file", never_ending_for_one)
    start = time.monotonic()
    summary = run_batch(camus_root, tmp_path / "out", method="gaussian", workers=0, progress=False, time_limit_s=5)
    assert time.monotonic() - start < 60
    seq = read_tables(tmp_path / "out").sequences.set_index(["patient", "view"])
    stopped = seq.loc[("patient0001", "4CH")]
    assert stopped["status"] == "failed" and "after 5 s: stopped" in stopped["error"] and "--time-limit" in stopped["error"]
    assert seq.loc[("patient0001", "2CH"), "status"] == "ok"
    assert summary.n_failed == 3  # the two broken files and the stopped one
    assert not list((tmp_path / "out").rglob("patient0001_4CH*.nii.gz"))  # nothing half-written


def test_the_cli_time_limit_default_is_the_library_one() -> None:
    from echotemporal.batch.signals import SEQUENCE_TIME_LIMIT_S

    [option] = [p for p in main.commands["batch"].params if p.name == "time_limit"]
    assert option.default == SEQUENCE_TIME_LIMIT_S


def test_resume_refuses_other_settings(
    camus_root: Path, pool_out: tuple[Path, batch.BatchSummary], tmp_path: Path
) -> None:
    import shutil

    from echotemporal.core.errors import ConfigError

    out = tmp_path / "out"
    shutil.copytree(pool_out[0], out)
    with pytest.raises(ConfigError, match="method"):
        run_batch(camus_root, out, method="none", workers=0, resume=True, progress=False)
    other = tmp_path / "other"  # the same sequences under another root: resuming would mix two trees
    shutil.copytree(camus_root, other)
    with pytest.raises(ConfigError, match=r"cannot resume with different settings \(root: "):
        run_batch(other, out, method="gaussian", workers=0, resume=True, progress=False)


def test_dask_local_cluster_gives_the_same_tables_as_the_pool(
    camus_root: Path, pool_out: tuple[Path, batch.BatchSummary], tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        summary = run_batch(
            camus_root, tmp_path / "out", method="gaussian", scheduler=cluster.scheduler_address, progress=False
        )
    assert (summary.n_ok, summary.n_failed) == (4, 2)
    dask_tables, pool_tables = read_tables(tmp_path / "out"), read_tables(pool_out[0])
    for name in ("sequences", "frames", "patients", "biplane"):
        pd.testing.assert_frame_equal(
            _without_seconds(getattr(dask_tables, name)), _without_seconds(getattr(pool_tables, name)), check_exact=True
        )


def test_cli_batch_summary_line_and_exit_code(camus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["batch", str(camus_root), "-o", str(out), "--method", "gaussian", "--workers", "0", "--no-progress"]
    )
    assert result.exit_code == 1, result.output  # something failed
    assert "6 sequences:" in result.output and "2 failed;" in result.output and "sequences.csv" in result.output
    again = CliRunner().invoke(main, ["batch", str(camus_root), "-o", str(out), "--method", "gaussian"])
    assert again.exit_code != 0 and "--resume" in again.output
    only_good = CliRunner().invoke(
        main,
        ["batch", str(camus_root), "-o", str(tmp_path / "one"), "--method", "none", "--views", "2CH",
         "--workers", "0", "--no-progress", "--suffix", SUFFIX],
    )
    # patient0003's 2CH is the truncated file: still one failure, still exit code 1.
    assert only_good.exit_code == 1 and "3 sequences:" in only_good.output and "1 failed;" in only_good.output


def test_missing_root_or_no_sequences_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0 and "no sequences" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random shape model: exercises the arvae path without trained weights."""
    torch = pytest.importorskip("torch")
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES
    from echotemporal.core.config import ModelConfig
    from echotemporal.model.network import ARVAE
    from echotemporal.training.loop import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    net = ARVAE(ModelConfig(grid_size=32, latent_dim=10, channels=(4, 8)))
    ckpt = make_checkpoint(net, ATTRIBUTE_NAMES, np.tile([-3.0, 3.0], (len(ATTRIBUTE_NAMES), 1)))
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.mark.slow
def test_arvae_in_a_pool_worker_records_the_weights_hash(camus_root: Path, tiny_weights: Path, tmp_path: Path) -> None:
    from echotemporal.model.registry import file_sha256

    summary = run_batch(camus_root, tmp_path / "out", method="arvae", weights=tiny_weights, workers=1, progress=False)
    assert (summary.n_ok, summary.n_failed) == (4, 2)
    config = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert config["weights_sha256"] == file_sha256(tiny_weights) and config["method"] == "arvae"
    seq = read_tables(tmp_path / "out").sequences
    assert set(seq.loc[seq["status"] == "ok", "method"]) == {"arvae"}


def test_unloadable_weights_stop_the_batch_with_one_error(camus_root: Path, tmp_path: Path) -> None:
    from echotemporal.core.errors import WeightsError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="bad.pt"):
        run_batch(camus_root, tmp_path / "out", method="arvae", weights=bad, workers=0, progress=False)
    assert (tmp_path / "out" / "sequences.csv").exists()  # consistent (empty) tables, nothing half-written


def test_worker_environment_sets_one_thread_and_restores(monkeypatch):
    import os

    from echotemporal.batch.worker import WORKER_ENV, worker_environment

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("ECHOTEMPORAL_THREADS", raising=False)
    with worker_environment():
        assert all(os.environ[name] == "1" for name in WORKER_ENV)
        assert "ECHOTEMPORAL_THREADS" in WORKER_ENV
    assert os.environ["OMP_NUM_THREADS"] == "7" and "ECHOTEMPORAL_THREADS" not in os.environ


def test_tables_write_whole_numbers_without_a_decimal_point(tmp_path):
    import pandas as pd

    from echotemporal.batch.tables import write_csv

    table = pd.DataFrame({"n_frames": [25.0, float("nan"), 18.0], "ef_percent_after": [55.2, 61.0, float("nan")]})
    write_csv(tmp_path / "t.csv", table)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[1:] == ["25,55.2", ",61.0", "18,"]


def test_a_two_beat_patient_gets_the_mean_of_its_beats_biplane_indices():
    import numpy as np

    from echotemporal.batch.biplane import ViewData, patient_indices
    from echotemporal.phantoms import generate_cycle_sequence

    data, beats = {}, {}
    for view in ("2CH", "4CH"):
        ph = generate_cycle_sequence(8, view=view, n_beats=2, frames_per_beat=16, image_shape=(260, 230))
        ed, es = ph.beat_ed_frames[0], ph.beat_es_frames[0]
        row = {"ed_frame": ed, "es_frame": es, "ed_frame_before": ed, "es_frame_before": es, "outcome": "clean"}
        data[view] = ViewData(ph.labels, ph.labels, ph.spacing_mm, row)
        beats[view] = [{"when": when, "ed_frame": e + 1, "es_frame": s + 1}
                       for when in ("before", "after") for e, s in zip(ph.beat_ed_frames, ph.beat_es_frames)]
    nan = float("nan")
    row, _ = patient_indices("p", data, {"info_ef_percent": nan, "info_edv_ml": nan, "info_esv_ml": nan}, beats)
    assert row["mode"] == "biplane" and row["n_beats_biplane"] == 2
    per_beat = [float(x) for x in row["ef_percent_beats_after"].split(";")]
    assert len(per_beat) == 2 and all(20 < ef < 80 for ef in per_beat)
    assert abs(row["ef_percent_after"] - np.mean(per_beat)) < 0.06  # per-beat values are rounded to 0.1
    one, _ = patient_indices("p", data, {"info_ef_percent": nan, "info_edv_ml": nan, "info_esv_ml": nan})
    assert one["n_beats_biplane"] == 1 and abs(one["ef_percent_after"] - per_beat[0]) < 0.06
