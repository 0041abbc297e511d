"""Detecting truncated or corrupt label-sequence files before SimpleITK reads them.

SimpleITK (ITK's NIfTI reader) reads a ``.nii`` or ``.nii.gz`` whose voxel data stops early without a
word and fills the missing voxels with zeros: a sequence cut short by an interrupted copy would come
back as a plausible sequence with empty frames. MetaIO does notice a short ``.raw``/``.zraw`` (it
reports "data not read completely"), so MetaImage files only need that report turned into a clear
message.

For NIfTI the header says how many bytes the file must hold (``vox_offset`` + voxels x ``bitpix``/8);
a ``.nii`` is checked against its size, a ``.nii.gz`` by decompressing the whole stream, which also
checks the gzip CRC and length (about 5 ms for a 20-frame CAMUS-size sequence, beside SimpleITK's own
6-10 ms read).
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path

from echotemporal.core.errors import InputFileError

__all__ = ["METAIO_INCOMPLETE", "check_nifti_complete", "metaimage_data_file", "truncated_file_error"]

#: What MetaIO prints when an ``.mhd``/``.mha`` holds less voxel data than its header announces.
METAIO_INCOMPLETE = "data not read completely"

#: Largest voxel data (bytes) a label-sequence file may hold or announce: 2 GiB, 2000 frames of
#: 1000 × 1000 8-bit pixels. A file over it is refused before it is read: a few hundred kB of gzip can
#: inflate to tens of GB (an upload to the service, say), which SimpleITK would try to hold in memory.
MAX_VOXEL_BYTES = 2**31

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# sizeof_hdr, the first field of a NIfTI header, tells NIfTI-1 (348 bytes) from NIfTI-2 (540 bytes).
_NIFTI1, _NIFTI2 = 348, 540


def truncated_file_error(path: Path, detail: str) -> InputFileError:
    """The one error for a file that holds less (or other) data than its header announces."""
    return InputFileError(f"{path}: file is truncated or corrupt ({detail}); re-export or re-download it")


def _nifti_needed_bytes(header: bytes) -> int | None:
    """Bytes a single-file NIfTI must hold (voxel offset + voxel data), from its header.

    Args:
        header: the file's first bytes (at least 4; 540 to cover NIfTI-2).

    Returns:
        The size, or None when this is not a NIfTI-1/NIfTI-2 header that can be sized (SimpleITK then
        reports what is wrong). A header shorter than its own ``sizeof_hdr`` gives ``sizeof_hdr``.
    """
    if len(header) < 4:
        return None
    for order in "<>":
        sizeof_hdr = struct.unpack_from(order + "i", header)[0]
        if sizeof_hdr in (_NIFTI1, _NIFTI2):
            break
    else:
        return None
    if len(header) < sizeof_hdr:
        return sizeof_hdr
    if sizeof_hdr == _NIFTI1:
        dims = struct.unpack_from(order + "8h", header, 40)
        bitpix = struct.unpack_from(order + "h", header, 72)[0]
        vox_offset = struct.unpack_from(order + "f", header, 108)[0]
    else:
        dims = struct.unpack_from(order + "8q", header, 16)
        bitpix = struct.unpack_from(order + "h", header, 14)[0]
        vox_offset = struct.unpack_from(order + "q", header, 168)[0]
    n_dims = dims[0]
    if not 1 <= n_dims <= 7 or bitpix <= 0 or bitpix % 8 or not math.isfinite(vox_offset) or vox_offset < 0:
        return None
    sizes = dims[1 : n_dims + 1]
    if any(s < 1 for s in sizes):
        return None
    return max(int(vox_offset), sizeof_hdr) + math.prod(sizes) * (bitpix // 8)


def _check_gzip_nifti(path: Path) -> None:
    """Decompress the whole stream (read1: bytes are counted before a later error), then size it."""
    head, total, failure = b"", 0, None
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read1(_CHUNK):
                if len(head) < _NIFTI2:
                    head += chunk[: _NIFTI2 - len(head)]
                    _check_announced(path, _nifti_needed_bytes(head))  # sized once the header is in
                total += len(chunk)
                if total > MAX_VOXEL_BYTES + _NIFTI2:
                    raise _too_large(path, f"decompresses to over {total} bytes")
    except EOFError:
        failure = "the gzip stream is cut short"
    except (gzip.BadGzipFile, zlib.error) as exc:
        # Bytes after a complete stream that are not a gzip member (padding some tools add) lose no data;
        # a failed CRC or length check does.
        failure = None if str(exc).startswith("Not a gzipped file") and total > 0 else f"gzip: {exc}"
    needed = _nifti_needed_bytes(head)
    if failure is None and needed is not None and total < needed:
        failure = f"decompressed size {total} bytes"
    if failure is not None:
        announced = "" if needed is None else f"; its NIfTI header announces {needed} bytes"
        raise truncated_file_error(path, failure + announced)


def _too_large(path: Path, what: str) -> InputFileError:
    """The error for a file over :data:`MAX_VOXEL_BYTES`; ``what`` says how much it holds or announces."""
    return InputFileError(
        f"{path}: {what}, over the {MAX_VOXEL_BYTES / 2**30:g} GiB of voxel data a label sequence may hold; "
        "is this a label map? (crop or split it, one view's sequence per file)"
    )


def _check_announced(path: Path, needed: int | None) -> None:
    """Raise :func:`_too_large` when a header announces ``needed`` bytes (None: not sized) over the limit."""
    if needed is not None and needed > MAX_VOXEL_BYTES + _NIFTI2:
        raise _too_large(path, f"its NIfTI header announces {needed} bytes")


def check_nifti_complete(path: Path, *, gzipped: bool) -> None:
    """Raise the truncation error when a NIfTI file holds fewer bytes than its header announces.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file. A ``.nii.gz`` that is not gzip-compressed (ITK reads those
            too) is checked as a ``.nii``.
        gzipped: the name ends with ``.gz``.

    Raises:
        InputFileError: the file (or its decompressed stream) is shorter than header + voxel data, or its
            gzip stream is cut short or fails its checksum; or it holds or announces more than
            :data:`MAX_VOXEL_BYTES` of voxel data.
    """
    try:
        with open(path, "rb") as raw:
            head = raw.read(_NIFTI2)
    except OSError:
        return  # unreadable (permissions): SimpleITK's error says so
    if gzipped and head.startswith(_GZIP_MAGIC):
        _check_gzip_nifti(path)
        return
    needed = _nifti_needed_bytes(head)
    _check_announced(path, needed)
    size = path.stat().st_size
    if needed is not None and size < needed:
        raise truncated_file_error(path, f"size {size} bytes; its NIfTI header announces {needed} bytes")


def metaimage_data_file(path: Path) -> str:
    """The data file an ``.mhd`` header names (``ElementDataFile``), or the file itself (``.mha``, LOCAL)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16).decode("latin-1")
    except OSError:
        return path.name
    match = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", head, flags=re.MULTILINE)
    if match is None or match.group(1).upper() == "LOCAL":
        return path.name
    return match.group(1)
