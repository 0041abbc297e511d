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


def largest_component(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> the largest in-plane 4-connected component of each frame."""
    rows, cols = heart_box(mask, margin=0)
    crop = mask[:, rows, cols]
    lab, n = ndimage.label(crop, structure=INPLANE)
    if n <= int(crop.reshape(len(crop), -1).any(axis=1).sum()):
        return mask  # at most one component per frame: the usual case, no relabelling needed
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    frame = np.array([sl[0].start for sl in ndimage.find_objects(lab)])
    # Sort by (frame, size): the last component of each frame's run is its largest.
    order = np.lexsort((sizes, frame))
    last = np.r_[frame[order][1:] != frame[order][:-1], True]
    keep = np.zeros(n + 1, dtype=bool)
    keep[order[last] + 1] = True
    out = np.zeros_like(mask)
    out[:, rows, cols] = keep[lab]
    return out


def hole_mask(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> per-frame holes: non-mask 4-connected regions not touching the frame border."""
    lab, n = ndimage.label(~mask, structure=INPLANE)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    border = border[border > 0]
    if border.size == n:
        return np.zeros_like(mask)  # every region reaches the border: no hole (the usual case)
    hole = np.ones(n + 1, dtype=bool)
    hole[0] = False
    hole[border] = False
    return hole[lab]


def cleanup_labels(out: np.ndarray, present: tuple[int, ...]) -> np.ndarray:
    """Largest component per label and hole filling, per frame, in place on ``out`` (T, h, w).

    Every label (LV, MYO, and LA when the input has it) keeps its largest component per frame;
    background enclosed by the remaining structures (holes, cut-off pieces) takes the nearest label.
    """
    structures = [Label.LV, Label.MYO] + [v for v in present if v not in (Label.BACKGROUND, Label.LV, Label.MYO)]
    for value in structures:
        mask = out == value
        kept = largest_component(mask)
        if kept is not mask:
            out[mask & ~kept] = Label.BACKGROUND
    filled = out != Label.BACKGROUND
    holes = hole_mask(filled)
    for t in np.flatnonzero(holes.reshape(len(out), -1).any(axis=1)):
        # Holes are enclosed: their nearest labelled pixels lie within a pixel or two of their box.
        rows, cols = heart_box(holes[t][None], margin=2)
        hole, frame = holes[t][rows, cols], out[t][rows, cols]
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
