"""The worker processes: ``--workers`` single-process pools, one job each at a time.

One ``ProcessPoolExecutor(max_workers=1)`` per worker rather than one pool of N: a worker that dies
(killed, out of memory) breaks only its own executor, so only the job it was running fails; that
executor is replaced and the others keep their jobs. A job waits for a free worker in the parent
(strictly first come, first served: a newcomer never overtakes a waiting request), so the parent
always knows which jobs are queued and which are running.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from echotemporal.batch.environment import worker_environment
from echotemporal.batch.worker import init_pool_worker

__all__ = ["WorkerLost", "WorkerPool"]


class WorkerLost(RuntimeError):
    """The worker process ended while it was running a task (killed, or out of memory)."""


class WorkerPool:
    """``n`` worker processes, each loading the shape model once (``batch.worker.init_pool_worker``).

    Args:
        n: number of worker processes (≥ 1).
        method: the default method, whose model the initializer loads.
        weights: model weights name or path; None = shipped model.
    """

    def __init__(self, n: int, method: str, weights: str | None) -> None:
        self.n = max(1, int(n))
        self._method = method
        self._weights = weights
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._executors: list[ProcessPoolExecutor] = []
        self._pids: list[Future[int]] = []  # each executor's process id, reported by the process itself
        self._free: list[int] | None = None
        self._waiters: collections.deque[asyncio.Future[int]] = collections.deque()
        self.running = 0

    def _new_executor(self) -> tuple[ProcessPoolExecutor, Future[int]]:
        """A one-process executor, its process spawned now, and the future of that process's id."""
        with worker_environment():  # one thread per worker process, set before numpy/onnxruntime load
            executor = ProcessPoolExecutor(
                1, mp_context=self._context, initializer=init_pool_worker, initargs=(self._method, self._weights)
            )
            pid = executor.submit(os.getpid)  # spawns the process now, inside worker_environment()
        return executor, pid

    def start(self, probe: Callable[..., Any], *args: Any) -> Any:
        """Spawn the workers (blocking; run it in a thread) and return ``probe(*args)`` run in the first one."""
        self._executors, self._pids = (list(x) for x in zip(*(self._new_executor() for _ in range(self.n))))
        results = [executor.submit(probe, *args) for executor in self._executors]
        return [r.result() for r in results][0]

    def attach(self) -> None:
        """Mark every worker free (call once the workers are started)."""
        self._free = list(range(self.n))

    async def _acquire(self) -> int:
        """A free worker's index, handed out strictly first come, first served."""
        assert self._free is not None, "attach() first"
        if self._free and not self._waiters:
            return self._free.pop()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a worker just as it was cancelled
                self._release(waiter.result())
            raise

    def _release(self, i: int) -> None:
        """Hand worker ``i`` to the oldest waiter, or mark it free."""
        assert self._free is not None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(i)
                return
        self._free.append(i)

    def _replace(self, i: int) -> None:
        old = self._executors[i]
        self._executors[i], self._pids[i] = self._new_executor()
        old.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any, on_start: Callable[[], None] | None = None) -> Any:
        """Run ``fn(*args)`` in the next free worker process and return its result.

        ``on_start`` is called when a worker is free and the task is handed to it.

        Raises:
            WorkerLost: the worker process ended during the task (it is replaced).
            Exception: whatever ``fn`` raised.
        """
        i = await self._acquire()
        self.running += 1
        if on_start is not None:
            on_start()
        try:
            try:
                future = self._executors[i].submit(fn, *args)
            except (BrokenProcessPool, RuntimeError):  # its idle process died: nothing of ours was lost
                self._replace(i)
                future = self._executors[i].submit(fn, *args)
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool as exc:
                self._replace(i)
                raise WorkerLost("the worker process ended while processing this request") from exc
        finally:
            self.running -= 1
            self._release(i)

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes that have reported theirs (a replacement may not have yet)."""
        return [f.result() for f in self._pids if f.done() and not f.cancelled() and f.exception() is None]

    def shutdown(self) -> None:
        """Stop every worker process (queued tasks are cancelled, running ones end with the process).

        Only live children of this process whose id a worker reported are signalled, so a reused
        process id is never touched.
        """
        known = set(self.worker_pids())
        for process in multiprocessing.active_children():
            if process.pid in known:
                with contextlib.suppress(OSError):
                    process.terminate()
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors, self._pids = [], []
