"""Temporal correction of a segmented sequence: the one path used by ``smooth``, ``batch`` and tests.

Method: Painchaud et al., "Echocardiography Segmentation With Enforced Temporal Consistency",
IEEE TMI 2022, with the changes of DESIGN.md §4.3: an exact minimal-change projection of each
attribute-regularized latent dim instead of gradient descent, Whittaker smoothing of the free dims,
un-alignment of class probabilities (not labels), carry-over of the left atrium, and verification of
the decoded masks with bounded tightening.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from echotemporal import __version__
from echotemporal.config import SmoothingConfig, config_to_dict
from echotemporal.errors import ConfigError, InputFileError, InvalidLabelsError
from echotemporal.export import sequence_stem
from echotemporal.labels import MODELLED_LABELS, Label, validate_labels

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps pandas/torch off the import path
    import pandas as pd

    from echotemporal.model import ShapeModel
    from echotemporal.temporal import AttributeThresholds

__all__ = [
    "METHODS",
    "SmoothingResult",
    "smooth_sequence",
    "smooth_file",
    "gaussian_smooth_labels",
    "default_output_path",
    "run_demo",
    "encode_sequence",
    "decode_sequence",
    "latent_tolerances",
]

METHODS: tuple[str, ...] = ("arvae", "gaussian", "none")

#: Pixels kept around the heart when cropping for measurement (hinge/border criteria look 1-2 px out).
_CROP_MARGIN_PX = 4
#: In-plane 4-connectivity, no connection across frames: morphology stays per frame on a (T,H,W) stack.
_INPLANE = np.zeros((3, 3, 3), dtype=bool)
_INPLANE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass
class SmoothingResult:
    """Output of :func:`smooth_sequence`.

    Attributes:
        labels: (T, H, W) uint8 corrected label map, same shape as the input.
        method: "arvae", "gaussian" or "none".
        frames: one row per frame: attributes, flags, validity, LV volume and strain, before and after.
        summary: JSON-able dict: clinical indices before/after, inconsistent/invalid frames
            before/after, rounds, residue, config, package version, weights sha256, seconds.
    """

    labels: np.ndarray
    method: str
    frames: pd.DataFrame
    summary: dict[str, Any]


# ----------------------------------------------------------------------------------------------
# measurement (before and after), cropped to the heart so that CAMUS-size frames stay cheap


@dataclass(frozen=True)
class _Shape:
    """Per-frame shape measures, arrays indexed like the sequence."""

    attributes: np.ndarray  # (T, K) in thresholds.names order, physical units
    flags: np.ndarray  # (T, K) bool
    criteria: np.ndarray  # (T, C) bool, True = satisfied
    valid: np.ndarray  # (T,) bool
    checked: bool = True  # False: validity not measured (criteria empty)

    def reversed(self) -> _Shape:
        return _Shape(
            self.attributes[::-1], self.flags[::-1], self.criteria[::-1], self.valid[::-1], self.checked
        )


@dataclass(frozen=True)
class _Clinical:
    volumes_ml: np.ndarray  # (T,)
    strain_percent: np.ndarray  # (T,)
    ed_frame: int | None
    es_frame: int | None
    edv_ml: float
    esv_ml: float
    ef_percent: float
    gls_percent: float

    def reversed(self) -> _Clinical:
        n = len(self.volumes_ml)
        flip = lambda i: None if i is None else n - 1 - int(i)  # noqa: E731
        return dataclasses.replace(
            self,
            volumes_ml=self.volumes_ml[::-1],
            strain_percent=self.strain_percent[::-1],
            ed_frame=flip(self.ed_frame),
            es_frame=flip(self.es_frame),
        )


def _heart_box(labels: np.ndarray, margin: int = _CROP_MARGIN_PX) -> tuple[slice, slice]:
    """Row/column slices of the bounding box of all non-background pixels over time, plus a margin."""
    h, w = labels.shape[-2:]
    footprint = labels.reshape(-1, h, w).any(axis=0)
    rows = np.flatnonzero(footprint.any(axis=1))
    if rows.size == 0:
        return slice(0, min(h, 2 * margin + 1)), slice(0, min(w, 2 * margin + 1))
    cols = np.flatnonzero(footprint.any(axis=0))
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)),
    )


def _attribute_order(names: tuple[str, ...]) -> np.ndarray:
    from echotemporal.attributes import ATTRIBUTE_NAMES

    missing = [n for n in names if n not in ATTRIBUTE_NAMES]
    if missing:
        raise ConfigError(
            f"thresholds name attribute(s) {', '.join(missing)} that echotemporal.attributes does not "
            f"measure ({', '.join(ATTRIBUTE_NAMES)}); regenerate the thresholds file"
        )
    return np.array([ATTRIBUTE_NAMES.index(n) for n in names])


def _measure_shape(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
    *,
    reference: tuple[np.ndarray, _Shape] | None = None,
    validity: bool = True,
) -> _Shape:
    """Attributes, consistency flags and (optionally) anatomical validity of every frame.

    Flags follow ``temporal.detect_inconsistent_frames``: an attribute that is NaN in a frame while
    measurable in others (a structure vanishing for a frame) is flagged there.

    Args:
        labels: (T, H, W) uint8.
        spacing_mm: (row_mm, col_mm).
        thresholds: detection thresholds (their name order is the column order).
        reference: (labels, measures) of another version of the sequence: frames identical to it
            reuse its per-frame attributes and criteria (only flags depend on the neighbours).
        validity: also run the anatomical criteria (the costly part); else criteria/valid are empty.
    """
    from echotemporal.anatomy import check_validity
    from echotemporal.attributes import ATTRIBUTE_NAMES, compute_attributes
    from echotemporal.temporal import detect_inconsistent_frames

    n = len(labels)
    todo = np.ones(n, dtype=bool)
    attrs = np.full((n, len(thresholds.names)), np.nan)
    ref_shape = None
    if reference is not None:
        ref_labels, ref_shape = reference
        todo = (labels != ref_labels).reshape(n, -1).any(axis=1)
        attrs[~todo] = ref_shape.attributes[~todo]
    crop = None
    if todo.any():
        sub = labels[todo] if not todo.all() else labels
        rows, cols = _heart_box(sub)
        crop = np.ascontiguousarray(sub[:, rows, cols])
        raw = np.array(compute_attributes(crop, spacing_mm), dtype=np.float64).reshape(len(crop), -1)
        # Centroids are "mm from the image origin": undo the crop offset.
        raw[:, ATTRIBUTE_NAMES.index("epi_center_x_mm")] += cols.start * spacing_mm[1]
        raw[:, ATTRIBUTE_NAMES.index("epi_center_y_mm")] += rows.start * spacing_mm[0]
        attrs[todo] = raw[:, _attribute_order(tuple(thresholds.names))]
    flags = np.asarray(detect_inconsistent_frames(attrs, thresholds), dtype=bool)
    if not validity:
        return _Shape(attrs, flags, np.ones((n, 0), dtype=bool), np.ones(n, dtype=bool), checked=False)
    parts = {}
    if crop is not None:
        parts["new"] = np.asarray(check_validity(crop, spacing_mm), dtype=bool).reshape(len(crop), -1)
    if ref_shape is not None and (~todo).any():
        if not ref_shape.checked:
            raise RuntimeError("reference measures without validity")  # internal misuse
        parts["ref"] = ref_shape.criteria
    n_crit = next(iter(parts.values())).shape[1]
    criteria = np.ones((n, n_crit), dtype=bool)
    if "new" in parts:
        criteria[todo] = parts["new"]
    if "ref" in parts:
        criteria[~todo] = parts["ref"][~todo]
    return _Shape(attrs, flags, criteria, criteria.all(axis=1))


def _with_validity(
    labels: np.ndarray, shape: _Shape, spacing_mm: tuple[float, float], reference: tuple[np.ndarray, _Shape]
) -> _Shape:
    """Add the anatomical criteria to measures taken with ``validity=False`` (reusing unchanged frames)."""
    from echotemporal.anatomy import check_validity

    ref_labels, ref_shape = reference
    n = len(labels)
    changed = (labels != ref_labels).reshape(n, -1).any(axis=1)
    criteria = ref_shape.criteria.copy()
    if changed.any():
        sub = labels[changed] if not changed.all() else labels
        rows, cols = _heart_box(sub)
        criteria[changed] = np.asarray(
            check_validity(np.ascontiguousarray(sub[:, rows, cols]), spacing_mm), dtype=bool
        ).reshape(len(sub), -1)
    return _Shape(shape.attributes, shape.flags, criteria, criteria.all(axis=1))


def _measure_clinical(
    labels: np.ndarray, spacing_mm: tuple[float, float], ed_frame: int | None, es_frame: int | None
) -> _Clinical:
    from echotemporal.clinical import clinical_indices

    rows, cols = _heart_box(labels)
    ci = clinical_indices(np.ascontiguousarray(labels[:, rows, cols]), spacing_mm, ed_frame=ed_frame, es_frame=es_frame)
    return _Clinical(
        volumes_ml=np.asarray(ci.volumes_ml, dtype=np.float64),
        strain_percent=np.asarray(ci.strain_percent, dtype=np.float64),
        ed_frame=None if ci.ed_frame is None else int(ci.ed_frame),
        es_frame=None if ci.es_frame is None else int(ci.es_frame),
        edv_ml=float(ci.edv_ml),
        esv_ml=float(ci.esv_ml),
        ef_percent=float(ci.ef_percent),
        gls_percent=float(ci.gls_percent),
    )


# ----------------------------------------------------------------------------------------------
# methods


def gaussian_smooth_labels(labels: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Temporal Gaussian filter of one-hot label maps, then argmax (the reference's baseline).

    Args:
        labels: (T, H, W) uint8 label map.
        sigma_frames: temporal standard deviation in frames (DESIGN.md: 0.05·T).

    Returns:
        (T, H, W) uint8 smoothed label map.
    """
    labels = np.asarray(labels)
    if sigma_frames <= 0 or len(labels) < 2:
        return labels.copy()
    rows, cols = _heart_box(labels, margin=1)  # outside the heart everything stays background
    crop = labels[:, rows, cols]
    n_classes = int(crop.max()) + 1
    onehot = (crop[None] == np.arange(n_classes, dtype=labels.dtype)[:, None, None, None]).astype(np.float32)
    smoothed = ndimage.gaussian_filter1d(onehot, sigma_frames, axis=1, mode="nearest")
    out = np.zeros_like(labels)
    out[:, rows, cols] = smoothed.argmax(axis=0).astype(labels.dtype)
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> the largest in-plane 4-connected component of each frame."""
    rows, cols = _heart_box(mask, margin=0)
    lab, n = ndimage.label(mask[:, rows, cols], structure=_INPLANE)
    if n <= int(mask.reshape(len(mask), -1).any(axis=1).sum()):
        return mask  # at most one component per frame: the usual case, no relabelling needed
    full = np.zeros(mask.shape, dtype=lab.dtype)
    full[:, rows, cols] = lab
    lab = full
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    frame = np.array([sl[0].start for sl in ndimage.find_objects(lab)])
    # Sort by (frame, size): the last component of each frame's run is its largest.
    order = np.lexsort((sizes, frame))
    last = np.r_[frame[order][1:] != frame[order][:-1], True]
    keep = np.zeros(n + 1, dtype=bool)
    keep[order[last] + 1] = True
    return keep[lab]


def _holes(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> per-frame holes: non-mask 4-connected regions not touching the frame border."""
    lab, n = ndimage.label(~mask, structure=_INPLANE)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    border = border[border > 0]
    if border.size == n:
        return np.zeros_like(mask)  # every region reaches the border: no hole (the usual case)
    hole = np.ones(n + 1, dtype=bool)
    hole[0] = False
    hole[border] = False
    return hole[lab]


