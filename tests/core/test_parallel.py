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
