"""The worker process of a batch: one thread per pool (parallelism comes from the processes) and an
allocator that reuses freed arrays."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from echotemporal.measure.sequence import THREADS_ENV

__all__ = ["WORKER_ENV", "worker_environment", "prepare_worker"]

_READY = False

#: One thread per worker process for every thread pool (OpenMP, BLAS, torch, the per-frame measures):
#: a batch's parallelism is its processes; threads on top only compete for the same cores. The pool's
#: parent sets these while it spawns its workers, so that they hold before numpy/torch are imported.
WORKER_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    THREADS_ENV: "1",
}


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """:data:`WORKER_ENV` in ``os.environ`` for the duration (worker processes spawned inside inherit it)."""
    saved = {name: os.environ.get(name) for name in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: glibc mallopt parameters, and the values glibc's own dynamic thresholds reach on 64-bit Linux.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 << 20


def _tune_allocator() -> None:
    """Keep freed array memory in the process for reuse (glibc's dynamic behaviour, made explicit).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap
    threshold at 128 kB: every array of a frame or more is then mapped and unmapped anew, and the
    page faults cost a large share of a CAMUS sequence's time. The thresholds glibc itself
    would settle on (32 MB mmap, trim above 2x that) remove the faults; the memory kept is bounded.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


def prepare_worker(method: str) -> None:
    """One thread per worker process (torch included), parallelism coming from the processes; and an
    allocator that reuses freed arrays."""
    global _READY
    if _READY:
        return
    os.environ.update(WORKER_ENV)  # a Dask worker was not spawned by us: at least the later imports
    _tune_allocator()
    # The shipped model runs with ONNX Runtime (one thread per session) and needs no torch; a torch
    # already imported, or imported later for a checkpoint without ONNX export, reads WORKER_ENV.
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)
    _READY = True
