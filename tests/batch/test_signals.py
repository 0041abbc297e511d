"""A batch stopped by SIGTERM leaves no process and consistent tables; --resume completes it; a second
batch on the same OUT refuses at once; --overwrite removes what it no longer produces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from click.testing import CliRunner

from echotemporal.batch import read_tables, run_batch
from echotemporal.batch.lock import LOCK_NAME
from echotemporal.cli import main
from echotemporal.io import InfoCfg, write_info_cfg, write_sequence
from echotemporal.phantoms import generate_sequence

SUFFIX = "_half_sequence_gt"
N_PATIENTS = 6
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def camus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("camus")
    for p in range(1, N_PATIENTS + 1):
        folder = root / f"patient{p:04d}"
        folder.mkdir()
        for v, view in enumerate(("2CH", "4CH")):
            phantom = generate_sequence(10 * p + v, view=view, n_frames=12, image_shape=(160, 140))
            write_sequence(folder / f"patient{p:04d}_{view}{SUFFIX}.nii.gz", phantom.labels, spacing_mm=phantom.spacing_mm)
            write_info_cfg(folder / f"Info_{view}.cfg", InfoCfg(ed_frame=phantom.ed_frame, es_frame=phantom.es_frame,
                                                              n_frames=12))
    return root


def _batch(root: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "echotemporal.cli", "batch", str(root), "-o", str(out), "--method", "gaussian",
               "--no-progress", *extra]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigterm_leaves_no_process_and_resume_completes(camus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _batch(camus_root, out, "--workers", "2")
    parent = psutil.Process(proc.pid)
    assert _wait_for(lambda: len(parent.children(recursive=True)) >= 2, 60), proc.communicate()
    children = parent.children(recursive=True)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    assert not (out / LOCK_NAME).exists()
    partial = read_tables(out)  # consistent: every frames/beats row belongs to a finished sequence
    finished = set(zip(partial.sequences["patient"], partial.sequences["view"]))
    assert set(zip(partial.frames.get("patient", []), partial.frames.get("view", []))) <= finished
    summary = run_batch(camus_root, out, method="gaussian", workers=0, resume=True, progress=False)
    tables = read_tables(out)
    keys = list(zip(tables.sequences["patient"], tables.sequences["view"]))
    assert len(keys) == len(set(keys)) == 2 * N_PATIENTS and summary.n_ok == 2 * N_PATIENTS
    assert not tables.frames.duplicated(["patient", "view", "frame"]).any()
    assert len(tables.frames) == 12 * 2 * N_PATIENTS


@pytest.mark.slow
def test_a_second_batch_on_the_same_out_refuses_at_once(camus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _batch(camus_root, out, "--workers", "1")
    assert _wait_for(lambda: (out / LOCK_NAME).exists(), 60)
    start = time.monotonic()
    second = CliRunner().invoke(main, ["batch", str(camus_root), "-o", str(out), "--method", "gaussian",
                                       "--no-progress", "--overwrite"])
    assert time.monotonic() - start < 5
    assert second.exit_code == 1 and LOCK_NAME in second.output and f"pid={first.pid}" in second.output
    assert len(second.output.strip().splitlines()) == 1
    first.communicate(timeout=120)
    assert first.returncode == 0
    sequences = read_tables(out).sequences
    assert len(sequences) == 2 * N_PATIENTS and (sequences["status"] == "ok").all()


def test_stale_lock_is_taken_over(camus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("pid=999999 host=gone started=2020-01-01T00:00:00\n")
    with pytest.warns(RuntimeWarning, match="stale lock"):
        summary = run_batch(camus_root, out, method="none", workers=0, progress=False, views=("4CH",))
    assert summary.n_ok == N_PATIENTS and not (out / LOCK_NAME).exists()


def test_overwrite_removes_what_it_no_longer_produces(camus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_batch(camus_root, out, method="none", workers=0, progress=False)
    (out / "review.pdf").write_bytes(b"%PDF old")
    old_2ch = out / "patient0001" / f"patient0001_2CH{SUFFIX}.nii.gz"
    old_report = out / "patient0001" / f"patient0001_2CH{SUFFIX}_summary.json"
    old_cfg = out / "patient0001" / "Info_2CH.cfg"  # copied beside the output (the mirror)
    assert old_2ch.is_file() and old_report.is_file() and old_cfg.is_file()
    keep = out / "notes.txt"
    keep.write_text("mine")
    run_batch(camus_root, out, method="none", workers=0, progress=False, overwrite=True, views=("4CH",))
    assert not old_2ch.exists() and not old_report.exists() and not (out / "review.pdf").exists()
    assert not old_cfg.exists() and (out / "patient0001" / "Info_4CH.cfg").is_file()
    assert keep.exists()
    assert set(pd.read_csv(out / "sequences.csv")["view"]) == {"4CH"}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_workers_die_with_a_killed_parent(camus_root: Path, tmp_path: Path) -> None:
    proc = _batch(camus_root, tmp_path / "out", "--workers", "2")
    parent = psutil.Process(proc.pid)
    assert _wait_for(lambda: len(parent.children(recursive=True)) >= 3, 60)
    children = parent.children(recursive=True)
    time.sleep(1.0)
    proc.kill()
    proc.communicate(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    for process in alive:  # do not leave them behind even when the test fails
        process.kill()
    assert not alive


@pytest.mark.slow
def test_terminate_workers_stops_the_workers_that_reported_and_no_other(tmp_path: Path) -> None:
    """The parent's handle on its pool workers is the process ids they report, not the executor's insides."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from echotemporal.batch.dispatch import terminate_workers
    from echotemporal.batch.worker import init_pool_worker

    context = multiprocessing.get_context("spawn")
    bystander = context.Process(target=time.sleep, args=(30,))  # a child of ours that is no worker
    bystander.start()
    pids = context.SimpleQueue()
    pool = ProcessPoolExecutor(2, mp_context=context, initializer=init_pool_worker, initargs=("none", None, pids))
    try:
        busy = [pool.submit(time.sleep, 60) for _ in range(2)]  # two busy workers
        seen: set[int] = set()
        assert _wait_for(lambda: (not pids.empty() and seen.add(pids.get())) or len(seen) == 2, 60)
        for pid in seen:  # put back what the workers reported, for terminate_workers to read
            pids.put(pid)
        assert seen <= {child.pid for child in psutil.Process().children()}
        start = time.monotonic()
        stopped = terminate_workers(pids)
        assert set(stopped) == seen
        for future in busy:
            with pytest.raises(BrokenProcessPool):
                future.result(timeout=20)
        pool.shutdown(wait=True)
        assert time.monotonic() - start < 20
        assert bystander.is_alive()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bystander.terminate()
        bystander.join(5)
        pids.close()


