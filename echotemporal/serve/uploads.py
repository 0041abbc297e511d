"""Multipart uploads streamed to a job's private folder, with a byte limit enforced while reading.

The body is parsed as it arrives (python-multipart's push parser): file parts go straight to disk,
nothing is held whole in memory, and reading stops at the first byte over the limit (413).
A ``.zip`` holding an ``.mhd`` pair (and optionally its Info cfg) is unpacked flat, bounded in size.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from echotemporal.io import SEQUENCE_SUFFIXES
from echotemporal.serve.errors import ApiError

__all__ = ["Upload", "receive_upload", "FILE_FIELDS", "TEXT_FIELDS"]

#: Form fields carrying files: the sequence (one file, an .mhd with its .raw, or a .zip) and its Info cfg.
FILE_FIELDS = ("sequence", "info")
#: Form fields carrying short text.
TEXT_FIELDS = ("method", "ed", "es", "fps")
_MAX_PARTS = 8
_MAX_TEXT = 256
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_DATA_SUFFIXES = (".raw", ".zraw")


@dataclass
class Upload:
    """What one multipart request left in the job folder.

    Attributes:
        sequence: the label-sequence file to read (after unpacking a zip).
        info: the Info cfg, or None.
        fields: text fields by name.
        names: every file written, as uploaded (sanitized), for error messages.
    """

    sequence: Path
    info: Path | None
    fields: dict[str, str]
    names: list[str] = field(default_factory=list)


def _safe_name(filename: str, taken: set[str]) -> str:
    """Base name with only ``[A-Za-z0-9._-]``, not hidden, unique in the folder."""
    name = _SAFE.sub("_", Path(filename.replace("\\", "/")).name).lstrip(".")[:120] or "upload"
    stem, n = name, 1
    while name.lower() in taken:
        name = f"{n}_{stem}"
        n += 1
    taken.add(name.lower())
    return name


def _is_sequence(name: str) -> bool:
    return name.lower().endswith(tuple(SEQUENCE_SUFFIXES))


async def receive_upload(
    content_type: str, chunks: AsyncIterator[bytes], folder: Path, *, limit_bytes: int
) -> Upload:
    """Stream a multipart/form-data body into ``folder``.

    Args:
        content_type: the request's Content-Type header.
        chunks: the body, as it arrives.
        folder: the job's private folder (exists, empty).
        limit_bytes: most body bytes read; one more raises 413 and reading stops.

    Returns:
        The Upload.

    Raises:
        ApiError: 413 over the limit; 400 for a body that is not well-formed multipart; 422 for
            missing, unknown or repeated fields.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError(400, "the body is not multipart/form-data", "send the sequence as a form file field 'sequence'")

    taken: set[str] = set()
    form = _FormParts(folder, taken)
    parser = MultipartParser(boundary, form.callbacks())
    try:
        await _feed(parser, chunks, limit_bytes, form.problems)
    finally:
        form.close()
    files, fields = form.files, form.fields
    if form.problems:
        raise form.problems[0]
    if not files["sequence"]:
        raise ApiError(422, "no 'sequence' file in the form", "send the label sequence as the file field 'sequence'")
    if not _finished(parser):  # a body cut before its closing boundary
        raise ApiError(400, "malformed multipart body (no closing boundary)", "send a well-formed multipart/form-data request")
    names = [p.name for paths in files.values() for p in paths]
    info = files["info"][0] if files["info"] else None
    sequence = _pick_sequence(files["sequence"], folder, taken, limit_bytes)
    if info is None:
        cfgs = [p for p in folder.iterdir() if p.suffix.lower() == ".cfg"]
        info = cfgs[0] if len(cfgs) == 1 else None
    return Upload(sequence=sequence, info=info, fields=fields, names=names)