def _cleanup(out: np.ndarray, present: tuple[int, ...]) -> np.ndarray:
    """Largest component per label and hole filling, per frame, in place on ``out`` (T, h, w).

    Every label (LV, MYO, and LA when the input has it) keeps its largest component per frame;
    background enclosed by the remaining structures (holes, cut-off pieces) takes the nearest label.
    """
    structures = [Label.LV, Label.MYO] + [v for v in present if v not in (Label.BACKGROUND, Label.LV, Label.MYO)]
    for value in structures:
        mask = out == value
        kept = _largest_component(mask)
        if kept is not mask:
            out[mask & ~kept] = Label.BACKGROUND
    filled = out != Label.BACKGROUND
    holes = _holes(filled)
    for t in np.flatnonzero(holes.reshape(len(out), -1).any(axis=1)):
        # Holes are enclosed: their nearest labelled pixels lie within a pixel or two of their box.
        rows, cols = _heart_box(holes[t][None], margin=2)
        hole, frame = holes[t][rows, cols], out[t][rows, cols]
        _, (ri, ci) = ndimage.distance_transform_edt(frame == Label.BACKGROUND, return_indices=True)
        frame[hole] = frame[ri[hole], ci[hole]]
    return out


def _modelled_mask(labels: np.ndarray) -> np.ndarray:
    """(T, H, W) bool, True where the label is one the shape model knows (lookup table: fast)."""
    lut = np.zeros(256, dtype=bool)
    lut[[int(v) for v in MODELLED_LABELS]] = True
    return lut[labels]