def test_lock_without_fcntl_judges_by_the_process_id_in_the_file(tmp_path: Path, monkeypatch) -> None:
    """Where fcntl does not exist (Windows), a lock file naming a live process refuses, a dead one is stale."""
    from echotemporal.batch.lock import OutputLockedError, output_lock

    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` now raises ImportError
    out = tmp_path / "out"
    with output_lock(out) as note:
        assert note is None and (out / LOCK_NAME).read_text().startswith(f"pid={os.getpid()} ")
        with pytest.raises(OutputLockedError, match=rf"{LOCK_NAME} held by pid={os.getpid()} .*another -o folder"):
            with output_lock(out):
                pass
        assert (out / LOCK_NAME).exists()  # the refused second holder left the first one's lock alone
    assert not (out / LOCK_NAME).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(f"pid={dead.stdout.strip()} host=gone started=2020-01-01T00:00:00\n")
    with output_lock(out) as note:
        assert "stale lock (pid=" in note and (out / LOCK_NAME).read_text().startswith(f"pid={os.getpid()} ")
    (out / LOCK_NAME).write_text("garbage\n")
    with output_lock(out) as note:  # a lock file naming no process holds nothing
        assert "stale lock (garbage)" in note


def test_a_second_ctrl_c_while_running_patients_finish_stops_them_and_ends_the_shutdown(monkeypatch) -> None:
    """The first Ctrl-C waits for the running patients; a second one during that wait used to leave
    the shutdown half done (finished patients unrecorded, the exit hanging on idle workers)."""
    from echotemporal.batch import dispatch

    calls = []

    class Pool:
        def shutdown(self, wait: bool, cancel_futures: bool) -> None:
            calls.append(("shutdown", wait, cancel_futures))
            if len(calls) == 1:
                raise KeyboardInterrupt  # Ctrl-C again while waiting

    monkeypatch.setattr(dispatch, "terminate_workers", lambda pids: calls.append(("terminate", pids)) or [])
    dispatch._shut_down(Pool(), "pids")
    assert calls == [("shutdown", True, True), ("terminate", "pids"), ("shutdown", True, True)]
    calls.clear()
    dispatch._shut_down(type("Quiet", (), {"shutdown": lambda self, wait, cancel_futures: calls.append("done")})(), "pids")
    assert calls == ["done"]  # no second Ctrl-C: nothing is terminated
