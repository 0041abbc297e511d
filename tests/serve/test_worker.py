"""The worker side of `echotemporal serve`: the read upload handed to a worker process."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from echotemporal.io import read_sequence, write_sequence
from echotemporal.phantoms import generate_sequence
from echotemporal.serve.worker import StoredSequence


def test_stored_sequence_round_trip(tmp_path: Path) -> None:
    phantom = generate_sequence(5, n_frames=6, image_shape=(96, 80))
    path = write_sequence(tmp_path / "seq.nii.gz", phantom.labels, spacing_mm=phantom.spacing_mm)
    sequence = read_sequence(path)
    stored = StoredSequence.store(sequence, tmp_path / ".labels.npy")
    handle = pickle.dumps(stored)
    assert len(handle) < 4096  # what goes through the pool's pipe: no voxels
    again = pickle.loads(handle).load()
    assert again.labels.dtype == np.uint8 and np.array_equal(again.labels, sequence.labels)
    assert again.spacing_mm == sequence.spacing_mm and again.geometry == sequence.geometry
    assert again.path == sequence.path and again.frame_time_ms == sequence.frame_time_ms
    assert not (tmp_path / ".labels.npy").exists()  # loaded once, then deleted


def test_a_job_past_the_time_limit_fails_with_a_message_and_the_worker_is_free(tmp_path: Path, monkeypatch) -> None:
    import time

    import pytest

    from echotemporal.batch.signals import TimeLimitExceeded
    from echotemporal.outputs import sequence_file
    from echotemporal.serve import worker

    phantom = generate_sequence(5, n_frames=6, image_shape=(96, 80))
    path = write_sequence(tmp_path / "seq.nii.gz", phantom.labels, spacing_mm=phantom.spacing_mm)
    stored = StoredSequence.store(read_sequence(path), tmp_path / ".labels.npy")

    def never_ending(*args, **kwargs):
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(sequence_file, "smooth_file", never_ending)
    monkeypatch.setattr(worker, "JOB_TIME_LIMIT_S", 0.3)
    start = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match=r"still running after 0.3 s: stopped; the server stops a job"):
        worker.correct_job(str(tmp_path), str(path), stored, None, "none", None, None)
    assert time.monotonic() - start < 5
    time.sleep(0.5)  # the alarm is off once the job has ended: nothing fires later
