"""Independent per-frame work shared by threads.

The per-frame kernels (numpy reductions, scipy.ndimage labelling and distance transforms, torch) release
the GIL, so threads over frames use several cores without copying the frames to other processes.
Results never depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import numpy as np

from echotemporal.core.errors import ConfigError

__all__ = ["THREADS_ENV", "env_threads", "kernel_threads", "map_threads", "map_frame_chunks"]

#: Environment variable: threads of the per-frame work (batch workers set 1).
THREADS_ENV = "ECHOTEMPORAL_THREADS"
#: Most threads :func:`kernel_threads` takes by itself.
MAX_KERNEL_THREADS = 4

T = TypeVar("T")
R = TypeVar("R")


def env_threads() -> int | None:
    """``$ECHOTEMPORAL_THREADS`` as a positive count, None when unset.

    Raises:
        ConfigError: the variable is set to something other than a positive integer.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{THREADS_ENV}={value!r} is not a positive integer; set it to 1 or more, or unset it")
    return n


def kernel_threads() -> int:
    """Threads for work that is mostly kernels releasing the GIL (distance transforms of whole frames):
    ``$ECHOTEMPORAL_THREADS``, else the CPU count up to ``MAX_KERNEL_THREADS``. Such work scales with
    the cores (two threads of distance transforms: 1.7x on 2 cores), unlike the per-frame measures."""
    n = env_threads()
    return n if n is not None else max(1, min(os.cpu_count() or 1, MAX_KERNEL_THREADS))


def map_threads(fn: Callable[[T], R], items: Iterable[T], threads: int) -> list[R]:
    """``[fn(x) for x in items]``, computed by up to ``threads`` threads (in order)."""
    items = list(items)
    if int(threads) > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(int(threads), len(items))) as pool:
            return list(pool.map(fn, items))
    return [fn(x) for x in items]


def map_frame_chunks(fn: Callable[[np.ndarray], np.ndarray], frames: np.ndarray, threads: int) -> np.ndarray:
    """Apply a per-frame ``fn`` ((n, H, W) -> (n, H, W)) to ``threads`` contiguous chunks of the frames.

    For functions that work on a whole stack at once (one labelling of a (T, H, W) array) but treat
    every frame independently: the chunks run in parallel and are put back in order.

    Args:
        fn: maps an (n, H, W) C-contiguous array to an (n, H, W) array (may work in place).
        frames: (T, H, W).
        threads: chunk count (at most T).

    Returns:
        (T, H, W), ``frames`` itself updated in place.
    """
    n = min(int(threads), len(frames))
    if n <= 1:
        frames[...] = fn(frames)
        return frames
    chunks = np.array_split(np.arange(len(frames)), n)
    parts = map_threads(lambda idx: fn(np.ascontiguousarray(frames[idx[0] : idx[-1] + 1])), chunks, n)
    for idx, part in zip(chunks, parts):
        frames[idx[0] : idx[-1] + 1] = part
    return frames