def _present_labels(labels: np.ndarray) -> tuple[int, ...]:
    """Non-background labels present anywhere in ``labels`` (validated CAMUS labels)."""
    rows, cols = _heart_box(labels, margin=0)
    crop = labels[:, rows, cols]
    return tuple(int(v) for v in Label if v != Label.BACKGROUND and (crop == v).any())


def _alignment_config(model: Any) -> Any:
    """The alignment the model was trained with (stored in its checkpoint), on the model's grid."""
    from echotemporal.config import AlignmentConfig, config_from_dict

    cfg = getattr(model, "alignment_config", None)
    if cfg is None:
        stored = (getattr(model, "checkpoint", None) or {}).get("alignment_config")
        cfg = config_from_dict(AlignmentConfig, stored, "model checkpoint") if stored else AlignmentConfig()
    grid = int(getattr(getattr(model, "config", None), "grid_size", cfg.grid_size))
    return dataclasses.replace(cfg, grid_size=grid)


@dataclass
class _ArvaeOutcome:
    labels: np.ndarray
    shape: _Shape
    rounds: int
    tolerances: np.ndarray  # (K,) latent tolerances of the last round, thresholds order
    kept: np.ndarray  # (T,) bool, input frames kept unchanged


def encode_sequence(
    labels: np.ndarray, spacing_mm: tuple[float, float], model: ShapeModel
) -> tuple[np.ndarray, Any]:
    """Align a sequence on the model grid and encode every frame (DESIGN.md §4.2, §4.3.1).

    Args:
        labels: (T, H, W) uint8 CAMUS labels; LA and other unmodelled labels count as background.
        spacing_mm: (row_mm, col_mm).
        model: the ShapeModel.

    Returns:
        (latents (T, D) float64 posterior means, the sequence's alignment).
    """
    from echotemporal import alignment as alignment_module

    alignment = alignment_module.fit_alignment(labels, spacing_mm, config=_alignment_config(model))
    grid = alignment_module.to_grid(np.where(_modelled_mask(labels), labels, 0).astype(np.uint8), alignment)
    return np.asarray(model.encode(grid), dtype=np.float64), alignment


#: A grid change below this cannot flip the argmax of residual decoding (see _SequenceDecoder).
_NO_FLIP = 1.0 / 6.0


def _native_sampler(alignment: Any, box: tuple[slice, slice]) -> Any:
    """grid_sample coordinates (1, h, w, 2) of the native pixels of ``box`` on the model grid.

    Same transform as ``alignment`` documents: native p = centre + R·u, grid (i, j) = u/scale + (G−1)/2.
    """
    import torch

    rows = np.arange(box[0].start, box[0].stop, dtype=np.float64) * alignment.spacing_mm[0]
    cols = np.arange(box[1].start, box[1].stop, dtype=np.float64) * alignment.spacing_mm[1]
    p = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1) - np.asarray(alignment.center_mm)
    g = (p @ alignment.rotation_matrix) / alignment.scale_mm + (alignment.grid_size - 1) / 2.0
    norm = g[..., ::-1] / (alignment.grid_size - 1) * 2.0 - 1.0  # (x, y) in [-1, 1], align_corners=True
    return torch.from_numpy(np.ascontiguousarray(norm, dtype=np.float32))[None]


