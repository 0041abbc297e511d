"""Per-frame morphological clean-up of decoded label maps (largest component, hole filling)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echotemporal.labels import MODELLED_LABELS, Label
from echotemporal.pipeline.measurement import heart_box

__all__ = ["INPLANE", "MAX_MODELLED", "largest_component", "hole_mask", "cleanup_labels", "present_labels"]

#: In-plane 4-connectivity, no connection across frames: morphology stays per frame on a (T,H,W) stack.
INPLANE = np.zeros((3, 3, 3), dtype=bool)
INPLANE[1] = ndimage.generate_binary_structure(2, 1)


def _stray_components(mask: np.ndarray) -> tuple[tuple[slice, slice], dict[int, np.ndarray]]:
    """Per frame of a (T, H, W) bool mask, the pixels outside its largest 4-connected component.

    Returns the box the masks refer to and {frame: (h, w) bool stray pixels of the box} for the frames
    with more than one component (usually none: the common case costs one labelling).
    """
    rows, cols = heart_box(mask, margin=0)
    crop = mask[:, rows, cols]
    lab, n = ndimage.label(crop, structure=INPLANE)
    if n == 0:
        return (rows, cols), {}
    # No connection across frames and raster-order numbering: each frame's labels are one run that
    # follows the previous frame's, so the running maximum tells how many components each frame has.
    last = np.maximum.accumulate(lab.reshape(len(crop), -1).max(axis=1))
    first = np.concatenate([[0], last[:-1]])
    stray: dict[int, np.ndarray] = {}
    for t in np.flatnonzero(last - first > 1):
        sizes = np.bincount(lab[t].ravel(), minlength=last[t] + 1)[first[t] + 1 : last[t] + 1]
        # The largest component; of equal sizes, the last numbered one.
        biggest = first[t] + len(sizes) - int(np.argmax(sizes[::-1]))
        stray[int(t)] = (lab[t] != biggest) & crop[t]
    return (rows, cols), stray


def largest_component(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> the largest in-plane 4-connected component of each frame."""
    box, stray = _stray_components(mask)
    if not stray:
        return mask  # at most one component per frame: the usual case, no relabelling needed
    out = mask.copy()
    for t, pixels in stray.items():
        out[t, box[0], box[1]] &= ~pixels
    return out


def _frame_holes(mask: np.ndarray) -> dict[int, np.ndarray]:
    """{frame: (H, W) bool holes} for the frames of a (T, H, W) bool mask that have any (usually none).

    A hole is a non-mask 4-connected region that does not touch the frame border.
    """
    lab, n = ndimage.label(~mask, structure=INPLANE)
    open_ = np.zeros(n + 1, dtype=bool)
    open_[0] = True  # label 0: the mask itself
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        open_[edge.ravel()] = True
    if open_.all():
        return {}  # every region reaches the border: no hole (the usual case)
    # Raster-order numbering, no connection across frames: frame t holds the labels up to last[t].
    last = np.maximum.accumulate(lab.reshape(len(lab), -1).max(axis=1))
    frames = np.unique(np.searchsorted(last, np.flatnonzero(~open_), side="left"))
    return {int(t): ~open_[lab[t]] for t in frames}


def hole_mask(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> per-frame holes: non-mask 4-connected regions not touching the frame border."""
    out = np.zeros_like(mask)
    for t, holes in _frame_holes(mask).items():
        out[t] = holes
    return out


def cleanup_labels(out: np.ndarray, present: tuple[int, ...]) -> np.ndarray:
    """Largest component per label and hole filling, per frame, in place on ``out`` (T, h, w).

    Every label (LV, MYO, and LA when the input has it) keeps its largest component per frame;
    background enclosed by the remaining structures (holes, cut-off pieces) takes the nearest label.
    """
    structures = [Label.LV, Label.MYO] + [v for v in present if v not in (Label.BACKGROUND, Label.LV, Label.MYO)]
    for value in structures:
        (rows, cols), stray = _stray_components(out == value)
        for t, pixels in stray.items():
            out[t, rows, cols][pixels] = Label.BACKGROUND
    filled = out != Label.BACKGROUND
    for t, holes in sorted(_frame_holes(filled).items()):
        # Holes are enclosed: their nearest labelled pixels lie within a pixel or two of their box.
        rows, cols = heart_box(holes[None], margin=2)
        hole, frame = holes[rows, cols], out[t][rows, cols]
        _, (ri, ci) = ndimage.distance_transform_edt(frame == Label.BACKGROUND, return_indices=True)
        frame[hole] = frame[ri[hole], ci[hole]]
    return out


#: Labels above this are not modelled (LA): they are carried over from the input.
MAX_MODELLED = max(int(v) for v in MODELLED_LABELS)


def present_labels(labels: np.ndarray) -> tuple[int, ...]:
    """Non-background labels present anywhere in ``labels`` (validated CAMUS labels)."""
    rows, cols = heart_box(labels, margin=0)
    crop = labels[:, rows, cols]
    return tuple(int(v) for v in Label if v != Label.BACKGROUND and (crop == v).any())
