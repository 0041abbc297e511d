"""Label-sequence files (NIfTI, MetaImage): reading and writing a ``(T, H, W)`` label map with its geometry.

This is the only module that talks to SimpleITK. In memory a sequence is a ``(T, H, W)`` uint8 label map,
frame 0 first, the order ``SimpleITK.GetArrayFromImage`` returns; ``spacing_mm = (row_mm, col_mm)``.
SimpleITK orders axes the other way round, ``(x, y[, t]) = (col, row[, frame])``; that reversal is done
in exactly one function, :func:`_sitk_xy_to_row_col`.

Geometry (origin, spacing, direction) is copied exactly from an input file to the file written back.
NIfTI stores geometry as float32, so a value that is not a float32 (e.g. 0.308 mm) is rounded once, at
the first NIfTI write; reading a file and writing it again is exact in every format.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from echotemporal.core.errors import InputFileError
from echotemporal.io.atomic import check_overwrite, write_atomic
from echotemporal.io.integrity import METAIO_INCOMPLETE, check_nifti_complete, metaimage_data_file, truncated_file_error
from echotemporal.core.labels import VALID_LABELS, validate_labels

__all__ = [
    "SEQUENCE_SUFFIXES",
    "ImageGeometry",
    "LabelSequence",
    "read_sequence",
    "write_sequence",
    "frame_time_ms_from_header",
    "geometry_from_spacing",
]

#: File name endings read and written, in the order discovery prefers them.
SEQUENCE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mhd", ".mha")


@dataclass(frozen=True)
class ImageGeometry:
    """Physical placement of an image, in SimpleITK order.

    Attributes:
        spacing: (D,) pixel size per axis in mm, SimpleITK order ``(x, y[, t])`` = (col, row[, frame]).
        origin: (D,) physical position of pixel (0, 0[, 0]) in mm, SimpleITK order.
        direction: (D*D,) row-major direction cosine matrix, SimpleITK order.
    """

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def dimension(self) -> int:
        """Number of image axes, 2 or 3."""
        return len(self.spacing)


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make the generated __eq__ ambiguous
class LabelSequence:
    """A label sequence read from a file.

    Attributes:
        labels: (T, H, W) uint8 CAMUS labels, frame 0 first, apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel size in mm, array order.
        geometry: the file's geometry, kept so that outputs copy it exactly.
        path: the file it was read from, if any.
        frame_time_ms: time between frames from the file's header (:func:`frame_time_ms_from_header`),
            ms; None when the header has no plausible one.
    """

    labels: np.ndarray
    spacing_mm: tuple[float, float]
    geometry: ImageGeometry
    path: Path | None = None
    frame_time_ms: float | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.labels.shape[0])


def _sitk_xy_to_row_col(values: Sequence[float]) -> tuple[float, float]:
    """Swap the first two axes between SimpleITK order and array order.

    SimpleITK (ITK) orders axes ``(x, y[, t])`` = (column, row[, frame]) while
    ``GetArrayFromImage`` returns ``(t, row, col)`` arrays. This is the one place in echotemporal that
    converts between the two; the swap is its own inverse, so it serves both directions:
    ``(x_mm, y_mm) -> (row_mm, col_mm)`` and ``(row_mm, col_mm) -> (x_mm, y_mm)``.

    Args:
        values: (>= 2,) per-axis values in one order; only the first two (in-plane) are used.

    Returns:
        (2,) the in-plane values in the other order.
    """
    return float(values[1]), float(values[0])


def _check_spacing_mm(spacing_mm: Sequence[float]) -> tuple[float, float]:
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 2 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm={tuple(spacing_mm)!r}: expected two positive pixel sizes (row_mm, col_mm)")
    return spacing  # type: ignore[return-value]


def geometry_from_spacing(spacing_mm: Sequence[float], n_dims: int = 3) -> ImageGeometry:
    """Geometry with the given in-plane spacing, zero origin and identity direction.

    Args:
        spacing_mm: (2,) (row_mm, col_mm) pixel size in mm, array order.
        n_dims: 2 for a single-frame image, 3 for a sequence (frame axis spacing 1).

    Returns:
        The geometry in SimpleITK order.

    Raises:
        ValueError: spacing not two positive numbers, or ``n_dims`` not 2 or 3.
    """
    if n_dims not in (2, 3):
        raise ValueError(f"n_dims={n_dims}: a label sequence file has 2 or 3 axes")
    x_mm, y_mm = _sitk_xy_to_row_col(_check_spacing_mm(spacing_mm))
    spacing = (x_mm, y_mm, 1.0)[:n_dims]
    direction = tuple(float(v) for v in np.eye(n_dims).ravel())
    return ImageGeometry(spacing=spacing, origin=(0.0,) * n_dims, direction=direction)


def _as_labels(array: np.ndarray, source: str) -> np.ndarray:
    """The label map as uint8, checked by ``labels.validate_labels``.

    A uint8 map whose maximum is a valid label is valid, so it skips ``validate_labels``'s full
    ``np.unique``, which costs ~30 ms on a 20-frame CAMUS sequence.
    """
    array = np.asarray(array)
    if array.dtype == np.uint8 and (array.size == 0 or int(array.max()) <= max(VALID_LABELS)):
        return array
    return validate_labels(array, source=source)


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SEQUENCE_SUFFIXES if name.endswith(s)), None)


@contextlib.contextmanager
def _native_stderr_lines() -> Iterator[list[str]]:
    """Capture what C++ code writes straight to file descriptor 2 while the block runs.

    MetaIO prints parse errors of a bad ``.mhd`` to ``std::cerr``, beside Python's ``sys.stderr``; left
    alone, they would turn the CLI's one-line error into a paragraph. The lines are handed back so the
    caller can put them in its exception or warning. (fd 2 is process-wide: another thread's stderr
    output during a read is captured too, and re-issued by the caller.)
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def read_sequence(path: str | os.PathLike[str]) -> LabelSequence:
    """Read a label sequence from a ``.nii.gz``, ``.nii``, ``.mhd`` (or ``.mha``) file.

    A 2D file, or a 3D file whose third axis has size 1 (CAMUS ED/ES ``.mhd`` files), gives T = 1.

    Args:
        path: the file.

    Returns:
        The sequence: labels (T, H, W) uint8, spacing_mm (row_mm, col_mm), the file's geometry.

    Raises:
        InputFileError: the file is missing, not a supported format, unreadable, truncated (less voxel data
            than its header announces, or a cut/corrupt gzip stream), 4D or multi-channel.
        InvalidLabelsError: the values are not CAMUS labels {0, 1, 2, 3} (e.g. a B-mode image).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise InputFileError(f"{path}: {what}; check the path (expected a .nii.gz, .nii or .mhd label map)")
    suffix = _suffix(path)
    if suffix is None:
        raise InputFileError(f"{path}: unsupported format; convert it to .nii.gz, .nii or .mhd")
    if suffix in (".nii", ".nii.gz"):  # ITK zero-fills the voxels a short NIfTI lacks: check first
        check_nifti_complete(path, gzipped=suffix == ".nii.gz")
    image, error = None, ""
    with _native_stderr_lines() as native:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            error = str(exc).strip()
    if image is None:
        if any(METAIO_INCOMPLETE in text for text in (*native, error)):  # short .raw/.zraw/.mha: say so plainly
            raise truncated_file_error(path, f"{metaimage_data_file(path)} holds less voxel data than the header says")
        reason = native[0] if native else (error.splitlines()[-1].strip() if error else "SimpleITK cannot read it")
        raise InputFileError(
            f"{path}: unreadable image file ({reason.strip()}); check that it is a complete, uncorrupted "
            ".nii.gz/.nii/.mhd file (an .mhd needs its .raw beside it)"
        )
    for line in native:
        warnings.warn(f"{path}: {line}", RuntimeWarning, stacklevel=2)
    dim = image.GetDimension()
    if dim not in (2, 3):
        size = tuple(image.GetSize())
        # A converter's (x, y, 1, t) is one view's sequence with an empty slice axis, not several views.
        fix = ("drop its axis of size 1 to save it as (x, y, t)" if dim == 4 and size[2] == 1
               else "save one view's sequence per file")
        raise InputFileError(f"{path}: {dim}D image of size {size}; expected a 2D frame or a 3D (x, y, t) sequence - {fix}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputFileError(
            f"{path}: {image.GetNumberOfComponentsPerPixel()} channels per pixel; expected a single-channel "
            "label map (is this an RGB screenshot or a probability map?)"
        )
    labels = _as_labels(sitk.GetArrayFromImage(image), source=str(path))
    if dim == 2:
        labels = labels[np.newaxis]
    geometry = ImageGeometry(
        spacing=tuple(image.GetSpacing()), origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection())
    )
    meta = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    return LabelSequence(
        labels=labels,
        spacing_mm=_sitk_xy_to_row_col(geometry.spacing),
        geometry=geometry,
        path=path,
        frame_time_ms=frame_time_ms_from_header(geometry.spacing, meta) if len(labels) > 1 else None,
    )


#: Plausible time between echocardiography frames (5-200 fps), ms.
FRAME_TIME_RANGE_MS: tuple[float, float] = (5.0, 200.0)
#: NIfTI ``xyzt_units`` time bits (mask 0x38) -> milliseconds per unit.
_NIFTI_TIME_UNITS_MS = {8: 1000.0, 16: 1.0, 24: 0.001}


def frame_time_ms_from_header(spacing: Sequence[float], meta: dict[str, str]) -> float | None:
    """Time between frames from an image header, when it is plausible.

    The frame axis of a (x, y, t) sequence is the image's third axis: its spacing (NIfTI ``pixdim[3]``,
    MetaImage ``ElementSpacing``) is read as time, unless the NIfTI header stores time as its fourth
    dimension (``dim[4] > 1``: ``pixdim[4]``); when the one read is not a plausible frame time, the
    other is tried (converters write the frame time in ``pixdim[4]`` of a 3D file). The unit is the
    NIfTI ``xyzt_units`` time unit when set and it gives a plausible value; otherwise (SimpleITK, for
    one, writes "seconds" whatever the value) a value below 1 is taken as seconds and one from 1 up as
    milliseconds. A value outside 5-200 ms per frame (such as the spacing 1 most tools write) is no
    frame time.

    Args:
        spacing: (3,) image spacing in SimpleITK order (x, y, t).
        meta: the image's metadata dictionary (SimpleITK ``GetMetaData``).

    Returns:
        Frame time in ms, or None.
    """
    try:
        third = float(spacing[2]) if len(spacing) > 2 else float("nan")
        fourth = float(meta.get("pixdim[4]", "nan"))
        values = [fourth, third] if int(float(meta.get("dim[4]", "1"))) > 1 else [third, fourth]
        units = int(float(meta.get("xyzt_units", "0"))) & 0x38
    except ValueError:
        return None
    lo, hi = FRAME_TIME_RANGE_MS
    for value in values:
        if not math.isfinite(value) or value <= 0:
            continue
        guess = value * 1000.0 if value < 1.0 else value
        for ms in ([value * _NIFTI_TIME_UNITS_MS[units]] if units in _NIFTI_TIME_UNITS_MS else []) + [guess]:
            if lo <= ms <= hi:
                return ms
    return None


def write_sequence(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    geometry: ImageGeometry | None = None,
    *,
    spacing_mm: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a label sequence, atomically, copying the geometry exactly.

    The format follows the name: ``.nii.gz``, ``.nii``, ``.mhd`` (+ ``.raw``) or ``.mha``. The file is
    written under a temporary folder beside ``path`` and moved into place, so a reader never sees a
    half-written file and an interrupted write leaves the old file intact.

    Args:
        path: output file.
        labels: (T, H, W) (or (H, W), taken as T = 1) CAMUS labels.
        geometry: geometry to copy, usually ``LabelSequence.geometry`` of the input. A 2D geometry
            (T = 1 read from a 2D file) writes a 2D file, so a T = 1 input is written back as it came.
        spacing_mm: (row_mm, col_mm), used when ``geometry`` is None (then origin 0, identity direction).
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        InvalidLabelsError: values outside {0, 1, 2, 3}.
        ValueError: unsupported name, no geometry and no spacing, or a geometry that does not fit.
    """
    import SimpleITK as sitk

    path = Path(path)
    if _suffix(path) is None:
        raise ValueError(f"{path}: unsupported output format; name it .nii.gz, .nii or .mhd")
    check_overwrite(path, overwrite)  # before any work; write_atomic checks again, with the side files
    arr = _as_labels(labels, source=str(path))
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"{path}: labels of shape {arr.shape}; expected a non-empty (T, H, W) array")
    if geometry is None:
        if spacing_mm is None:
            raise ValueError(f"{path}: no geometry and no spacing_mm given; pass the input's geometry or its spacing_mm")
        geometry = geometry_from_spacing(spacing_mm, n_dims=3)
    elif spacing_mm is not None and not np.allclose(
        _sitk_xy_to_row_col(geometry.spacing), _check_spacing_mm(spacing_mm), rtol=1e-6, atol=0.0
    ):
        raise ValueError(
            f"{path}: spacing_mm={tuple(spacing_mm)} contradicts the geometry's "
            f"{_sitk_xy_to_row_col(geometry.spacing)}; pass only one of them"
        )
    dim = geometry.dimension
    if dim not in (2, 3) or len(geometry.origin) != dim or len(geometry.direction) != dim * dim:
        raise ValueError(f"{path}: inconsistent geometry {geometry}; expected 2 or 3 axes throughout")
    if dim == 2 and arr.shape[0] != 1:
        raise ValueError(f"{path}: a 2D geometry holds one frame, got {arr.shape[0]}; pass a 3D geometry")

    image = sitk.GetImageFromArray(arr[0] if dim == 2 else arr, isVector=False)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)

    # write_atomic keeps the exact file name (SimpleITK picks the format from it; an .mhd names its .raw)
    return write_atomic(path, lambda tmp: sitk.WriteImage(image, str(tmp)), overwrite=overwrite)
