"""Boxes in 2D arrays: (row slice, column slice) pairs, their union, growth and relative position.

The per-frame measures and clean-ups work inside boxes around the structures they look at; these
are the few operations on such boxes that several modules share.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Box", "HEART_MARGIN_PX", "union", "grow", "within", "mask_box", "heart_mask"]

#: (row, column) slices of a box in an (h, w) array; starts included, stops excluded.
Box = tuple[slice, slice]

#: Pixels kept around the heart when cropping for measurement (hinge and border criteria look 1-2 px out).
HEART_MARGIN_PX = 4


def union(a: Box | None, b: Box | None) -> Box | None:
    """The smallest box holding ``a`` and ``b``; one of them if the other is None."""
    if a is None or b is None:
        return a if b is None else b
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
    )


def grow(box: Box, margin: tuple[int, int], shape: tuple[int, ...]) -> Box:
    """``box`` widened by ``margin`` (rows, cols) pixels on every side, clipped to the (..., h, w) ``shape``."""
    return tuple(
        slice(max(part.start - m, 0), min(part.stop + m, size)) for part, m, size in zip(box, margin, shape[-2:])
    )


def within(inner: Box, outer: Box) -> Box:
    """Slices of the box ``inner`` relative to the box ``outer`` that contains it."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))


def mask_box(mask: np.ndarray, margin: int = 0) -> Box | None:
    """Box of the non-zero pixels of an (h, w) mask, grown by ``margin`` and clipped; None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    return grow(box, (margin, margin), mask.shape) if margin else box


def heart_mask(labels: np.ndarray) -> np.ndarray:
    """LV or MYO pixels (bool, same shape) of uint8 CAMUS labels, in one pass (uint8 wrap-around sends 0 to 255)."""
    return (labels - np.uint8(1)) < 2
