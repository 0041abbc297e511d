"""Job state, kept in the server process: ids, status, private folders, expiry.

Each job owns a private temporary folder (its upload and results) inside the server's own temporary
folder; the folder is deleted on DELETE, when the job expires (``ttl_s`` after it finished), and at
shutdown. Ids are 128-bit random URL-safe tokens (``secrets.token_urlsafe``); nothing lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echotemporal.serve.errors import ApiError

__all__ = ["Job", "JobStore", "STATUSES"]

STATUSES = ("queued", "running", "done", "failed")


@dataclass
class Job:
    """One correction request.

    Attributes:
        id: the unguessable id.
        folder: its private folder.
        input_name: the uploaded sequence's file name.
        status: one of :data:`STATUSES`.
        created, started, finished: ``time.time()`` stamps (None until reached).
        summary: the JSON summary once done.
        error: ``{"error", "hint", "status"}`` once failed.
        deleted: DELETE was asked while it ran; removed when it ends.
        ended: set when the job finishes (done or failed) or is removed: what a long-polling status
            request (``GET /v1/jobs/{id}?wait=S``) waits on.
    """

    id: str
    folder: Path
    input_name: str = ""
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    deleted: bool = False
    task: asyncio.Task[Any] | None = None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_ended(self, timeout_s: float) -> None:
        """Return when the job has ended (or is removed), or after ``timeout_s`` seconds."""
        if self.finished is None and not self.deleted:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ended.wait(), timeout_s)


class JobStore:
    """The jobs of one server.

    Args:
        ttl_s: seconds a finished job's results are kept.
        max_queue: most jobs waiting for a worker; more are refused with 503.
    """

    def __init__(self, ttl_s: float, max_queue: int) -> None:
        self.ttl_s = float(ttl_s)
        self.max_queue = int(max_queue)
        self.root = Path(tempfile.mkdtemp(prefix="echotemporal-serve-"))
        self._jobs: dict[str, Job] = {}
        self.waiting = 0  # requests (jobs and checks) waiting for a worker

    def __len__(self) -> int:
        return len(self._jobs)

    def private_folder(self) -> Path:
        """A new empty folder for one request's files."""
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.root))

    def check_capacity(self, retry_after_s: int) -> None:
        """Raise 503 with Retry-After when ``max_queue`` requests already wait for a worker."""
        if self.waiting >= self.max_queue:
            raise ApiError(
                503, f"the queue is full ({self.max_queue} requests waiting)",
                f"retry after {retry_after_s} s", headers={"Retry-After": str(retry_after_s)},
            )

    def add(self, folder: Path) -> Job:
        """Register a queued job owning ``folder``."""
        job = Job(id=secrets.token_urlsafe(16), folder=folder)
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job:
        """The job, or 404 (unknown, deleted or expired)."""
        job = self._jobs.get(job_id)
        if job is None or job.deleted:
            raise ApiError(404, f"no job {job_id!r}", "the id is wrong, or the job was deleted or expired (results are kept --results-ttl seconds)")
        return job

    def queue_position(self, job: Job) -> int:
        """1-based place of a queued job among the queued ones."""
        queued = [j for j in self._jobs.values() if j.status == "queued" and not j.deleted]
        return 1 + sorted(queued, key=lambda j: j.created).index(job) if job in queued else 0

    def remove(self, job: Job) -> None:
        """Forget a job and delete its folder; a running job is only marked and removed when it ends."""
        if job.status == "running":
            job.deleted = True
            return
        job.ended.set()
        if job.task is not None and not job.task.done():
            job.task.cancel()
        self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def finished(self, job: Job) -> None:
        """Called when a job ends: a job deleted while running goes now."""
        job.finished = time.time()
        job.ended.set()
        if job.deleted:
            self._jobs.pop(job.id, None)
            shutil.rmtree(job.folder, ignore_errors=True)

    def expire(self, now: float | None = None) -> int:
        """Remove the jobs finished more than ``ttl_s`` ago; how many."""
        now = time.time() if now is None else now
        old = [j for j in self._jobs.values() if j.finished is not None and now - j.finished >= self.ttl_s]
        for job in old:
            self.remove(job)
        return len(old)

    def close(self) -> None:
        """Cancel every job and delete the server's temporary folder."""
        for job in list(self._jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()
        self._jobs.clear()
        shutil.rmtree(self.root, ignore_errors=True)
