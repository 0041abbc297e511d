"""HTTP errors of the service: one JSON shape, ``{"error": ..., "hint": ...}``, with the right status.

Library errors keep the one-line message the CLI prints ("culprit: problem; fix"): the part before the
first "; " outside parentheses is the error, the rest the hint. Paths inside a job's private folder are
shown by file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echotemporal.core.errors import ConfigError, EchoTemporalError, InvalidLabelsError, WeightsError

__all__ = ["ApiError", "error_body", "from_library_error", "install_handlers"]


class ApiError(Exception):
    """An error answered as ``{"error", "hint"}`` with ``status`` (and extra response headers)."""

    def __init__(self, status: int, error: str, hint: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.headers = headers or {}


def error_body(error: str, hint: str = "") -> dict[str, str]:
    """The JSON body of every error response."""
    return {"error": error, "hint": hint}


#: The command line's options a library message names, as a request to the service says them: its
#: ``ed``/``es`` fields are 0-based, and it has no allow-implausible or spacing field.
_CLI_TO_API = (
    ("--ed/--es (1-based; without either, ED/ES are detected)", "the ed/es fields (0-based; without them, ED/ES are detected)"),
    ("--ed/--es numbered from 1", "the ed/es fields numbered from 0"),
    ("or --ed/--es", "or the ed/es fields (0-based)"),
    (", or --allow-implausible", ""),
    (" (or --allow-implausible)", ""),
    ("pass --spacing ROW_MM COL_MM (the scanner's pixel size)", "write the scanner's pixel size into the file's header"),
    ("(--spacing ROW_MM COL_MM)", "in the file's header"),
)


def _api_words(text: str) -> str:
    """``text`` with the command line's options said as the service's request fields (:data:`_CLI_TO_API`)."""
    for cli, api in _CLI_TO_API:
        text = text.replace(cli, api)
    return text


def _split_hint(line: str) -> tuple[str, str]:
    """(error, hint) of a one-line message: split at its first "; " outside parentheses (a reason in
    parentheses may hold one: "cut short; its header announces N bytes")."""
    depth = 0
    for i, char in enumerate(line):
        depth += (char == "(") - (char == ")")
        if depth <= 0 and line.startswith("; ", i):
            return line[:i], line[i + 2 :]
    return line, ""


def from_library_error(exc: BaseException, private_dir: str | Path | None = None) -> ApiError:
    """The ApiError of a library (or OS) error raised on uploaded input.

    Args:
        exc: the exception; its first line is the CLI's message.
        private_dir: the job's folder, stripped from the message so that files read as uploaded.

    Returns:
        422 for non-label maps and invalid settings, 500 for unusable model weights, 400 otherwise
        (unreadable or unsupported files).
    """
    from echotemporal.batch.rows import one_line

    line = one_line(exc)
    if private_dir is not None:
        line = line.replace(f"{Path(private_dir)}/", "").replace(str(Path(private_dir)), ".")
    error, hint = _split_hint(_api_words(line))
    if isinstance(exc, WeightsError):
        status = 500
    elif isinstance(exc, (InvalidLabelsError, ConfigError)):
        status = 422
    elif isinstance(exc, (EchoTemporalError, OSError, ValueError)):
        status = 400
    else:
        status = 500
    return ApiError(status, error, hint)


_HINTS = {
    404: "check the URL; job results expire after the server's --results-ttl",
    405: "see /docs for the methods of each endpoint",
}


def install_handlers(app: Any) -> None:
    """Answer ApiError, FastAPI's own HTTP errors (404, 405, ...) and request validation errors (422)
    with the JSON error shape."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def api_error(request: Any, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.error, exc.hint), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Any, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(
            error_body(detail, _HINTS.get(exc.status_code, "")), status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def validation_error(request: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            error_body(f"{where}: {first.get('msg', 'invalid request')}", "see /docs for the expected parameters"),
            status_code=422,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
