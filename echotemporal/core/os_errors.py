"""Operating-system errors in a user's words: what failed, on which path, and what to do.

``[Errno 30] Read-only file system: '/data/.x.nii.gz.k3j2.tmp'`` becomes
``/data/x.nii.gz: cannot write, the file system is read-only; write to another folder (-o)``.
"""

from __future__ import annotations

import errno
import re

__all__ = ["describe_os_error"]

#: errno -> (what happened, the fix).
_REASONS: dict[int, tuple[str, str]] = {
    errno.EROFS: ("the file system is read-only", "write to another folder (-o)"),
    errno.EACCES: ("permission denied", "write to a folder you may write to (-o), or fix its permissions"),
    errno.EPERM: ("operation not permitted", "write to a folder you may write to (-o)"),
    errno.ENOSPC: ("no space left on the device", "free some space or write to another disk (-o)"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write to another disk (-o)"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another path"),
    errno.EEXIST: ("a file is in the way", "choose another path, or remove that file"),
    errno.EISDIR: ("is a folder, not a file", "give a file path"),
    errno.ENAMETOOLONG: ("the file name is too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer --workers"),
}

#: The temporary name the atomic writer uses for ``name``: ``.name.<random>.tmp`` beside it.
_TEMPORARY = re.compile(r"(?P<dir>.*?)(?P<sep>[\\/]?)\.(?P<name>[^\\/]+)\.[A-Za-z0-9_]+\.tmp$")


def _user_path(filename: object) -> str:
    text = str(filename)
    match = _TEMPORARY.fullmatch(text)
    return f"{match['dir']}{match['sep']}{match['name']}" if match else text


def describe_os_error(exc: OSError) -> str:
    """One line naming the path, the failure and the fix (the errno's text when it is not listed)."""
    path = _user_path(exc.filename) if exc.filename is not None else None
    what, fix = _REASONS.get(exc.errno or -1, (exc.strerror or exc.__class__.__name__, ""))
    verb = "cannot write" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT) else "failed"
    head = f"{path}: {verb}, {what}" if path else f"{verb}: {what}"
    return f"{head}; {fix}" if fix else head
