"""Between native label maps and the shape model's latent space (DESIGN.md §4.2, §4.3).

Encoding aligns the sequence once (one similarity transform for all frames) and encodes every frame;
decoding resamples class probabilities (not labels) back to the native grid, carries the labels the
model does not know (LA) over from the input, and cleans the result up. Residual decoding (the
default) applies only the decoded change to the input: see :class:`SequenceDecoder`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from echotemporal.core.boxes import union
from echotemporal.core.errors import ConfigError
from echotemporal.core.labels import BACKGROUND
from echotemporal.correct.cleanup import MAX_MODELLED, cleanup_decoded
from echotemporal.measure.sequence import heart_box, present_labels

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.model.interface import TrainedShapeModel
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["alignment_config", "encode_sequence", "SequenceDecoder", "decode_sequence", "latent_tolerances"]


def alignment_config(model: Any) -> Any:
    """The alignment the model was trained with (stored in its checkpoint), on the model's grid."""
    from echotemporal.core.config import AlignmentConfig, config_from_dict

    cfg = getattr(model, "alignment_config", None)
    if cfg is None:
        stored = (getattr(model, "checkpoint", None) or {}).get("alignment_config")
        cfg = config_from_dict(AlignmentConfig, stored, "model checkpoint") if stored else AlignmentConfig()
    grid = int(getattr(getattr(model, "config", None), "grid_size", cfg.grid_size))
    return dataclasses.replace(cfg, grid_size=grid)


def encode_sequence(
    labels: np.ndarray, spacing_mm: tuple[float, float], model: TrainedShapeModel
) -> tuple[np.ndarray, Any]:
    """Align a sequence on the model grid and encode every frame (DESIGN.md §4.2, §4.3.1).

    Args:
        labels: (T, H, W) uint8 CAMUS labels; the model reads LA as background.
        spacing_mm: (row_mm, col_mm).
        model: the trained shape model.

    Returns:
        (latents (T, D) float64 posterior means, the sequence's alignment).
    """
    from echotemporal.model import alignment as alignment_module

    alignment = alignment_module.fit_alignment(labels, spacing_mm, config=alignment_config(model))
    # LA stays in the grid labels, exactly as in training; the model reads it as background.
    grid = alignment_module.to_grid(labels, alignment)
    return np.asarray(model.encode(grid), dtype=np.float64), alignment


#: A grid change below this cannot flip the argmax of residual decoding (see SequenceDecoder).
_NO_FLIP = 1.0 / 6.0
#: Glitched frames borrow the residual detail of clean frames at most this many frames away.
MAX_BORROW_FRAMES = 2


def _grid_footprint_box(mask: np.ndarray, alignment: Any) -> tuple[slice, slice] | None:
    """Native box covering the grid pixels of a (G, G) bool mask (+1.5 grid px), or None."""
    from echotemporal.model.alignment import native_box

    return native_box(alignment, mask, 1.5)