class _FormParts:
    """Callbacks of python-multipart's push parser: file parts written to ``folder``, text parts kept.

    Attributes:
        files: paths written, by file field (``FILE_FIELDS``).
        fields: text fields by name (``TEXT_FIELDS``).
        problems: missing, unknown, repeated or too long fields seen so far; the first is raised.
    """

    def __init__(self, folder: Path, taken: set[str]) -> None:
        self.folder, self.taken = folder, taken
        self.files: dict[str, list[Path]] = {name: [] for name in FILE_FIELDS}
        self.fields: dict[str, str] = {}
        self.problems: list[ApiError] = []
        self._header, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._sink: IO[bytes] | None = None
        self._text: str | None = None
        self._parts = 0

    def callbacks(self) -> dict[str, Callable[..., None]]:
        """The parser's callbacks, by the names python-multipart calls them."""
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._parts += 1

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header, self._value = b"", b""

    def on_headers_finished(self) -> None:
        """Open the part's file, or start its text field, or record why the part is refused."""
        from python_multipart.multipart import parse_options_header

        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("latin-1")
        filename = disposition.get(b"filename")
        self._sink, self._text = None, None
        if self._parts > _MAX_PARTS:
            self.problems.append(ApiError(422, f"more than {_MAX_PARTS} form parts", "send one sequence (and its cfg)"))
        elif name in FILE_FIELDS and filename is not None:
            if len(self.files[name]) >= (2 if name == "sequence" else 1):
                self.problems.append(ApiError(422, f"field '{name}' repeated", "send one file per field (two for an .mhd with its .raw)"))
                return
            path = self.folder / _safe_name(filename.decode("utf-8", "replace"), self.taken)
            self.files[name].append(path)
            self._sink = open(path, "wb")  # noqa: SIM115 - closed in on_part_end / close
        elif name in TEXT_FIELDS and filename is None:
            if name in self.fields:
                self.problems.append(ApiError(422, f"field '{name}' repeated", "send each field once"))
                return
            self._text = name
            self.fields[name] = ""
        else:
            what = "a file" if filename is not None else "text"
            self.problems.append(ApiError(
                422, f"unexpected form field '{name}' ({what})",
                "file fields: sequence, info; text fields: " + ", ".join(TEXT_FIELDS),
            ))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
        elif self._text is not None:
            name = self._text
            self.fields[name] += data[start:end].decode("utf-8", "replace")
            if len(self.fields[name]) > _MAX_TEXT:
                self.problems.append(ApiError(422, f"field '{name}' longer than {_MAX_TEXT} characters", "send a short value"))

    def on_part_end(self) -> None:
        self.close()
        self._text = None

    def close(self) -> None:
        """Close the file being written, if any."""
        if self._sink is not None:
            self._sink.close()
        self._sink = None


async def _feed(parser: Any, chunks: AsyncIterator[bytes], limit_bytes: int, problems: list[ApiError]) -> None:
    """Push the body through ``parser``, stopping at the first byte over ``limit_bytes`` (413), at a
    malformed body (400) or at the first problem the callbacks recorded."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit_bytes:
            raise ApiError(
                413, f"upload larger than the server's limit of {limit_bytes / 2**20:g} MB",
                "send a smaller file (one view's sequence), or start the server with a larger --max-upload-mb",
            )
        try:
            parser.write(chunk)
        except Exception as exc:  # python-multipart raises its own MultipartParseError and ValueError
            raise ApiError(400, f"malformed multipart body ({exc.__class__.__name__})", "send a well-formed multipart/form-data request") from None
        if problems:
            raise problems[0]
    try:
        parser.finalize()
    except Exception as exc:  # noqa: BLE001
        raise ApiError(400, f"malformed multipart body ({exc.__class__.__name__})", "send a well-formed multipart/form-data request") from None


def _finished(parser: object) -> bool:
    """Whether the push parser saw the closing boundary."""
    from python_multipart.multipart import MultipartState

    return getattr(parser, "state", None) == MultipartState.END


def _pick_sequence(paths: list[Path], folder: Path, taken: set[str], limit_bytes: int) -> Path:
    """The sequence file among the uploaded ones, unpacking a zip."""
    if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
        return _unzip(paths[0], folder, taken, unpacked_limit=4 * limit_bytes)
    sequences = [p for p in paths if _is_sequence(p.name)]
    if len(paths) == 2 and not (
        len(sequences) == 1 and sequences[0].name.lower().endswith(".mhd")
        and any(p.name.lower().endswith(_DATA_SUFFIXES) for p in paths)
    ):
        raise ApiError(422, "two 'sequence' files that are not an .mhd with its .raw", "send one file, an .mhd pair, or a .zip of the pair")
    return sequences[0] if sequences else paths[0]  # a lone unsupported file: read_sequence names the fix


def _unzip(archive: Path, folder: Path, taken: set[str], *, unpacked_limit: int) -> Path:
    """Unpack the sequence files (and a cfg) of a zip flat into ``folder``; the one sequence file."""
    keep = (*SEQUENCE_SUFFIXES, *_DATA_SUFFIXES, ".cfg")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and m.filename.lower().endswith(keep)]
            if sum(m.file_size for m in members) > unpacked_limit:
                raise ApiError(413, f"{archive.name}: unpacks to more than {unpacked_limit / 2**20:g} MB", "zip one view's sequence only")
            written = []
            for member in members:
                target = folder / _safe_name(member.filename, taken)
                with zf.open(member) as src, open(target, "wb") as dst:
                    _copy_bounded(src, dst, member.file_size)
                written.append(target)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ApiError(400, f"{archive.name}: unreadable zip ({exc.__class__.__name__})", "zip the .mhd and its .raw, nothing else") from None
    archive.unlink()
    sequences = [p for p in written if _is_sequence(p.name)]
    if len(sequences) != 1:
        raise ApiError(422, f"{archive.name}: holds {len(sequences)} sequence files", "zip exactly one .mhd with its .raw (or one .nii.gz)")
    return sequences[0]


def _copy_bounded(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    """Copy at most ``size`` bytes (the size the zip declares; a lying entry is cut there)."""
    left = size
    while left > 0:
        block = src.read(min(left, 1 << 20))
        if not block:
            break
        dst.write(block)
        left -= len(block)
