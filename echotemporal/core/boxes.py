"""Boxes in 2D arrays: (row slice, column slice) pairs, their union, growth and relative position.

The per-frame measures and clean-ups work inside boxes around the structures they look at; these
are the few operations on such boxes that several modules share.
"""

from __future__ import annotations

__all__ = ["Box", "union", "grow", "within"]

#: (row, column) slices of a box in an (h, w) array; starts included, stops excluded.
Box = tuple[slice, slice]


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
