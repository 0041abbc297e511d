"""Atomic output files: a reader sees the old file or the complete new one, never a half-written one.

Sequences, Info cfg files, the smooth reports, batch tables and checkpoints are written through
:func:`write_atomic`; every existing-output check goes through :func:`check_overwrite`, with one message. The writer writes under a
temporary *folder* beside the target (same file system, so the final move is an atomic ``os.replace``)
and keeps the exact file name, because SimpleITK picks the format from the extension and an ``.mhd``
header names its ``.raw`` data file, which must keep its final name. The writer creates its files with a
plain ``open()``, so they get the mode any file a user writes gets (``0o666 & ~umask``), not the
``0o600`` of ``tempfile.mkstemp``; only the temporary folder is private, and it is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from echotemporal.core.errors import OutputExistsError

__all__ = ["write_atomic", "check_overwrite"]


def check_overwrite(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], overwrite: bool, *, alternative: str = ""
) -> None:
    """The one guard of every output: raise when a path exists and ``overwrite`` is False.

    Args:
        paths: one output path or several (the first existing one is named).
        overwrite: the ``--overwrite`` flag; True lets every path be replaced.
        alternative: another way out, appended to the message (e.g. ``", or --resume to continue"``).

    Raises:
        OutputExistsError: "``{path}: exists; rerun with --overwrite to replace it``".
    """
    if overwrite:
        return
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        if Path(path).exists():
            raise OutputExistsError(f"{path}: exists; rerun with --overwrite to replace it{alternative}")


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, overwrite: bool = False, durable: bool = False
) -> Path:
    """Write ``path`` (and any side files its writer creates) atomically.

    Args:
        path: the output file.
        write: called once with a temporary path of the same name; writes the file there (and, for an
            ``.mhd``, its ``.raw`` beside it). Its return value is ignored.
        overwrite: replace existing files; otherwise neither ``path`` nor any side file may exist.
        durable: flush the files to disk before the move (``os.fsync``), so that a crash right after
            leaves the new content, not an empty file (tables a long batch rewrites as it goes).

    Returns:
        ``path``.

    Raises:
        OutputExistsError: ``path`` or a side file exists and ``overwrite`` is False; nothing is moved.
    """
    path = Path(path)
    check_overwrite(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp_dir / path.name)
        # side files (an .mhd's .raw) first, the named file last: a reader finding the header finds its data
        written = sorted(tmp_dir.iterdir(), key=lambda p: p.name == path.name)
        for item in written:
            check_overwrite(path.parent / item.name, overwrite)
            if durable:
                with open(item, "rb+") as handle:
                    os.fsync(handle.fileno())
        for item in written:
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path