class SequenceDecoder:
    """Latents -> native labels for one sequence, with the input's unmodelled labels carried over.

    ``residual`` decoding (default) applies only the decoded change to the input. With P = decode(z),
    P⁰ = decode(z⁰) (the input's own reconstruction) and Y the input one-hot (LA as background), per
    native pixel::

        Q = P + w·(Y − P⁰),   w = clip(1 − 2·max_c |P_c − P⁰_c|, 0, 1),   labels = argmax Q

    Where the correction leaves the shape alone (P = P⁰), Q = Y: the input, with the detail the model
    cannot represent; where the shape moved (|P − P⁰| ≥ ½), Q = P: the decoded shape, with no ghost of
    the old border. If max |P − P⁰| < 1/6 over a frame, argmax Q = Y exactly, so that frame is
    returned bit-identical without resampling (and a frame whose latent is untouched is not even
    decoded). The same bound holds per native pixel for the bilinear blend of four grid pixels, so
    only pixels next to a grid pixel with ``max_c |P_c − P⁰_c| ≥ 1/6`` are interpolated: a band
    along the moved borders, not the heart's box.

    Glitched input frames (anatomically invalid or flagged) cannot lend their own residual Y − P⁰:
    it holds the glitch, which the model's reconstruction reproduces only in part. They take the
    mean residual, and the carried-over labels (LA), of their nearest clean neighbours, whose
    borders the corrected shape interpolates (where the neighbours agree and
    ``max_c |P_c − mean P⁰_c| < 1/2``, that is their shared label, without interpolation). A frame
    decoded before from the same latent is not decoded again.

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
        present: tuple[int, ...] | None = None,
    ):
        self.labels, self.alignment, self.model, self.cleanup = labels, alignment, model, cleanup
        self.present = present_labels(labels) if present is None else present
        n = len(labels)
        self.residual = z0 is not None
        self.z0 = None if z0 is None else np.asarray(z0, dtype=np.float32)
        self._p0: dict[int, np.ndarray] = {}  # decode(z0) per frame, decoded on demand
        self._p: dict[int, tuple[bytes, np.ndarray]] = {}  # decode(z) per frame, keyed by z's bytes
        self._done: dict[int, tuple[bytes, np.ndarray, np.ndarray]] = {}  # frame -> (z bytes, changed pixels, values)
        self._taps: Any = None  # alignment.BilinearTaps of the last box decoded
        self.borrow = np.zeros(n, dtype=bool) if borrow is None or not self.residual else np.asarray(borrow, dtype=bool)
        clean = np.flatnonzero(~self.borrow)
        self.sources: dict[int, list[int]] = {}
        for t in np.flatnonzero(self.borrow):
            # Only near neighbours lend their detail: a border drawn many frames away is elsewhere.
            # A frame with none decodes in full (its own detail is the glitch).
            near = clean[np.abs(clean - t) <= MAX_BORROW_FRAMES]
            before, after = near[near < t], near[near > t]
            self.sources[int(t)] = ([int(before[-1])] if before.size else []) + ([int(after[0])] if after.size else [])
        self.heart_box = heart_box(labels, margin=2)
        # A glitched frame's carried-over labels (LA) come from its clean neighbours too: a shifted
        # frame has its LA shifted with it, and the LA must meet the corrected LV, not the glitch.
        self.carry = labels
        unmodelled = [v for v in self.present if v > MAX_MODELLED]
        if unmodelled and any(self.sources.values()):
            self.carry = labels.copy()
            for t, src in self.sources.items():
                if src:
                    frame = np.zeros(labels.shape[1:], dtype=labels.dtype)
                    for value in unmodelled:
                        frame[np.mean([labels[s] == value for s in src], axis=0) >= 0.5] = value
                    self.carry[t] = frame

    def _decode_rows(self, z: np.ndarray, rows: np.ndarray, cache: dict, key: bool) -> None:
        """Decode the frames ``rows`` of ``z`` that ``cache`` lacks (batched)."""
        missing = [int(t) for t in rows if int(t) not in cache or (key and cache[int(t)][0] != z[t].tobytes())]
        if missing:
            probs = np.asarray(self.model.decode(z[missing]), dtype=np.float32)
            for t, p in zip(missing, probs):
                cache[t] = (z[t].tobytes(), p) if key else p

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        z = np.asarray(latents, dtype=np.float32)
        if not self.residual:
            out = self._full(z)
            self._finish(out, np.arange(len(z)))
            return out
        out = self.labels.copy()
        flat = out.reshape(len(out), -1)
        todo = np.flatnonzero(self._todo(z))
        # A frame decoded before from the same latent comes back the same (its sources are fixed).
        fresh = np.array([t for t in todo if self._done.get(int(t), (b"",))[0] != z[t].tobytes()], dtype=np.int64)
        if fresh.size:
            self._residual(z, fresh, out)
            self._finish(out, fresh)
            for t in fresh:
                changed = np.flatnonzero(flat[t] != self.labels[t].ravel())
                self._done[int(t)] = (z[t].tobytes(), changed, flat[t, changed])
        for t in np.setdiff1d(todo, fresh):
            _, changed, values = self._done[int(t)]
            flat[t, changed] = values
        return out

    def _finish(self, out: np.ndarray, frames: np.ndarray) -> None:
        """Carry the unmodelled labels over and clean up the decoded ``frames`` of ``out``, in place."""
        if not len(frames):
            return
        sub, source = out[frames], self.carry[frames]
        carry = (sub == BACKGROUND) & (source > MAX_MODELLED)
        sub[carry] = source[carry]
        if self.cleanup:
            rows, cols = heart_box(sub, margin=2)
            part = np.ascontiguousarray(sub[:, rows, cols])
            sub[:, rows, cols] = cleanup_decoded(part, self.alignment.spacing_mm, self.present)
        out[frames] = sub

    def _full(self, z: np.ndarray) -> np.ndarray:
        from echotemporal.model.alignment import probabilities_to_native_labels

        probs = np.asarray(self.model.decode(z), dtype=np.float32)
        # Argmax inside the heart's box: no (T, C, H, W) array on huge images.
        return probabilities_to_native_labels(probs, self.alignment)

    def _todo(self, z: np.ndarray) -> np.ndarray:
        """(T,) bool: frames whose residual decoding can differ from the input (or that borrow)."""
        moved = np.flatnonzero((z != self.z0).any(axis=1))
        self._decode_rows(z, moved, self._p, key=True)
        self._decode_rows(self.z0, moved, self._p0, key=False)
        todo = self.borrow.copy()
        for t in moved:
            todo[t] |= bool(np.abs(self._p[int(t)][1] - self._p0[int(t)]).max() >= _NO_FLIP)
        return todo

    def _residual(self, z: np.ndarray, frames: np.ndarray, out: np.ndarray) -> None:
        """Residual decoding of ``frames`` into ``out`` (class indices; LA reads as background).

        Only native pixels where the result can differ from the input (plain frames) or from the
        sources' shared label (borrowing frames) are interpolated (see the class docstring's bounds).
        """
        from echotemporal.model.alignment import bilinear_taps, probabilities_to_native_labels

        G = self.alignment.grid_size
        need = sorted({int(t) for t in frames} | {s for t in frames for s in self.sources.get(int(t), [])})
        self._decode_rows(self.z0, np.asarray(need), self._p0, key=False)
        moved = (z != self.z0).any(axis=1)
        p = {int(t): (self._p[int(t)][1] if moved[t] else self._p0[int(t)]).reshape(-1, G * G) for t in frames}
        p0 = {t: self._p0[t].reshape(-1, G * G) for t in need}
        plain = [int(t) for t in frames if not self.borrow[t]]
        borrowing = [int(t) for t in frames if self.borrow[t] and self.sources[int(t)]]
        for t in frames:
            if self.borrow[t] and not self.sources[int(t)]:  # nothing to borrow: the model's own shape
                out[t] = probabilities_to_native_labels(p[int(t)].reshape(1, -1, G, G), self.alignment)[0]
        # Grid pixels where the decoded change can flip a native label: |P − P⁰| ≥ 1/6 (plain), or
        # |P − mean P⁰_sources| ≥ 1/2 (borrowing, where the sources agree).
        flags = {t: np.abs(p[t] - p0[t]).max(axis=0) >= _NO_FLIP for t in plain}
        base = {t: np.mean([p0[s] for s in self.sources[t]], axis=0) for t in borrowing}
        flags.update({t: np.abs(p[t] - base[t]).max(axis=0) >= 0.5 for t in borrowing})
        if not flags:
            return
        footprint = np.logical_or.reduce(list(flags.values())).reshape(G, G)
        box = _grid_footprint_box(footprint, self.alignment)
        if borrowing or box is None:  # borrowing frames take their sources' labels over the heart's box
            box = union(self.heart_box, box) or self.heart_box
        if self._taps is None or self._taps.box != box:  # rounds usually share the box
            self._taps = bilinear_taps(self.alignment, box)
        taps = self._taps
        width = taps.shape[1]
        n_classes = next(iter(p.values())).shape[0]
        crop = self.labels[:, box[0], box[1]][need].reshape(len(need), -1)
        crop = np.where(crop < n_classes, crop, 0).astype(np.intp)  # unmodelled (LA) = background
        cls = {t: crop[k] for k, t in enumerate(need)}
        classes = np.arange(n_classes)

        if plain:
            t_idx, pix = np.nonzero(taps.touches(np.stack([flags[t] for t in plain])))
            pn = taps.blend(np.stack([p[t] for t in plain]), t_idx, pix)
            p0n = taps.blend(np.stack([p0[t] for t in plain]), t_idx, pix)
            y = np.stack([cls[t] for t in plain])[t_idx, pix]
            w = np.clip(1.0 - 2.0 * np.abs(pn - p0n).max(axis=1, keepdims=True), 0.0, 1.0)
            q = pn + w * ((y[:, None] == classes) - p0n)
            out[np.asarray(plain)[t_idx], pix // width + box[0].start, pix % width + box[1].start] = q.argmax(axis=1)
        for t in borrowing:
            # The neighbours' residual sits on the neighbours' borders, which the corrected shape
            # interpolates: it applies in full. Where the sources agree and the shape barely moved,
            # the result is their shared label.
            src = self.sources[t]
            label = cls[src[0]].copy()
            disagree = np.zeros(label.shape, dtype=bool)
            for s in src[1:]:
                disagree |= cls[s] != label
            pix = np.flatnonzero(taps.touches(flags[t][None])[0] | disagree)
            zero = np.zeros(len(pix), dtype=np.intp)
            q = taps.blend(p[t][None], zero, pix) - taps.blend(base[t][None], zero, pix)
            q += np.mean([cls[s][pix][:, None] == classes for s in src], axis=0)
            label[pix] = q.argmax(axis=1)
            out[t, box[0], box[1]] = label.reshape(taps.shape)


def decode_sequence(
    latents: np.ndarray,
    alignment: Any,
    labels: np.ndarray,
    model: TrainedShapeModel,
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
        model: the trained shape model.
        cleanup: keep the largest component of each label and fill holes, per decoded frame.
        input_latents: (T, D) encoding of ``labels``; given, the decoding is residual (only the change
            decode(latents) − decode(input_latents) is applied to the input; see SequenceDecoder),
            else every frame is decode(latents).
        borrow: (T,) bool, residual decoding only: frames (anatomically invalid) whose own detail is
            replaced by their valid neighbours'.

    Returns:
        (T, H, W) uint8 labels.
    """
    return SequenceDecoder(labels, alignment, model, input_latents, cleanup=cleanup, borrow=borrow)(latents)


def latent_tolerances(model: TrainedShapeModel, thresholds: AttributeThresholds) -> tuple[np.ndarray, np.ndarray]:
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
