"""Whether a label file's header states its pixel spacing at all.

SimpleITK reads a NIfTI whose ``pixdim[1..2]`` are 0 (or a MetaImage without ``ElementSpacing``) as
1 x 1 mm without a word; volumes computed from that guess can be off by an order of magnitude.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

__all__ = ["spacing_in_header"]

_NIFTI1, _NIFTI2 = 348, 540


def _nifti_pixdims(header: bytes) -> tuple[float, float] | None:
    """pixdim[1], pixdim[2] of a NIfTI-1/2 header (bytes from the file's start), or None if not NIfTI."""
    if len(header) < 4:
        return None
    for order in "<>":
        sizeof_hdr = struct.unpack_from(order + "i", header)[0]
        if sizeof_hdr == _NIFTI1 and len(header) >= 108:
            return struct.unpack_from(order + "2f", header, 80)  # pixdim[0] at 76, float32
        if sizeof_hdr == _NIFTI2 and len(header) >= 120:
            return struct.unpack_from(order + "2d", header, 112)  # pixdim[0] at 104, float64
    return None


def spacing_in_header(path: str | Path) -> bool:
    """False when the file's header holds no usable in-plane spacing (NIfTI pixdim 0, MetaImage
    without ElementSpacing/ElementSize); True otherwise, including formats this cannot parse."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii.gz", ".nii")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                header = handle.read(_NIFTI2)
            dims = _nifti_pixdims(header)
            return dims is None or all(d > 0 for d in dims)
        if name.endswith(".mhd"):
            keys = {line.split("=", 1)[0].strip().lower() for line in path.read_text(errors="replace").splitlines()}
            return bool({"elementspacing", "elementsize"} & keys)
    except (OSError, EOFError, UnicodeDecodeError):
        return True  # the reader reports unreadable files itself
    return True
