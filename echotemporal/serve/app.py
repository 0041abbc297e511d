"""The FastAPI application of ``echotemporal serve``: settings, routes, start-up and shutdown.

Endpoints (JSON errors ``{"error", "hint"}`` everywhere; ``/v1/*`` need the bearer token when one is
set): ``POST /v1/jobs`` (202), ``GET``/``DELETE /v1/jobs/{id}``, ``GET /v1/jobs/{id}/{file}`` for
the results, ``POST /v1/check`` (the ``check --json`` report), ``GET /healthz``, ``GET /v1/version``,
``/docs``, and the review page at ``/``. ``GET /v1/jobs/{id}?wait=S`` long-polls: it answers as soon
as the job ends, or after S seconds, so that a client learns of the end at once without polling in a
loop. CPU work (reading, correcting, checking, drawing) runs in the worker processes of
:class:`~echotemporal.serve.pool.WorkerPool` or, for reading the upload, in a thread; the event loop
only moves bytes.
"""


import asyncio
import contextlib
import dataclasses
import hmac
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echotemporal import __version__
from echotemporal.core.config import METHODS
from echotemporal.core.errors import EchoTemporalError
from echotemporal.serve.errors import ApiError, from_library_error, install_handlers
from echotemporal.serve.jobs import Job, JobStore
from echotemporal.serve.pool import WorkerLost, WorkerPool
from echotemporal.serve.uploads import Upload, receive_upload
from echotemporal.serve import worker

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["ServeSettings", "RESULT_FILES", "MAX_STATUS_WAIT_S", "create_app", "run_server"]

#: Longest long-poll of ``GET /v1/jobs/{id}?wait=S``, seconds (under common proxies' 60 s idle timeout).
MAX_STATUS_WAIT_S = 30.0

#: Result files of a done job: name -> (media type, shown inline in a browser).
RESULT_FILES: dict[str, tuple[str, bool]] = {
    "labels.nii.gz": ("application/gzip", False),
    "frames.csv": ("text/csv", False),
    "summary.json": ("application/json", True),
    "volume.png": ("image/png", True),
    "frames.json": ("application/json", True),
    "contours.json": ("application/json", True),
    "config.yaml": ("application/yaml", False),
}
_STATIC = Path(__file__).resolve().parent / "static"
_MULTIPART_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["sequence"],
                    "properties": {
                        "sequence": {
                            "type": "array", "items": {"type": "string", "format": "binary"},
                            "description": "label sequence: .nii.gz/.nii/.mhd+.raw (two parts) or a .zip of an .mhd pair",
                        },
                        "info": {"type": "string", "format": "binary", "description": "CAMUS Info_{2CH,4CH}.cfg (ED/ES)"},
                        "method": {"type": "string", "enum": list(METHODS)},
                        "ed": {"type": "integer", "description": "0-based ED frame (overrides the cfg)"},
                        "es": {"type": "integer", "description": "0-based ES frame (overrides the cfg)"},
                        "fps": {"type": "number", "description": "frame rate in Hz (recorded; adds time_s to frames.json)"},
                    },
                }
            }
        },
    }
}

_CHECK_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    **_MULTIPART_DOC["requestBody"]["content"]["multipart/form-data"]["schema"],
                    "properties": {
                        k: v for k, v in _MULTIPART_DOC["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"].items()
                        if k in ("sequence", "info")
                    },
                }
            }
        },
    }
}