def _to_native(values: np.ndarray, grid: Any) -> np.ndarray:
    """Bilinear resampling of (n, C, G, G) grid values onto a native box; zero outside the grid."""
    import torch
    import torch.nn.functional as F

    src = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    out = F.grid_sample(src, grid.expand(len(src), -1, -1, -1), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.numpy()


def _grid_footprint_box(mask: np.ndarray, alignment: Any, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """Native box covering the grid pixels of a (G, G) bool mask (+1.5 grid px), or None."""
    from echotemporal.alignment import grid_to_native_coords

    if not mask.any():
        return None
    ii, jj = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    i0, i1, j0, j1 = ii[0] - 1.5, ii[-1] + 1.5, jj[0] - 1.5, jj[-1] + 1.5
    nat = grid_to_native_coords(alignment, np.array([[i0, j0], [i0, j1], [i1, j0], [i1, j1]], dtype=np.float64))
    r0, r1 = int(np.floor(nat[:, 0].min())), int(np.ceil(nat[:, 0].max())) + 1
    c0, c1 = int(np.floor(nat[:, 1].min())), int(np.ceil(nat[:, 1].max())) + 1
    r0, r1, c0, c1 = max(r0, 0), min(r1, shape[0]), max(c0, 0), min(c1, shape[1])
    return None if r1 <= r0 or c1 <= c0 else (slice(r0, r1), slice(c0, c1))


def _union_box(a: tuple[slice, slice] | None, b: tuple[slice, slice] | None) -> tuple[slice, slice] | None:
    if a is None or b is None:
        return a if b is None else b
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
    )


class _SequenceDecoder:
    """Latents -> native labels for one sequence, with the input's unmodelled labels carried over.

    ``residual`` decoding (default) applies only the decoded change to the input. With P = decode(z),
    P⁰ = decode(z⁰) (the input's own reconstruction) and Y the input one-hot (LA as background), per
    native pixel::

        Q = P⁰ + (P − P⁰) + w·(Y − P⁰),   w = clip(1 − 2·max_c |P_c − P⁰_c|, 0, 1),   labels = argmax Q

    Where the correction leaves the shape alone (P = P⁰), Q = Y: the input, with the detail the model
    cannot represent; where the shape moved (|P − P⁰| ≥ ½), Q = P: the decoded shape, with no ghost of
    the old border. If max |P − P⁰| < 1/6 over a frame, argmax Q = Y exactly, so that frame is
    returned bit-identical without resampling. Anatomically invalid input frames (holes, blobs, a
    broken wall) replace their residual Y − P⁰ by the mean of their nearest valid neighbours': the
    glitch, which the model cannot represent, is dropped; the neighbours' detail is kept.

    ``full`` decoding returns argmax P for every frame (Painchaud et al. 2022).
    """

    def __init__(
        self,
        labels: np.ndarray,
        alignment: Any,
        model: Any,
        z0: np.ndarray | None,
        *,
        cleanup: bool = True,
        borrow: np.ndarray | None = None,
        sigma: float = 0.0,
    ):
        self.labels, self.alignment, self.model, self.cleanup = labels, alignment, model, cleanup
        self.sigma = float(sigma)
        self.present = _present_labels(labels)
        self.z0 = None if z0 is None else np.asarray(z0, dtype=np.float32)
        self.p0 = None if z0 is None else np.asarray(model.decode(self.z0), dtype=np.float32)
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        n = len(labels)
        self.borrow = np.zeros(n, dtype=bool) if borrow is None or self.p0 is None else np.asarray(borrow, dtype=bool)
        good = np.flatnonzero(~self.borrow)
        self.sources: dict[int, list[int]] = {}
        for t in np.flatnonzero(self.borrow):
            before, after = good[good < t], good[good > t]
            self.sources[int(t)] = ([int(before[-1])] if before.size else []) + ([int(after[0])] if after.size else [])
        self.heart_box = _heart_box(labels, margin=2)
        # Carried-over labels (LA) of a glitched frame come from its neighbours too: a shifted frame
        # has its LA shifted with it, and the LA must meet the corrected LV, not the glitch.
        self.carry = labels
        unmodelled = [v for v in self.present if v not in {int(m) for m in MODELLED_LABELS}]
        if unmodelled and self.sources:
            self.carry = labels.copy()
            for t, src in self.sources.items():
                if not src:
                    continue
                frame = np.zeros(labels.shape[1:], dtype=labels.dtype)
                for value in unmodelled:
                    votes = np.mean([labels[s] == value for s in src], axis=0)
                    frame[votes >= 0.5] = value
                self.carry[t] = frame

    def _decode(self, latents: np.ndarray) -> np.ndarray:
        """decode(latents) (T, C, G, G), re-running the decoder only on frames whose latent changed."""
        z = np.asarray(latents, dtype=np.float32)
        if self._last is None:
            if self.z0 is not None and self.p0 is not None:
                self._last = (self.z0, self.p0)
            else:
                self._last = (z, np.asarray(self.model.decode(z), dtype=np.float32))
                return self._last[1]
        z_prev, p_prev = self._last
        rows = np.flatnonzero((z != z_prev).any(axis=1))
        probs = p_prev.copy()
        if rows.size:
            probs[rows] = np.asarray(self.model.decode(z[rows]), dtype=np.float32)
        self._last = (z, probs)
        return probs

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        probs = self._decode(latents)
        if self.p0 is None:
            out = self._full(probs)
            frames = np.ones(len(out), dtype=bool)
        else:
            out, frames = self._residual(probs)
        carry = (out == Label.BACKGROUND) & ~_modelled_mask(self.carry)
        carry[~frames] = False
        out[carry] = self.carry[carry]
        if self.cleanup and frames.any():
            sub = out[frames]
            rows, cols = _heart_box(sub, margin=2)
            part = np.ascontiguousarray(sub[:, rows, cols])
            sub[:, rows, cols] = _cleanup(part, self.present)
            out[frames] = sub
        return out

    def _full(self, probs: np.ndarray) -> np.ndarray:
        from echotemporal import alignment as alignment_module

        to_labels = getattr(alignment_module, "probabilities_to_native_labels", None)
        if to_labels is not None:  # argmax inside the heart's box: no (T, C, H, W) array on huge images
            return np.asarray(to_labels(probs, self.alignment), dtype=np.uint8)
        native = alignment_module.probabilities_to_native(probs, self.alignment)
        return np.asarray(native).argmax(axis=1).astype(np.uint8)

    def _residual(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, p0 = self.labels, self.p0
        n_frames = len(labels)
        diff = probs - p0
        moved = np.abs(diff).max(axis=1)  # (T, G, G)
        todo = (moved.reshape(n_frames, -1).max(axis=1) >= _NO_FLIP) | self.borrow
        if self.sigma > 0:
            todo[:] = True  # temporal smoothing of the residual touches every frame
        out = labels.copy()
        if not todo.any():
            return out, todo
        need = todo.copy()
        for t, src in self.sources.items():
            if todo[t]:
                need[src] = True
        shape = labels.shape[1:]
        foreground = (1.0 - p0[need, 0]).max(axis=0) > 0.01
        foreground |= (1.0 - probs[todo, 0]).max(axis=0) > 0.01
        box = _union_box(self.heart_box, _grid_footprint_box(foreground, self.alignment, shape)) or self.heart_box
        grid = _native_sampler(self.alignment, box)
        idx = np.flatnonzero(need)
        pos = {int(t): k for k, t in enumerate(idx)}
        p0n = _to_native(p0[idx], grid)  # (n, C, h, w)
        # Residual of each needed frame: the input's detail the model does not reproduce.
        crop = labels[idx][:, box[0], box[1]]
        n_classes = p0.shape[1]
        residual = (crop[:, None] == np.arange(n_classes, dtype=crop.dtype)[None, :, None, None]).astype(np.float32)
        residual[:, 0] += ~np.isin(crop, np.arange(n_classes, dtype=crop.dtype))  # unmodelled (LA) = background
        residual -= p0n
        if self.sigma > 0:
            # Normalized convolution in time: glitched frames lend nothing, every frame gets the
            # weighted mean of its neighbours' detail (annotation jitter averages out).
            weight = (~self.borrow).astype(np.float32)
            num = ndimage.gaussian_filter1d(residual * weight[:, None, None, None], self.sigma, axis=0, mode="nearest")
            den = ndimage.gaussian_filter1d(weight, self.sigma, mode="nearest")
            residual = num / np.maximum(den, 1e-6)[:, None, None, None]
            residual[den < 1e-6] = 0.0
        todo_idx = np.flatnonzero(todo)
        dn = _to_native(diff[todo_idx], grid)
        for k, t in enumerate(todo_idx):
            d = dn[k]
            q = p0n[pos[int(t)]] + d
            if self.borrow[t] and self.sigma <= 0:
                # The neighbours' residual sits on the neighbours' borders, which the corrected
                # shape interpolates: it applies in full.
                src = self.sources[int(t)]
                if src:
                    q += np.mean([residual[pos[s]] for s in src], axis=0)
            elif self.borrow[t]:
                q += residual[pos[int(t)]]
            else:
                w = np.clip(1.0 - 2.0 * np.abs(d).max(axis=0), 0.0, 1.0)
                q += w * residual[pos[int(t)]]
            out[t, box[0], box[1]] = q.argmax(axis=0).astype(np.uint8)
        return out, todo


def decode_sequence(
    latents: np.ndarray,
    alignment: Any,
    labels: np.ndarray,
    model: ShapeModel,
    *,
    cleanup: bool = True,
    input_latents: np.ndarray | None = None,
    borrow: np.ndarray | None = None,
) -> np.ndarray:
    """Decode latents back to native labels, carrying the unmodelled labels over (DESIGN.md §4.3.3).

    Class probabilities (not labels) are resampled to the native grid and argmaxed; wherever the
    result is background, labels the model does not know (LA) are copied from ``labels``.

    Args:
        latents: (T, D) latents.
        alignment: from :func:`encode_sequence`.
        labels: (T, H, W) uint8 input sequence (source of the carried-over labels).
        model: the ShapeModel.
        cleanup: keep the largest component of each label and fill holes, per decoded frame.
        input_latents: (T, D) encoding of ``labels``; given, the decoding is residual (only the change
            decode(latents) − decode(input_latents) is applied to the input; see _SequenceDecoder),
            else every frame is decode(latents).
        borrow: (T,) bool, residual decoding only: frames (anatomically invalid) whose own detail is
            replaced by their valid neighbours'.

    Returns:
        (T, H, W) uint8 labels.
    """
    return _SequenceDecoder(labels, alignment, model, input_latents, cleanup=cleanup, borrow=borrow)(latents)


def latent_tolerances(model: ShapeModel, thresholds: AttributeThresholds) -> tuple[np.ndarray, np.ndarray]:
    """Latent dim and tolerance of each threshold attribute: ``tol_k = tau_k·(u_hi − u_lo)``.

    Returns:
        (dims (K,) int: latent dim of ``thresholds.names[k]``, tolerances (K,) in latent units).
    """
    model_names = tuple(model.attribute_names)
    missing = [n for n in thresholds.names if n not in model_names]
    if missing:
        raise ConfigError(
            f"thresholds attribute(s) {', '.join(missing)} have no latent dim in the model "
            f"({', '.join(model_names)}); use thresholds and weights from the same release"
        )
    bounds = np.asarray(model.latent_bounds, dtype=np.float64).reshape(len(model_names), 2)
    # The orders should agree; do not assume it.
    dims = np.array([model_names.index(n) for n in thresholds.names])
    return dims, np.asarray(thresholds.tau, dtype=np.float64) * np.abs(bounds[dims, 1] - bounds[dims, 0])


def _smooth_arvae(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    model: Any,
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    before: _Shape,
) -> _ArvaeOutcome:
    """DESIGN.md §4.3: align, encode, project/smooth latents, decode, un-align, verify, tighten."""
    from echotemporal.temporal import project_consistent, whittaker_smooth

    if config.decoding not in ("residual", "full"):
        raise ConfigError(f"decoding={config.decoding!r} is not 'residual' or 'full'; pick one of them")
    z0, alignment = encode_sequence(labels, spacing_mm, model)
    residual = config.decoding == "residual"
    # Glitched frames (invalid, or flagged) cannot lend their own residual: it holds the glitch
    # that the model's reconstruction only partly reproduces. They borrow their neighbours'.
    glitched = ~before.valid | before.flags.any(axis=1)
    decode = _SequenceDecoder(
        labels, alignment, model, z0 if residual else None, cleanup=config.cleanup, borrow=glitched,
        sigma=config.residual_sigma_frames,
    )
    dim_of, tol = latent_tolerances(model, thresholds)
    n_attr = len(model.attribute_names)

    z_fixed = z0.copy()
    if z0.shape[1] > n_attr and config.whittaker_lambda > 0:
        z_fixed[:, n_attr:] = whittaker_smooth(z0[:, n_attr:], config.whittaker_lambda)
    keep = np.zeros(len(labels), dtype=bool)
    if config.keep_unflagged_frames:
        keep = ~before.flags.any(axis=1) & before.valid

    projected: dict[tuple[int, float], np.ndarray] = {}
    out, shape, rounds = labels, before, 0
    for rounds in range(1, max(int(config.max_rounds), 1) + 1):
        z = z_fixed.copy()
        for k, d in enumerate(dim_of):
            key = (int(d), float(tol[k]))
            if key not in projected:
                projected[key] = np.asarray(project_consistent(z0[:, d], float(tol[k])), dtype=np.float64)
            z[:, d] = projected[key]
        out = decode(z)
        if keep.any():
            out[keep] = labels[keep]
        # Rounds only need the flags; the costly validity check runs once, on the final masks.
        shape = _measure_shape(out, spacing_mm, thresholds, reference=(labels, before), validity=False)
        still = shape.flags.any(axis=0)
        if not still.any() or rounds >= config.max_rounds:
            break
        tol = np.where(still, tol * config.tighten_factor, tol)
    shape = _with_validity(out, shape, spacing_mm, (labels, before))
    return _ArvaeOutcome(out, shape, rounds, tol, keep)


# ----------------------------------------------------------------------------------------------
# public entry points


def _check_inputs(labels: np.ndarray, spacing_mm: Any) -> tuple[np.ndarray, tuple[float, float]]:
    arr = np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise InvalidLabelsError(
            f"labels of shape {np.shape(labels)}: expected a (T, H, W) sequence or an (H, W) frame"
        )
    if not (arr.dtype == np.uint8 and int(arr.max()) <= max(Label)):  # fast path: already valid uint8
        arr = validate_labels(arr, "labels")
    try:
        spacing = tuple(float(s) for s in spacing_mm)
    except TypeError as exc:
        raise ConfigError(f"spacing_mm={spacing_mm!r}: expected (row_mm, col_mm)") from exc
    if len(spacing) != 2 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ConfigError(f"spacing_mm={spacing_mm!r}: expected two positive numbers (row_mm, col_mm)")
    return arr, (spacing[0], spacing[1])


def _check_frame(value: int | None, n_frames: int, what: str) -> int | None:
    if value is None:
        return None
    v = int(value)
    if not 0 <= v < n_frames:
        raise ConfigError(
            f"{what}={value} (0-based) is outside the sequence's {n_frames} frames; check the Info cfg "
            "or pass no ED/ES to detect them from the volume curve"
        )
    return v


def _frame_list(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def _num(x: Any) -> float | None:
    """Python float for JSON; NaN stays NaN (export writes it as null)."""
    return None if x is None else float(x)


def smooth_sequence(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    model: ShapeModel | None = None,
    config: SmoothingConfig = SmoothingConfig(),
    thresholds: AttributeThresholds | None = None,
    ed_frame: int | None = None,
    es_frame: int | None = None,
) -> SmoothingResult:
    """Correct the temporal and anatomical inconsistencies of one segmented sequence.

    Args:
        labels: (T, H, W) uint8 label map (0 bg, 1 LV, 2 MYO, 3 LA), frame 0 first, apex towards
            row 0; an (H, W) frame is treated as T = 1.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        model: trained ShapeModel for ``method="arvae"``; ``None`` loads the shipped default.
        config: smoothing settings; ``config.method`` picks "arvae", "gaussian" or "none".
        thresholds: consistency thresholds; ``None`` loads the packaged ones.
        ed_frame, es_frame: 0-based ED/ES (e.g. from the Info cfg). ``None`` detects them from each
            volume curve. ``es_frame < ed_frame`` means the sequence is stored ES→ED: it is reversed,
            processed and reversed back.

    Returns:
        SmoothingResult with (T, H, W) uint8 labels of the input's shape (T = 1 and T = 2 are
        returned unchanged: there is no interior frame to correct), a per-frame table and a summary.
    """
    start = time.perf_counter()
    if config.method not in METHODS:
        raise ConfigError(f"method={config.method!r} is not one of {', '.join(METHODS)}; pick one of them")
    arr, spacing = _check_inputs(labels, spacing_mm)
    n_frames = len(arr)
    ed = _check_frame(ed_frame, n_frames, "ed_frame")
    es = _check_frame(es_frame, n_frames, "es_frame")
    if thresholds is None:
        from echotemporal.temporal import load_thresholds

        thresholds = load_thresholds()
    reverse = ed is not None and es is not None and es < ed
    work = arr[::-1].copy() if reverse else arr
    if reverse:
        ed, es = n_frames - 1 - ed, n_frames - 1 - es  # type: ignore[operator]

    notes: list[str] = []
    if reverse:
        notes.append("stored ES->ED: reversed for processing and reversed back")
    before = _measure_shape(work, spacing, thresholds)
    clin_before = _measure_clinical(work, spacing, ed, es)
    rounds, tolerances, kept = 0, None, np.zeros(n_frames, dtype=bool)
    weights_sha = None
    method = config.method
    present = _present_labels(work)
    has_heart = Label.LV in present or Label.MYO in present
    if n_frames <= 2:
        out, after = work, before
        notes.append(f"{n_frames} frame(s): no interior frame, nothing to smooth; input returned unchanged")
    elif method == "none":
        out, after = work, before
    elif method == "gaussian":
        out = gaussian_smooth_labels(work, config.gaussian_sigma_fraction * n_frames)
        if config.keep_unflagged_frames:
            kept = ~before.flags.any(axis=1) & before.valid
            out[kept] = work[kept]
        after = _measure_shape(out, spacing, thresholds, reference=(work, before))
    elif not has_heart:
        warnings.warn("no LV or MYO in any frame: nothing the shape model can correct; input returned", stacklevel=2)
        notes.append("no LV or MYO in any frame; input returned unchanged")
        out, after = work, before
    else:
        if model is None:
            from echotemporal.pretrained import load_model

            model = load_model()
        weights_sha = getattr(model, "sha256", None)
        outcome = _smooth_arvae(work, spacing, model, config, thresholds, before)
        out, after, rounds, tolerances, kept = (
            outcome.labels,
            outcome.shape,
            outcome.rounds,
            outcome.tolerances,
            outcome.kept,
        )
    if model is not None and weights_sha is None and method == "arvae":
        weights_sha = getattr(model, "sha256", None)
    clin_after = clin_before if out is work else _measure_clinical(out, spacing, ed, es)

    if reverse:
        out = out[::-1]
        before, after = before.reversed(), after.reversed()
        clin_before, clin_after = clin_before.reversed(), clin_after.reversed()
        kept = kept[::-1]
    out = np.ascontiguousarray(out, dtype=np.uint8)
    if out is arr or np.shares_memory(out, arr):
        out = out.copy()
    if np.asarray(labels).ndim == 2:
        out = out[0]

    names = tuple(thresholds.names)
    frames = _frames_table(arr, out.reshape(arr.shape), names, before, after, clin_before, clin_after, kept)
    residue_attrs = {n: _frame_list(after.flags[:, k]) for k, n in enumerate(names) if after.flags[:, k].any()}
    summary: dict[str, Any] = {
        "method": method,
        "n_frames": n_frames,
        "image_shape": [int(s) for s in arr.shape[1:]],
        "spacing_mm": list(spacing),
        "ed_frame": clin_after.ed_frame,
        "es_frame": clin_after.es_frame,
        "ed_frame_before": clin_before.ed_frame,
        "es_frame_before": clin_before.es_frame,
        "ed_es_source": "given" if ed_frame is not None and es_frame is not None else "detected",
        "stored_es_to_ed": bool(reverse),
        "edv_ml_before": _num(clin_before.edv_ml),
        "edv_ml_after": _num(clin_after.edv_ml),
        "esv_ml_before": _num(clin_before.esv_ml),
        "esv_ml_after": _num(clin_after.esv_ml),
        "ef_percent_before": _num(clin_before.ef_percent),
        "ef_percent_after": _num(clin_after.ef_percent),
        "gls_percent_before": _num(clin_before.gls_percent),
        "gls_percent_after": _num(clin_after.gls_percent),
        "n_inconsistent_before": int(before.flags.any(axis=1).sum()),
        "n_inconsistent_after": int(after.flags.any(axis=1).sum()),
        "inconsistent_frames_before": _frame_list(before.flags.any(axis=1)),
        "inconsistent_frames_after": _frame_list(after.flags.any(axis=1)),
        "n_invalid_before": int((~before.valid).sum()),
        "n_invalid_after": int((~after.valid).sum()),
        "invalid_frames_before": _frame_list(~before.valid),
        "invalid_frames_after": _frame_list(~after.valid),
        "n_changed_frames": int(frames["changed"].sum()),
        "n_kept_input_frames": int(kept.sum()),
        "rounds": int(rounds),
        "latent_tolerances": None if tolerances is None else dict(zip(names, map(float, tolerances))),
        "residue": {
            "clean": not after.flags.any() and bool(after.valid.all()),
            "inconsistent_attributes": residue_attrs,
            "invalid_frames": _frame_list(~after.valid),
        },
        "notes": notes,
        "config": config_to_dict(config),
        "thresholds": {
            n: {"lo": float(lo), "hi": float(hi), "tau": float(tau)}
            for n, lo, hi, tau in zip(names, thresholds.lo, thresholds.hi, thresholds.tau)
        },
        "package_version": __version__,
        "weights_sha256": weights_sha,
        "seconds": time.perf_counter() - start,
    }
    return SmoothingResult(labels=out, method=method, frames=frames, summary=summary)


def _frames_table(
    before_labels: np.ndarray,
    after_labels: np.ndarray,
    names: tuple[str, ...],
    before: _Shape,
    after: _Shape,
    clin_before: _Clinical,
    clin_after: _Clinical,
    kept: np.ndarray,
) -> pd.DataFrame:
    import pandas as pd

    from echotemporal.anatomy import CRITERIA

    def failed(shape: _Shape) -> list[str]:
        crit = tuple(CRITERIA) if len(CRITERIA) == shape.criteria.shape[1] else tuple(
            f"criterion_{i}" for i in range(shape.criteria.shape[1])
        )
        return [";".join(c for c, ok in zip(crit, row) if not ok) for row in shape.criteria]

    n = len(before_labels)
    cols: dict[str, Any] = {"frame": np.arange(n)}
    for k, name in enumerate(names):
        cols[f"{name}_before"] = before.attributes[:, k]
        cols[f"{name}_after"] = after.attributes[:, k]
    for k, name in enumerate(names):
        cols[f"flag_{name}_before"] = before.flags[:, k]
        cols[f"flag_{name}_after"] = after.flags[:, k]
    cols["inconsistent_before"] = before.flags.any(axis=1)
    cols["inconsistent_after"] = after.flags.any(axis=1)
    cols["valid_before"] = before.valid
    cols["valid_after"] = after.valid
    cols["failed_criteria_before"] = failed(before)
    cols["failed_criteria_after"] = failed(after)
    cols["lv_volume_ml_before"] = clin_before.volumes_ml
    cols["lv_volume_ml_after"] = clin_after.volumes_ml
    cols["strain_percent_before"] = clin_before.strain_percent
    cols["strain_percent_after"] = clin_after.strain_percent
    cols["changed"] = (before_labels != after_labels).any(axis=(1, 2))
    cols["kept_input"] = kept
    return pd.DataFrame(cols)


# ----------------------------------------------------------------------------------------------
# files


def default_output_path(input_path: str | Path) -> Path:
    """``<stem>_smoothed.nii.gz`` beside the input."""
    input_path = Path(input_path)
    return input_path.with_name(f"{sequence_stem(input_path)}_smoothed.nii.gz")


def _resolve_model(model: Any, method: str) -> Any:
    if method != "arvae":
        return None
    if model is None or isinstance(model, (str, Path)):
        from echotemporal.pretrained import load_model

        return load_model(model)
    return model


def smooth_file(
    input_path: str | Path,
    output_path: str | Path | None = None,
    *,
    method: str | None = None,
    model: ShapeModel | str | Path | None = None,
    config: SmoothingConfig | None = None,
    info_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    plot: bool = False,
    overwrite: bool = False,
    thresholds: AttributeThresholds | None = None,
) -> SmoothingResult:
    """Read a sequence file, smooth it and write the corrected NIfTI, CSV, JSON (and figures).

    Args:
        input_path: segmented sequence (.nii.gz, .nii or .mhd).
        output_path: corrected sequence; default ``<stem>_smoothed.nii.gz`` beside the input.
        method: overrides ``config.method`` when given.
        model: a loaded ShapeModel, a weights path/name, or ``None`` for the shipped default
            (only loaded for ``arvae``).
        config: smoothing settings (default: the shipped defaults).
        info_path: CAMUS Info cfg giving ED/ES (1-based in the file); a sequence stored ES→ED is
            reversed, processed and reversed back.
        report_dir: folder for ``<out-stem>_frames.csv``, ``_summary.json``, ``_config.yaml`` and
            figures; default the output's folder.
        plot: also write the volume-curve and attribute figures (PNG).
        overwrite: replace existing outputs; otherwise OutputExistsError before any work is done.
        thresholds: consistency thresholds; ``None`` loads the packaged ones.

    Returns:
        The SmoothingResult; ``summary["outputs"]`` lists the files written.
    """
    from echotemporal import export
    from echotemporal.io import read_info_cfg, read_sequence

    start = time.perf_counter()
    input_path = Path(input_path)
    output_path = default_output_path(input_path) if output_path is None else Path(output_path)
    config = SmoothingConfig() if config is None else config
    if method is not None:
        config = dataclasses.replace(config, method=method)
    if config.method not in METHODS:
        raise ConfigError(f"method={config.method!r} is not one of {', '.join(METHODS)}; pick one of them")
    seq = read_sequence(input_path)
    if output_path.resolve() == input_path.resolve():
        raise InputFileError(f"{output_path}: the output would replace the input; choose another -o path")
    paths = export.output_paths(output_path, report_dir, plot=plot)
    if not overwrite:  # before any work: a refused run costs nothing
        export.check_no_overwrite(paths)
    ed = es = None
    if info_path is not None:
        info = read_info_cfg(info_path)
        n = len(seq.labels)
        for what, value in (("ED", info.ed_frame), ("ES", info.es_frame)):
            if value is not None and not 0 <= value < n:
                raise InputFileError(
                    f"{info_path}: {what} frame {value + 1} (1-based) is outside the {n} frames of "
                    f"{input_path}; pass the Info cfg of this sequence, or no --info to detect ED/ES"
                )
        if info.n_frames is not None and info.n_frames != n:
            warnings.warn(
                f"{info_path}: NbFrame={info.n_frames} but {input_path} has {n} frames; using ED/ES anyway",
                stacklevel=2,
            )
        ed, es = info.ed_frame, info.es_frame
    loaded = _resolve_model(model, config.method)
    result = smooth_sequence(
        seq.labels, seq.spacing_mm, model=loaded, config=config, thresholds=thresholds, ed_frame=ed, es_frame=es
    )
    if ed is not None and es is not None:
        result.summary["ed_es_source"] = "cfg"
    result.summary["input"] = str(input_path)
    result.summary["info_cfg"] = None if info_path is None else str(info_path)
    result.summary["outputs"] = {k: str(v) for k, v in paths.items()}
    result.summary["seconds_total"] = time.perf_counter() - start
    export.write_outputs(result, paths, seq.geometry, overwrite=overwrite, thresholds=thresholds)
    return result


def run_demo(
    out_dir: str | Path = "echotemporal-demo",
    *,
    seed: int = 0,
    overwrite: bool = False,
    model: ShapeModel | str | Path | None = None,
    view: str = "4CH",
) -> tuple[SmoothingResult, dict[str, Path]]:
    """Generate a corrupted phantom, smooth it with the shipped model, write outputs and figures.

    Args:
        out_dir: folder to write into (created).
        seed: phantom and corruption seed.
        overwrite: replace existing demo files.
        model: ShapeModel or weights path; ``None`` = shipped default.
        view: "2CH" or "4CH".

    Returns:
        The SmoothingResult and the written files by role (truth, corrupted, info, corruptions,
        smoothed, frames, summary, config, figures).
    """
    import json

    from echotemporal import export
    from echotemporal.io import InfoCfg, geometry_from_spacing, write_info_cfg, write_sequence
    from echotemporal.phantoms import corrupt_sequence, generate_sequence

    out_dir = Path(out_dir)
    stem = f"phantom_{view}_half_sequence"
    files = {
        "truth": out_dir / f"{stem}_truth.nii.gz",
        "corrupted": out_dir / f"{stem}.nii.gz",
        "info": out_dir / f"Info_{view}.cfg",
        "corruptions": out_dir / "corruptions.json",
    }
    smoothed = out_dir / f"{stem}_smoothed.nii.gz"
    if not overwrite:
        export.check_no_overwrite({**files, **export.output_paths(smoothed, None, plot=True)})
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    phantom = generate_sequence(rng, view=view)
    corrupted, corruptions = corrupt_sequence(
        phantom.labels, phantom.spacing_mm, rng, kinds=("contraction", "dilation", "shift_vertical", "blob"),
        n_corruptions=3,
    )
    geometry = geometry_from_spacing(phantom.spacing_mm, 3)
    write_sequence(files["truth"], phantom.labels, geometry, overwrite=overwrite)
    write_sequence(files["corrupted"], corrupted, geometry, overwrite=overwrite)
    info = InfoCfg(
        ed_frame=int(phantom.ed_frame), es_frame=int(phantom.es_frame), n_frames=len(phantom.labels),
        ef_percent=float(phantom.ef_percent), edv_ml=None, esv_ml=None, frame_rate_hz=None, sex=None,
        age=None, image_quality=None, extra={},
    )
    write_info_cfg(files["info"], info, overwrite=overwrite)
    files["corruptions"].write_text(
        json.dumps(
            {
                "seed": seed,
                "view": view,
                "true_ef_percent": float(phantom.ef_percent),
                "corruptions": [dataclasses.asdict(c) for c in corruptions],
            },
            indent=2,
        )
    )
    result = smooth_file(
        files["corrupted"], smoothed, model=model, info_path=files["info"], plot=True, overwrite=overwrite
    )
    written = {**files, **{k: Path(v) for k, v in result.summary["outputs"].items()}}
    return result, written
