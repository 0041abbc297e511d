"""CAMUS label values and the checks of a labelled sequence's inputs (labels, spacing, frame indices)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import numpy as np

from echotemporal.core.errors import ConfigError, InvalidLabelsError

__all__ = ["Label", "BACKGROUND", "LV", "MYO", "LA", "VALID_LABELS", "MODELLED_LABELS", "validate_labels", "drop_la", "as_label_sequence", "check_spacing", "check_frame_index", "check_frame_time", "frame_indices", "frames_text", "frame_boxes"]


class Label(IntEnum):
    """CAMUS label values (Leclerc et al., IEEE TMI 2019)."""

    BACKGROUND = 0
    LV = 1
    MYO = 2
    LA = 3


#: The labels as numpy uint8 scalars, for comparisons with label arrays. NumPy reads an IntEnum
#: member as a 64-bit integer, so ``labels == Label.LV`` first casts the whole uint8 array to int64
#: (several times slower than ``labels == LV``).
BACKGROUND, LV, MYO, LA = (np.uint8(v) for v in Label)

VALID_LABELS: frozenset[int] = frozenset(int(v) for v in Label)
#: Labels the shape model reconstructs; others (LA) are carried over from the input.
MODELLED_LABELS: tuple[Label, ...] = (Label.BACKGROUND, Label.LV, Label.MYO)


def validate_labels(array: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Check that ``array`` is a CAMUS label map and return it as uint8.

    Args:
        array: (T, H, W) or (H, W) array of any numeric dtype.
        source: file name (or description) used in the error message.

    Returns:
        The same array as uint8.

    Raises:
        InvalidLabelsError: non-integer values or values outside {0, 1, 2, 3}.
    """
    arr = np.asarray(array)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            sample = np.unique(arr[np.isfinite(arr)])[:6]
            raise InvalidLabelsError(
                f"{source}: holds non-integer values (e.g. {', '.join(f'{v:g}' for v in sample)}); "
                "expected a label map with values in {0,1,2,3} - is this the B-mode image "
                "rather than its segmentation?"
            )
    elif arr.dtype.kind not in "iub":
        raise InvalidLabelsError(f"{source}: dtype {arr.dtype} is not a label map; expected integers in {{0,1,2,3}}")
    values = np.unique(arr)
    bad = [v for v in values.tolist() if int(v) not in VALID_LABELS]
    if bad:
        shown = ", ".join(str(int(v)) for v in values[:12])
        raise InvalidLabelsError(
            f"{source}: label values {{{shown}{', ...' if values.size > 12 else ''}}} found, "
            "expected only 0 background, 1 LV, 2 MYO, 3 LA - is this the B-mode image, or a "
            "segmentation with another label convention? Remap it to CAMUS labels first."
        )
    return arr.astype(np.uint8, copy=False)


def drop_la(labels: np.ndarray) -> np.ndarray:
    """The label map without its LA: LA pixels become background (segmenters that label only 0/1/2).

    Args:
        labels: (T, H, W) or (H, W) CAMUS label map.

    Returns:
        A new uint8 array of the same shape with values in {0, 1, 2}.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    out[out == LA] = BACKGROUND
    return out


def as_label_sequence(labels: np.ndarray, source: str = "labels") -> np.ndarray:
    """A (T, H, W) uint8 CAMUS label sequence from a (T, H, W) sequence or one (H, W) frame.

    Raises:
        InvalidLabelsError: another number of axes, a non-integer dtype, or values outside {0,1,2,3}.
    """
    arr = np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InvalidLabelsError(
            f"{source} of shape {arr.shape}: expected a (T, H, W) sequence or one (H, W) frame of "
            "CAMUS labels; squeeze or split extra axes first"
        )
    if arr.dtype.kind not in "iub":
        raise InvalidLabelsError(
            f"{source} of dtype {arr.dtype}: expected an integer label map with values in {{0,1,2,3}}; "
            "pass the segmentation, not the image or probabilities"
        )
    # A full np.unique costs tens of ms on a CAMUS sequence; the max accepts the common case.
    if arr.dtype != np.uint8 or (arr.size and int(arr.max()) > max(Label)):
        arr = validate_labels(arr, source)
    return arr


def check_spacing(spacing_mm: object) -> tuple[float, float]:
    """``(row_mm, col_mm)`` as two positive finite floats (the pixel size in array order).

    Raises:
        ConfigError: anything else.
    """
    try:
        values = tuple(float(v) for v in np.asarray(spacing_mm, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ConfigError(
            f"spacing_mm={spacing_mm!r} is not two positive finite numbers (row_mm, col_mm); take it "
            "from the image header (io.read_sequence gives it)"
        )
    return values[0], values[1]


def check_frame_index(index: int | None, n_frames: int, name: str) -> int | None:
    """A 0-based frame index (e.g. ED or ES) of a ``n_frames``-frame sequence; ``None`` passes through.

    Raises:
        ConfigError: not an integer in ``0..n_frames - 1`` (the message names ``name``).
    """
    if index is None:
        return None
    i = int(index)
    if i != index or not 0 <= i < n_frames:
        raise ConfigError(
            f"{name}={index!r} is outside the sequence's {n_frames} frames; frames are 0-based "
            f"(0..{n_frames - 1}), Info cfg files 1-based (read them with io.read_info_cfg); or leave "
            "ED/ES out to detect them from the volume curve"
        )
    return i


def check_frame_time(frame_time_ms: float | None) -> float | None:
    """The time between frames in ms, as a float; ``None`` (unknown: rates per frame) passes through.

    Raises:
        ConfigError: not a positive finite number.
    """
    if frame_time_ms is None:
        return None
    value = float(frame_time_ms)
    if not (np.isfinite(value) and value > 0):
        raise ConfigError(
            f"frame_time_ms={frame_time_ms!r} is not a time between frames; pass a positive number of "
            "milliseconds (1000 / frames per second), or None for rates per frame"
        )
    return value


def frame_indices(mask: np.ndarray) -> list[int]:
    """0-based indices (plain ints, for JSON) of the True frames of a (T,) bool ``mask``."""
    return [int(i) for i in np.flatnonzero(mask)]


def frames_text(frames: Iterable[int]) -> str:
    """0-based frame indices as library messages write them: ``frame(s) [1, 3] (0-based)``.

    The one format the CLI rewrites into the 1-based numbers of the Info cfg (``cli._cli_message``),
    so every warning that names frames reads the same to a person.
    """
    return f"frame(s) [{', '.join(str(int(f)) for f in frames)}] (0-based)"


def frame_boxes(labels: np.ndarray) -> list[tuple[slice, slice] | None]:
    """Per frame of a (T, H, W) label map, the box (``core.boxes.Box``: row and column slices) of its
    non-background pixels; None for an empty frame.

    One pass over the full frames (maxima over rows and columns, no large temporaries): the
    measures then work inside these much smaller windows.
    """
    rows_max = labels.max(axis=2)
    cols_max = labels.max(axis=1)
    boxes: list[tuple[slice, slice] | None] = []
    for t in range(labels.shape[0]):
        rows = np.flatnonzero(rows_max[t])
        if rows.size == 0:
            boxes.append(None)
            continue
        cols = np.flatnonzero(cols_max[t])
        boxes.append((slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)))
    return boxes
