"""The AR-VAE correction of one sequence (DESIGN.md §4.3): encode, solve the latent trajectory, decode,
verify and tighten, then the repairs of :mod:`echotemporal.correct.repair` for what is left.

Method: Painchaud et al., "Echocardiography Segmentation With Enforced Temporal Consistency",
IEEE TMI 2022, with an exact minimal-change projection of each attribute-regularized latent dim
instead of gradient descent, Whittaker smoothing of the free dims and residual decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.correct.cleanup import cleanup_labels
from echotemporal.correct.decoding import SequenceDecoder, encode_sequence, latent_tolerances
from echotemporal.correct.repair import full_decoding_fallback, interpolate_residue
from echotemporal.measure.sequence import ShapeMeasures, add_validity, heart_box, measure_shape, restore_frames

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["ArvaeOutcome", "smooth_arvae", "inpaint_latents"]


@dataclass
class ArvaeOutcome:
    labels: np.ndarray
    shape: ShapeMeasures
    rounds: int
    tolerances: np.ndarray  # (K,) latent tolerances of the last round, thresholds order
    kept: np.ndarray  # (T,) bool, input frames kept unchanged


def inpaint_latents(z: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """(T, D) latents with the ``missing`` (T,) frames replaced by linear inter/extrapolation in time."""
    out = z.copy()
    known = np.flatnonzero(~missing)
    for t in np.flatnonzero(missing):
        before, after = known[known < t], known[known > t]
        if before.size and after.size:
            a, b = before[-1], after[0]
        elif before.size:  # end frame: extrapolate from the last two known frames
            a, b = (before[-2], before[-1]) if before.size >= 2 else (before[-1], before[-1])
        else:
            a, b = (after[0], after[1]) if after.size >= 2 else (after[0], after[0])
        w = 0.0 if a == b else (t - a) / (b - a)
        out[t] = (1.0 - w) * z[a] + w * z[b]
    return out


def smooth_arvae(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    model: Any,
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    before: ShapeMeasures,
) -> ArvaeOutcome:
    """DESIGN.md §4.3: align, encode, project/smooth latents, decode, un-align, verify, tighten."""
    from echotemporal.correct.solvers import project_consistent, project_consistent_sparse, whittaker_smooth

    project = {"sparse": project_consistent_sparse, "least_squares": project_consistent}[config.projection]
    # The model sees anatomically invalid frames cleaned up (largest component per label, holes
    # filled): a stray blob would otherwise stretch the sequence's alignment and mislead the encoder.
    # Decoding still works from the input itself.
    seen = labels
    invalid = ~before.valid
    if invalid.any():
        seen = labels.copy()
        sub = seen[invalid]
        rows, cols = heart_box(sub, margin=2)
        sub[:, rows, cols] = cleanup_labels(np.ascontiguousarray(sub[:, rows, cols]), before.present)
        seen[invalid] = sub
    z0, alignment = encode_sequence(seen, spacing_mm, model)
    residual = config.decoding == "residual"
    # Glitched frames (invalid, or flagged) cannot lend their own residual: it holds the glitch
    # that the model's reconstruction only partly reproduces. They borrow their neighbours'.
    glitched = ~before.valid | before.flags.any(axis=1)
    decode = SequenceDecoder(
        labels, alignment, model, z0 if residual else None, cleanup=config.cleanup, borrow=glitched, present=before.present
    )
    dim_of, tol = latent_tolerances(model, thresholds)
    tol = tol * float(config.tolerance_scale)

    # A frame where a structure vanished (an attribute unmeasurable there but measurable elsewhere)
    # has no trustworthy latent at all, and an end frame is not constrained by the projection:
    # its latent is inpainted from the measurable frames first.
    missing = np.isnan(before.attributes).any(axis=1) & ~np.isnan(before.attributes).all(axis=1)
    if missing.any() and (~missing).sum() >= 2:
        z0 = inpaint_latents(z0, missing)
    free = np.setdiff1d(np.arange(z0.shape[1]), dim_of)
    z_free = z0[:, free]
    if free.size and config.whittaker_lambda > 0:
        z_free = whittaker_smooth(z_free, config.whittaker_lambda)
    keep = np.zeros(len(labels), dtype=bool)
    if config.keep_unflagged_frames:
        keep = ~before.flags.any(axis=1) & before.valid

    projected: dict[tuple[int, float], np.ndarray] = {}
    out, shape, rounds = labels, before, 0
    for rounds in range(1, max(int(config.max_rounds), 1) + 1):
        z = z0.copy()
        for k, d in enumerate(dim_of):
            key = (int(d), float(tol[k]))
            if key not in projected:
                projected[key] = np.asarray(project(z0[:, d], float(tol[k])), dtype=np.float64)
            z[:, d] = projected[key]
        # Free dims are smoothed only where the frame is corrected anyway (glitched, or moved by the
        # projection): every other frame keeps its latent, hence comes back bit-identical, undecoded.
        active = glitched | (z[:, dim_of] != z0[:, dim_of]).any(axis=1)
        z[np.ix_(active, free)] = z_free[active]
        out = decode(z)
        if keep.any():
            out[keep] = labels[keep]
        # Rounds only need the flags; the costly validity check runs once, on the final masks.
        shape = measure_shape(out, spacing_mm, thresholds, reference=(labels, before), validity=False)
        still = shape.flags.any(axis=0)
        if not still.any() or rounds >= config.max_rounds:
            break
        tol = np.where(still, tol * config.tighten_factor, tol)
    shape = add_validity(out, shape, spacing_mm, (labels, before))
    # Do no harm: a frame replaced only because it was anatomically invalid (never flagged) and still
    # invalid afterwards gains nothing from the replacement; it gets the input frame back.
    # Only where that creates no new inconsistency with the corrected neighbours.
    changed = (out != labels).reshape(len(out), -1).any(axis=1)
    revert = changed & ~before.valid & ~before.flags.any(axis=1) & ~shape.valid
    flagged = shape.flags.any(axis=1)
    while revert.any():
        restored = restore_frames(shape, before, revert, thresholds)
        new = restored.flags.any(axis=1) & ~flagged
        if not new.any():
            out[revert] = labels[revert]
            shape = restored
            break
        near = np.convolve(new.astype(int), np.ones(3, dtype=int), mode="same") > 0
        revert &= ~near
    if residual and not shape.valid.all():
        out, shape = full_decoding_fallback(out, shape, z, decode, model, config, spacing_mm, thresholds)
    if not shape.valid.all() or shape.flags.any():
        out, shape = interpolate_residue(out, shape, spacing_mm, thresholds)
    return ArvaeOutcome(out, shape, rounds, tol, keep)
