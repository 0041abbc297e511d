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