@dataclass(frozen=True)
class ServeSettings:
    """Options of ``echotemporal serve``.

    Attributes:
        host: address to listen on (loopback unless told otherwise).
        port: TCP port.
        workers: worker processes (each holds one model).
        max_queue: most requests waiting for a worker; more get 503 with Retry-After.
        max_upload_mb: largest request body in MiB; larger ones get 413 unread.
        token: bearer token required on ``/v1/*``; None = no authentication.
        results_ttl_s: seconds a finished job's results are kept.
        method: correction method when a request names none.
        weights: model weights name or path; None = shipped model.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_queue: int = 32
    max_upload_mb: float = 64.0
    token: str | None = None
    results_ttl_s: float = 3600.0
    method: str = "arvae"
    weights: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def _prepare_input(
    upload: Upload, folder: Path
) -> tuple[worker.StoredSequence, str | None, str | None, float | None]:
    """Read and check an upload (in a thread): (sequence stored for the worker, info cfg path, method, fps).

    The read and the CLI's input gates are the check (``io.read_sequence``, ``measure.inputs.prepare_input``,
    with the CLI's messages); the labels it decoded are
    stored in the job's folder for the worker (:class:`~echotemporal.serve.worker.StoredSequence`),
    which thus neither decodes the upload again nor receives the voxels through its pipe.
    ``ed``/``es`` fields (0-based) are written into an Info cfg beside the upload, over the uploaded
    cfg's values, so that the correction takes them the way the CLI takes ``--info``.
    """
    from echotemporal.core.errors import ConfigError
    from echotemporal.core.labels import check_frame_index
    from echotemporal.io import InfoCfg, read_info_cfg, read_sequence, write_info_cfg
    from echotemporal.measure.inputs import prepare_input

    fields = upload.fields
    method = fields.get("method") or None
    if method is not None and method not in METHODS:
        raise ConfigError(f"method={method!r} is not one of {', '.join(METHODS)}; pick one of them")

    def number(name: str, kind: type) -> Any:
        text = fields.get(name, "").strip()
        if not text:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not a number; send {'an integer' if kind is int else 'a number'}") from None
        return value

    ed, es, fps = number("ed", int), number("es", int), number("fps", float)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps={fps!r} is not a positive frame rate; send Hz, e.g. 25")
    sequence = read_sequence(upload.sequence)
    info_path = upload.info
    info = read_info_cfg(info_path) if info_path is not None else None
    if ed is not None or es is not None:
        check_frame_index(ed, sequence.n_frames, "ed")
        check_frame_index(es, sequence.n_frames, "es")
        if info is None:
            info = InfoCfg(None, None, None, None, None, None, None, None, None, None, {})
        info = dataclasses.replace(
            info, ed_frame=info.ed_frame if ed is None else ed, es_frame=info.es_frame if es is None else es,
            frame_rate_hz=fps if fps is not None else info.frame_rate_hz,
        )
        info_path = write_info_cfg(folder / "Info_request.cfg", info)
    # The command line's gates (no heart, swapped labels, ED/ES, orientation), answered by the POST
    # itself, as for /v1/check, not by the job failing later; the worker's own pass finds them clear.
    prepare_input(upload.sequence, info_path=info_path, sequence=sequence)  # as the worker's smooth_file calls it
    stored = worker.StoredSequence.store(sequence, folder / ".decoded-labels.npy")  # no upload starts with "."
    return stored, None if info_path is None else str(info_path), method, fps


def _unmap_large_buffers(threshold_bytes: int = 1 << 20) -> None:
    """Serve buffers of ``threshold_bytes`` or more (decoded sequences) from fresh
    mappings that go back to the OS when freed (glibc ``M_MMAP_THRESHOLD``, fixed rather than dynamic).

    With glibc's dynamic threshold, a freed 10 MB array raises the threshold and the next ones come from
    the heap arenas of the reading threads, where they stay: the server's RSS then grows with traffic.
    """
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, threshold_bytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


@dataclass
class _Service:
    """What the routes share: options, job store, worker pool, upload-reading threads, the version
    report (completed at start-up) and the durations of the last finished jobs (s)."""

    settings: ServeSettings
    store: JobStore
    pool: WorkerPool
    readers: ThreadPoolExecutor
    version: dict[str, Any]
    durations: list[float]

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the mean job time times the queue per worker."""
        durations = self.durations
        mean = sum(durations[-20:]) / len(durations[-20:]) if durations else 5.0
        return max(1, math.ceil(mean * (self.store.waiting + 1) / self.pool.n))

    def check_length(self, request: "Request") -> None:
        """413 before reading a body whose declared length is over the limit."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_upload_bytes:
            raise ApiError(
                413, f"upload of {int(length) / 2**20:.1f} MB is over the server's limit of {self.settings.max_upload_mb:g} MB",
                "send a smaller file (one view's sequence), or start the server with a larger --max-upload-mb",
            )

    async def receive(self, request: "Request", folder: Path) -> Upload:
        """The request's multipart upload, streamed into ``folder``."""
        from starlette.requests import ClientDisconnect

        try:
            return await receive_upload(
                request.headers.get("content-type", ""), request.stream(), folder, limit_bytes=self.settings.max_upload_bytes
            )
        except ClientDisconnect:
            raise ApiError(400, "the client disconnected during the upload", "send the whole body") from None


