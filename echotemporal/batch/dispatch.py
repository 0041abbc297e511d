"""Where a batch's patients run: a local process pool, a Dask cluster, or the calling process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from echotemporal.batch.environment import worker_environment
from echotemporal.batch.signals import Terminated
from echotemporal.batch.tasks import PatientResult, PatientTask
from echotemporal.batch.worker import init_pool_worker, process_patient, process_patient_on_dask
from echotemporal.core.config import SmoothingConfig
from echotemporal.core.errors import ConfigError, EchoTemporalError

__all__ = ["Outcome", "fatal", "dispatch", "terminate_workers"]

Outcome = Callable[[PatientTask, "PatientResult | BaseException"], None]


def fatal(exc: BaseException) -> bool:
    """Errors that concern every patient (the model cannot be loaded): stop the batch."""
    return isinstance(exc, EchoTemporalError)


def _dispatch_local(
    tasks: list[PatientTask], workers: int, method: str, weights: str | None, on_result: Outcome
) -> None:
    """Local process pool; the model is loaded once per worker by the initializer."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter per worker; forking a parent that already runs torch/Dask threads
    # can deadlock, and spawn behaves the same on Linux, macOS and Windows.
    context = multiprocessing.get_context("spawn")
    pids = context.SimpleQueue()  # each worker puts its process id here (SIGTERM: the ones to stop)
    # The workers start on the first submit and inherit the environment: one thread each, set before
    # they import numpy or torch.
    with worker_environment():
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=init_pool_worker, initargs=(method, weights, pids)
        )
        pending = {pool.submit(process_patient, task): task for task in tasks}
    try:
        for future in as_completed(list(pending)):
            task = pending.pop(future)
            try:
                outcome: PatientResult | BaseException = future.result()
            except Exception as exc:  # noqa: BLE001
                outcome = exc
            on_result(task, outcome)
            del future
    except BaseException as exc:
        # Ctrl-C or a fatal error: drop what has not started, let running patients finish (workers
        # ignore SIGINT) and keep their results. SIGTERM/SIGHUP: stop the running ones too, now.
        if isinstance(exc, Terminated):
            terminate_workers(pids)
        _shut_down(pool, pids)
        for future, task in pending.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                on_result(task, future.result())
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        pids.close()


def _shut_down(pool: Any, pids: Any) -> None:
    """Shut ``pool`` down, its queued patients cancelled, once its running ones end. Ctrl-C again
    while waiting stops the running ones too, now (:func:`terminate_workers`), instead of leaving the
    shutdown half done: the finished patients unrecorded, and the exit hanging on idle workers."""
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except KeyboardInterrupt:
            terminate_workers(pids)


def terminate_workers(pids: Any, timeout_s: float = 5.0) -> list[int]:
    """SIGTERM the pool workers that reported their process id into ``pids`` and wait for them.

    Args:
        pids: the ``SimpleQueue`` given to :func:`init_pool_worker` (drained here).
        timeout_s: how long to wait for each worker to end.

    Returns:
        The process ids stopped. Only live children of this process are touched
        (``multiprocessing.active_children``), so a reused process id is never signalled.
    """
    import multiprocessing

    reported = set()
    while not pids.empty():
        reported.add(pids.get())
    workers = [p for p in multiprocessing.active_children() if p.pid in reported]
    for process in workers:
        with contextlib.suppress(OSError):
            process.terminate()
    for process in workers:
        process.join(timeout_s)
    return [int(p.pid) for p in workers if p.pid is not None]


def _dispatch_inline(tasks: list[PatientTask], on_result: Outcome) -> None:
    """workers=0: everything in the calling process, one patient after the other (debugging, tests)."""
    for task in tasks:
        try:
            outcome: PatientResult | BaseException = process_patient(task)
        except Exception as exc:  # noqa: BLE001
            outcome = exc
        on_result(task, outcome)


def _dispatch_dask(tasks: list[PatientTask], scheduler: Any, on_result: Outcome) -> None:
    """Existing Dask cluster: ``client.map`` and ``as_completed``; models cached per worker process."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask is an optional extra
        raise ConfigError(
            "--scheduler needs dask.distributed; install it with pip install 'echotemporal[dask]'"
        ) from exc

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = client.map(process_patient_on_dask, tasks, pure=False)
        pending = dict(zip(futures, tasks))
        iterator = as_completed(futures)
        del futures
        try:
            for future in iterator:
                task = pending.pop(future)
                try:
                    outcome: PatientResult | BaseException = future.result()
                except Exception as exc:  # noqa: BLE001
                    outcome = exc
                future.release()
                on_result(task, outcome)
        except BaseException:
            finished = [f for f in pending if f.status == "finished"]
            client.cancel([f for f in pending if f.status != "finished"])
            for future in finished:
                on_result(pending[future], future.result())
            raise
    finally:
        if own:
            client.close()


def dispatch(
    tasks: list[PatientTask], scheduler: Any, workers: int, config: SmoothingConfig, weights: str | None,
    on_result: Outcome,
) -> None:
    """Run the tasks on a Dask cluster, in this process (``workers=0``) or on a local process pool."""
    if not tasks:
        return
    if scheduler is not None:
        _dispatch_dask(tasks, scheduler, on_result)
    elif int(workers) == 0:
        _dispatch_inline(tasks, on_result)
    else:
        _dispatch_local(tasks, min(int(workers), len(tasks)), config.method, weights, on_result)
