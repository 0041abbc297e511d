import numpy as np
import pytest

from echotemporal.core.parallel import map_frame_chunks, map_threads
from echotemporal.correct.cleanup import cleanup_labels


def test_map_threads_keeps_order():
    assert map_threads(lambda x: x * x, range(7), threads=3) == [x * x for x in range(7)]
    assert map_threads(lambda x: x, [], threads=2) == []


@pytest.mark.parametrize("threads", [1, 2, 3, 9])
def test_frame_chunks_give_the_serial_result(threads):
    rng = np.random.default_rng(0)
    frames = (rng.random((7, 40, 50)) < 0.5).astype(np.uint8) * rng.integers(1, 4, (7, 40, 50)).astype(np.uint8)
    serial = cleanup_labels(frames.copy(), (1, 2, 3))
    out = frames.copy()
    result = map_frame_chunks(lambda part: cleanup_labels(part, (1, 2, 3)), out, threads)
    assert result is out
    np.testing.assert_array_equal(out, serial)
    assert (serial != frames).any()  # the clean-up did change something: the comparison means something


@pytest.mark.parametrize("cap", [None, 3.0])
def test_label_distances_are_the_same_numbers_in_one_thread_or_several(monkeypatch, cap):
    """The per-label transforms run in threads: one thread gives the very same array, which is the
    signed distance of each label on its own."""
    from echotemporal.core.distances import label_distances, signed_distance
    from echotemporal.core.parallel import THREADS_ENV

    frame = np.zeros((60, 70), np.uint8)
    frame[10:50, 15:55] = 2
    frame[18:42, 25:45] = 1
    frame[45:58, 20:50] = 3
    spacing = (0.3, 0.4)
    monkeypatch.setenv(THREADS_ENV, "1")
    serial = label_distances(frame, spacing, cap=cap)
    monkeypatch.setenv(THREADS_ENV, "4")
    parallel = label_distances(frame, spacing, cap=cap)
    np.testing.assert_array_equal(parallel, serial)
    if cap is None:
        for k in range(4):
            np.testing.assert_allclose(serial[k], signed_distance(frame == k, spacing), atol=1e-12)


def test_kernel_threads_follow_the_variable_else_the_cpus(monkeypatch):
    import os

    from echotemporal.core.errors import ConfigError
    from echotemporal.core.parallel import MAX_KERNEL_THREADS, THREADS_ENV, env_threads, kernel_threads

    monkeypatch.setenv(THREADS_ENV, "3")
    assert env_threads() == 3 and kernel_threads() == 3
    monkeypatch.delenv(THREADS_ENV)
    assert env_threads() is None
    assert kernel_threads() == max(1, min(os.cpu_count() or 1, MAX_KERNEL_THREADS))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert kernel_threads() == MAX_KERNEL_THREADS
    monkeypatch.setenv(THREADS_ENV, "-2")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        kernel_threads()