def create_app(settings: ServeSettings | None = None) -> Any:
    """The FastAPI app; worker processes start with the app's lifespan and stop with it.

    Args:
        settings: server options (default :class:`ServeSettings`).

    Returns:
        A ``fastapi.FastAPI`` instance; ``app.state.store`` and ``app.state.pool`` are its job store
        and worker pool.
    """
    from fastapi import FastAPI

    settings = ServeSettings() if settings is None else settings
    store = JobStore(settings.results_ttl_s, settings.max_queue)
    pool = WorkerPool(settings.workers, settings.method, settings.weights)
    readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="echotemporal-read")
    service = _Service(settings, store, pool, readers, {"package": __version__}, [])

    app = FastAPI(
        title="echotemporal",
        version=__version__,
        description="Temporal and anatomical consistency for segmented 2D+t echocardiography, as a service.",
        lifespan=_lifespan(service),
    )
    app.state.store, app.state.pool, app.state.settings = store, pool, settings
    install_handlers(app)
    app.include_router(_v1_router(service))
    _add_page_routes(app, service)
    return app


def _lifespan(service: _Service) -> Any:
    """The app's lifespan: start the workers and the expiry sweep; on shutdown stop them all."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        _unmap_large_buffers()
        info = await asyncio.to_thread(service.pool.start, worker.worker_info, service.settings.weights)
        service.version.update(model_sha256=info["model_sha256"], backend=info["backend"])
        service.pool.attach()
        sweeper = asyncio.create_task(_sweep(service.store))
        try:
            yield
        finally:
            sweeper.cancel()
            service.store.close()
            await asyncio.to_thread(service.pool.shutdown)
            service.readers.shutdown(wait=False, cancel_futures=True)

    return lifespan


async def _sweep(store: JobStore) -> None:
    """Expire finished jobs past their TTL, forever."""
    while True:  # at least once a second, and four times per TTL
        await asyncio.sleep(min(max(store.ttl_s / 4, 0.05), 1.0))
        store.expire()


def _v1_router(service: _Service) -> Any:
    """The ``/v1`` routes, behind the bearer token when one is set."""
    from fastapi import APIRouter, Depends, Request

    settings = service.settings

    async def require_token(request: Request) -> None:  # async: no thread hop for a header compare
        if settings.token is None:
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), settings.token.encode()):
            raise ApiError(
                401, "missing or wrong bearer token", "send the header 'Authorization: Bearer <token>' with the server's --token-file token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])
    _add_job_routes(v1, service)
    _add_job_file_routes(v1, service)
    _add_check_routes(v1, service)
    return v1


def _add_job_routes(v1: Any, service: _Service) -> None:
    """``POST /jobs`` (submit a sequence for correction) and ``GET /jobs/{id}`` (its status)."""
    from fastapi import Query, Request
    from fastapi.responses import JSONResponse

    store = service.store

    @v1.post("/jobs", status_code=202, openapi_extra=_MULTIPART_DOC, summary="Submit a sequence for correction")
    async def submit_job(request: Request) -> JSONResponse:
        """Multipart upload (``sequence``, optional ``info``, ``method``, ``ed``, ``es``, ``fps``) →
        ``202 {"id", "status_url"}``; poll the status URL."""
        service.check_length(request)
        store.check_capacity(service.retry_after())
        folder = store.private_folder()
        try:
            upload = await service.receive(request, folder)
            try:
                sequence, info, method, fps = await asyncio.get_running_loop().run_in_executor(
                    service.readers, _prepare_input, upload, folder
                )
            except (EchoTemporalError, OSError, ValueError) as exc:
                raise from_library_error(exc, folder) from None
            store.check_capacity(service.retry_after())
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = store.add(folder)
        job.input_name = upload.sequence.name
        store.waiting += 1
        job.task = asyncio.create_task(
            _run_job(service, job, upload, sequence, info, method or service.settings.method, fps)
        )
        url = str(request.url_for("job_status", job_id=job.id))
        return JSONResponse({"id": job.id, "status_url": url}, status_code=202, headers={"Location": url})

    @v1.get("/jobs/{job_id}", name="job_status", summary="Status of a job, with its summary and result URLs when done")
    async def job_status(
        job_id: str, request: Request,
        wait: float = Query(0.0, ge=0.0, le=MAX_STATUS_WAIT_S, description=(
            "long-poll: seconds to hold the answer while the job is queued or running; it comes back as "
            f"soon as the job is done or failed, or after the wait with the current status (0-{MAX_STATUS_WAIT_S:g})"
        )),
    ) -> dict[str, Any]:
        """The job's status; with ``wait=S``, answered when the job ends or after S seconds."""
        job = store.get(job_id)
        if wait > 0:
            await job.wait_ended(wait)
            job = store.get(job_id)  # 404 if it was deleted or expired meanwhile
        body: dict[str, Any] = {"id": job.id, "status": job.status, "input": job.input_name, "created": job.created}
        if job.status == "queued":
            body["queue_position"] = store.queue_position(job)
        if job.started is not None:
            body["started"] = job.started
            body["elapsed_s"] = (job.finished or time.time()) - job.started
        if job.finished is not None:
            body["finished"] = job.finished
            body["expires"] = job.finished + store.ttl_s
        if job.status == "done":
            body["summary"] = job.summary
            body["results"] = {
                name: str(request.url_for("job_result", job_id=job.id, name=name)) for name in RESULT_FILES
            }
        if job.error is not None:
            body["error"] = job.error
        return body


async def _run_job(service: _Service, job: Job, upload: Upload, sequence: worker.StoredSequence, info: str | None,
                   method: str, fps: float | None) -> None:
    """Correct one job's sequence in a worker; record its summary, or its failure, on the job."""
    store, durations = service.store, service.durations

    def started() -> None:
        store.waiting -= 1
        job.status, job.started = "running", time.time()

    try:
        job.summary = await service.pool.run(
            worker.correct_job, str(job.folder), str(upload.sequence), sequence, info, method, service.settings.weights,
            fps, on_start=started,
        )
        job.status = "done"
        durations.append(time.time() - (job.started or job.created))
        del durations[:-100]
    except asyncio.CancelledError:
        if job.status == "queued":
            store.waiting -= 1
        raise
    except WorkerLost as exc:
        job.status = "failed"
        job.error = {"status": 500, "error": str(exc), "hint": "the server keeps serving; submit the sequence again"}
    except Exception as exc:  # noqa: BLE001 - every failure of one job is that job's failure
        api = from_library_error(exc, job.folder)
        job.status = "failed"
        job.error = {"status": api.status, "error": api.error, "hint": api.hint}
    finally:
        if job.status in ("done", "failed"):
            store.finished(job)


def _add_job_file_routes(v1: Any, service: _Service) -> None:
    """``GET /jobs/{id}/{file}`` (a result file, drawn on first request) and ``DELETE /jobs/{id}``."""
    from fastapi.responses import FileResponse, Response

    store, pool = service.store, service.pool

    @v1.get("/jobs/{job_id}/{name}", name="job_result", summary="A result file of a done job")
    async def job_result(job_id: str, name: str) -> Response:
        """``labels.nii.gz``, ``frames.csv``, ``summary.json``, ``volume.png``, ``frames.json`` (per-frame
        columns as JSON), ``contours.json`` (per-frame outlines before/after), ``config.yaml``."""
        job = store.get(job_id)
        if name not in RESULT_FILES:
            raise ApiError(404, f"no result {name!r}", "results: " + ", ".join(RESULT_FILES))
        if job.status != "done":
            raise ApiError(409, f"job {job.id} is {job.status}", "results exist once the status is 'done'" if job.status != "failed" else "the job failed; see its status for why")
        path = job.folder / worker.OUT / name
        if name in ("volume.png", "contours.json") and not path.exists():
            lock = job.locks.setdefault(name, asyncio.Lock())
            async with lock:
                if not path.exists():
                    if name == "volume.png":
                        await pool.run(worker.render_volume, str(job.folder))
                    else:
                        await pool.run(worker.render_contours, str(job.folder), str(job.folder / job.input_name))
        if job.deleted or not path.exists():
            raise ApiError(404, f"no job {job_id!r}", "the job was deleted or expired")
        media, inline = RESULT_FILES[name]
        stem = job.input_name.split(".")[0] or "sequence"
        return FileResponse(
            path, media_type=media, filename=f"{stem}_{name}", content_disposition_type="inline" if inline else "attachment"
        )

    @v1.delete("/jobs/{job_id}", summary="Delete a job and its files")
    async def delete_job(job_id: str) -> dict[str, str]:
        job = store.get(job_id)
        store.remove(job)
        return {"id": job.id, "status": "deleted"}


def _add_check_routes(v1: Any, service: _Service) -> None:
    """``POST /check`` (the model-free report, synchronously) and ``GET /version``."""
    from fastapi import Request

    store, pool = service.store, service.pool

    @v1.post("/check", openapi_extra=_CHECK_DOC, summary="The `echotemporal check --json` report of a sequence")
    async def check(request: Request) -> dict[str, Any]:
        """Multipart upload (``sequence``, optional ``info``) → the model-free report, synchronously."""
        service.check_length(request)
        store.check_capacity(service.retry_after())
        folder = store.private_folder()
        try:
            upload = await service.receive(request, folder)
            store.waiting += 1
            started = [False]

            def on_start() -> None:
                started[0] = True
                store.waiting -= 1

            try:
                report = await pool.run(
                    worker.check_job, str(upload.sequence), None if upload.info is None else str(upload.info), on_start=on_start
                )
            except WorkerLost as exc:
                raise ApiError(500, str(exc), "the server keeps serving; send the sequence again") from None
            except (EchoTemporalError, OSError, ValueError) as exc:
                raise from_library_error(exc, folder) from None
            finally:
                if not started[0]:
                    store.waiting -= 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        report["file"] = upload.sequence.name
        report["info_file"] = None if upload.info is None else upload.info.name
        prefix = f"{folder}/"
        report["warnings"] = [w.replace(prefix, "") for w in report.get("warnings", [])]
        return report

    @v1.get("/version", summary="Package version, model sha256 and inference backend")
    async def get_version() -> dict[str, Any]:
        return {**service.version, "method": service.settings.method, "workers": pool.n}


def _add_page_routes(app: Any, service: _Service) -> None:
    """``GET /healthz`` (liveness and load) and the review page at ``/`` with its script."""
    from fastapi.responses import FileResponse

    store, pool = service.store, service.pool

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "workers": pool.n, "running": pool.running, "queued": store.waiting, "jobs": len(store)}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(_STATIC / "index.html", media_type="text/html")

    @app.get("/review.js", include_in_schema=False)
    async def script() -> FileResponse:
        return FileResponse(_STATIC / "review.js", media_type="text/javascript")


def run_server(settings: ServeSettings) -> None:
    """Serve ``create_app(settings)`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
