"""Temporal correction of one segmented sequence: :func:`smooth_sequence` and its methods.

Method: Painchaud et al., "Echocardiography Segmentation With Enforced Temporal Consistency",
IEEE TMI 2022, with the changes of DESIGN.md §4.3: an exact minimal-change projection of each
attribute-regularized latent dim instead of gradient descent, Whittaker smoothing of the free dims,
un-alignment of class probabilities (not labels), residual decoding, carry-over of the left atrium,
and verification of the decoded masks with bounded tightening.
"""

from __future__ import annotations

import functools
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from echotemporal import __version__
from echotemporal.core.config import SmoothingConfig, config_to_dict
from echotemporal.core.errors import ConfigError, InvalidLabelsError
from echotemporal.core.labels import LV, MYO, Label, as_label_sequence, check_frame_index, check_spacing, frame_indices
from echotemporal.correct.cleanup import cleanup_decoded, cleanup_labels
from echotemporal.correct.decoding import SequenceDecoder, encode_sequence, latent_tolerances
from echotemporal.measure.sequence import (
    ClinicalMeasures,
    ShapeMeasures,
    add_validity,
    heart_box,
    measure_clinical,
    measure_shape,
    restore_frames,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps pandas/torch off the import path
    import pandas as pd

    from echotemporal.model.interface import TrainedShapeModel
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["METHODS", "SmoothingResult", "smooth_sequence", "gaussian_smooth_labels"]

METHODS: tuple[str, ...] = ("arvae", "gaussian", "none")


@dataclass
class SmoothingResult:
    """Output of :func:`smooth_sequence`.

    Attributes:
        labels: (T, H, W) uint8 corrected label map, same shape as the input.
        method: "arvae", "gaussian" or "none".
        columns: the per-frame table as {column: (T,) values}, in column order (see ``frames``).
        summary: JSON-able dict: clinical indices before/after, inconsistent/invalid frames
            before/after, rounds, residue, config, package version, weights sha256, seconds.
        frame_measures: {"before", "after"}: the per-frame clinical measures
            (``clinical.FrameMeasures``: volumes, disk diameters, contour lengths) the indices came
            from, e.g. for biplane volumes with another view.
    """

    labels: np.ndarray
    method: str
    columns: dict[str, Any]
    summary: dict[str, Any]
    frame_measures: dict[str, Any] | None = None

    @functools.cached_property
    def frames(self) -> pd.DataFrame:
        """One row per frame: attributes, flags, validity, LV volume and strain, before and after.

        Built from ``columns`` on first use: writing the outputs needs no pandas, whose import takes
        a quarter of a second.
        """
        import pandas as pd

        return pd.DataFrame(self.columns)


def gaussian_smooth_labels(labels: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Temporal Gaussian filter of one-hot label maps, then argmax (the reference's baseline).

    Args:
        labels: (T, H, W) uint8 label map (not modified).
        sigma_frames: temporal standard deviation in frames (DESIGN.md: 0.05·T).

    Returns:
        (T, H, W) uint8 smoothed label map.
    """
    labels = np.asarray(labels)
    if sigma_frames <= 0 or len(labels) < 2:
        return labels.copy()
    rows, cols = heart_box(labels, margin=1)  # outside the heart everything stays background
    crop = labels[:, rows, cols].copy()  # a copy even where the box is the whole image
    flat = crop.reshape(len(crop), -1)
    # A pixel with one label throughout keeps it: only the band swept by the borders is filtered.
    varying = np.flatnonzero((flat != flat[:1]).any(axis=0))
    if varying.size:
        flat[:, varying] = _gaussian_vote(flat[:, varying], float(sigma_frames))
    out = np.zeros_like(labels)
    out[:, rows, cols] = crop
    return out


#: Largest number of distinct label windows :func:`_gaussian_vote` tabulates (else it filters).
_MAX_WINDOW_CODES = 1 << 20


def _gaussian_vote(sub: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Argmax over classes of the temporal Gaussian of the one-hot (T, V) uint8 label columns ``sub``.

    The filter (``scipy.ndimage.gaussian_filter1d``, mode "nearest", radius r) gives frame t a
    function of the labels of frames t−r..t+r only (clipped at the ends). Each such window is coded
    as one integer; the windows that occur are filtered once each, with the same scipy call (so the
    same floating-point sums and ties), and every (frame, pixel) looks its window up. Where the
    windows could be too many, the columns are filtered directly.

    Returns:
        (T, V) uint8 labels.
    """
    n_classes = int(sub.max()) + 1
    classes = np.arange(n_classes, dtype=sub.dtype)[:, None, None]
    radius = int(4.0 * sigma_frames + 0.5)  # scipy's default truncate = 4.0
    width = 2 * radius + 1
    if n_classes**width > _MAX_WINDOW_CODES:
        onehot = (sub[None] == classes).astype(np.float32)
        return ndimage.gaussian_filter1d(onehot, sigma_frames, axis=1, mode="nearest").argmax(axis=0).astype(sub.dtype)
    n = len(sub)
    padded = np.pad(sub.astype(np.int32), ((radius, radius), (0, 0)), mode="edge")  # "nearest" ends
    code = padded[:n].copy()
    for j in range(1, width):  # Horner: the window's first frame is the most significant digit
        code *= n_classes
        code += padded[j : j + n]
    seen = np.zeros(n_classes**width, dtype=bool)
    seen[code.ravel()] = True
    codes = np.flatnonzero(seen)
    digits = (codes[None, :] // n_classes ** np.arange(width - 1, -1, -1)[:, None]) % n_classes  # (width, U)
    onehot = (digits[None] == classes).astype(np.float32)  # (C, width, U)
    votes = ndimage.gaussian_filter1d(onehot, sigma_frames, axis=1, mode="nearest")[:, radius]
    table = np.zeros(n_classes**width, dtype=sub.dtype)
    table[codes] = votes.argmax(axis=0)
    return table[code]


@dataclass
class _ArvaeOutcome:
    labels: np.ndarray
    shape: ShapeMeasures
    rounds: int
    tolerances: np.ndarray  # (K,) latent tolerances of the last round, thresholds order
    kept: np.ndarray  # (T,) bool, input frames kept unchanged


def _inpaint_latents(z: np.ndarray, missing: np.ndarray) -> np.ndarray:
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


def _smooth_arvae(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    model: Any,
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    before: ShapeMeasures,
) -> _ArvaeOutcome:
    """DESIGN.md §4.3: align, encode, project/smooth latents, decode, un-align, verify, tighten."""
    from echotemporal.correct.solvers import project_consistent, project_consistent_sparse, whittaker_smooth

    if config.decoding not in ("residual", "full"):
        raise ConfigError(f"decoding={config.decoding!r} is not 'residual' or 'full'; pick one of them")
    projections = {"sparse": project_consistent_sparse, "least_squares": project_consistent}
    if config.projection not in projections:
        raise ConfigError(f"projection={config.projection!r} is not 'sparse' or 'least_squares'; pick one of them")
    project = projections[config.projection]
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
        z0 = _inpaint_latents(z0, missing)
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
        out, shape = _full_decoding_fallback(out, shape, z, decode, model, config, spacing_mm, thresholds)
    if not shape.valid.all() or shape.flags.any():
        out, shape = _interpolate_residue(out, shape, spacing_mm, thresholds)
    return _ArvaeOutcome(out, shape, rounds, tol, keep)


def _full_decoding_fallback(
    out: np.ndarray,
    shape: ShapeMeasures,
    z: np.ndarray,
    decode: SequenceDecoder,
    model: Any,
    config: SmoothingConfig,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Frames still invalid after residual decoding get the model's own shape, where that helps.

    Residual decoding keeps the input's fine detail; on a frame that detail can be what breaks an
    anatomical criterion (a myocardium thinned by noise, a basal flap crossing the LA). Such frames
    are decoded in full (argmax of the decoded probabilities, LA carried over as for the others);
    a replacement is kept where it is valid and creates no inconsistency with its neighbours.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).
        z: (T, D) latents of the last round; decode: the residual decoder of this sequence.

    Returns:
        (labels, measures) with the accepted replacements.
    """
    rows = np.flatnonzero(~shape.valid)
    replaced = out.copy()
    replaced[rows] = SequenceDecoder(
        decode.carry[rows], decode.alignment, model, None, cleanup=config.cleanup, present=decode.present
    )(z[rows])
    return _accept_replacements(out, shape, replaced, ~shape.valid, spacing_mm, thresholds)


#: Runs of at most this many residue frames are interpolated from their good neighbours.
MAX_INTERPOLATED_RUN = 4
#: Speeds (fractions of the last good frames' motion) tried in turn for a run at an end of the
#: sequence: the motion carried on, slowed (ED and ES are turning points), stopped.
END_SPEEDS = (1.0, 0.5, 0.25, 0.0)


def _bad_runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of True in (T,) ``bad``."""
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def _interpolate_residue(
    out: np.ndarray,
    shape: ShapeMeasures,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Last resort for frames still invalid or inconsistent: the shape between their good neighbours.

    A frame that neither residual nor full decoding made valid and consistent (a glitch the model
    reconstructs, a coarse myocardium one pixel thick) takes the signed-distance interpolation of
    the good frames (valid and consistent) around its run of residue frames (at most
    :data:`MAX_INTERPOLATED_RUN` frames): every label's signed distance (mm) is interpolated
    linearly in time, or extrapolated from the two last good frames for a run at an end of the
    sequence (at the speeds of :data:`END_SPEEDS` in turn: carried on, slowed, stopped), and each
    pixel takes the label of smallest distance. Borders move continuously, so the in-between shapes
    are valid and consistent wherever their neighbours are. Proposals are cleaned up like decoded
    frames and kept only if valid and making no frame newly inconsistent. Should a run make a good
    neighbour inconsistent, the run is widened by that neighbour and tried again.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).

    Returns:
        (labels, measures).
    """
    from echotemporal.core.distances import label_distances, labels_from_distances

    rows, cols = heart_box(out, margin=2)
    distances: dict[int, np.ndarray] = {}

    def distance(t: int) -> np.ndarray:
        if t not in distances:
            distances[t] = label_distances(out[t, rows, cols], spacing_mm)
        return distances[t]

    n = len(out)
    bad = ~shape.valid | shape.flags.any(axis=1)
    for end_speed in END_SPEEDS:
        for _ in range(2):  # a second pass for what the first left, or with widened runs
            good = ~bad
            if not bad.any() or good.sum() < 2:
                return out, shape
            replaced = out.copy()
            window = replaced[:, rows, cols]  # a view: writes go to ``replaced``
            candidate = np.zeros(n, dtype=bool)
            for first, last in _bad_runs(bad):
                if last - first + 1 > MAX_INTERPOLATED_RUN:
                    continue
                before = np.flatnonzero(good[:first])
                after = first + 1 + np.flatnonzero(good[first + 1 :])
                if before.size and after.size:
                    if end_speed != END_SPEEDS[0]:
                        continue  # an interior run has only one proposal, tried already
                    a, b, near = int(before[-1]), int(after[0]), None
                elif before.size >= 2:
                    a, b, near = int(before[-2]), int(before[-1]), 1.0
                elif after.size >= 2:
                    a, b, near = int(after[0]), int(after[1]), 0.0
                else:
                    continue
                for t in range(first, last + 1):
                    w = (t - a) / (b - a)
                    if near is not None:  # beyond the good frames: extrapolated at end_speed
                        w = near + end_speed * (w - near)
                    window[t] = labels_from_distances((1.0 - w) * distance(a) + w * distance(b))
                    candidate[t] = True
            if not candidate.any():
                break
            window[candidate] = cleanup_decoded(np.ascontiguousarray(window[candidate]), spacing_mm, shape.present)
            new_out, new_shape = _accept_replacements(out, shape, replaced, candidate, spacing_mm, thresholds)
            if new_out is not out:
                out, shape = new_out, new_shape
                bad = ~shape.valid | shape.flags.any(axis=1)
                distances.clear()  # replaced frames may now serve as good frames
                continue
            # Rejected: widen each run by the good neighbours it would have made inconsistent.
            beside = np.convolve(candidate.astype(int), np.ones(3, dtype=int), mode="same") > 0
            trial = measure_shape(replaced, spacing_mm, thresholds, reference=(out, shape), validity=False)
            widen = trial.flags.any(axis=1) & ~bad & beside
            if not widen.any():
                break
            bad = bad | widen
    return out, shape


def _accept_replacements(
    out: np.ndarray,
    shape: ShapeMeasures,
    replaced: np.ndarray,
    candidate: np.ndarray,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Keep the candidate frames of ``replaced`` that are valid and make no frame newly inconsistent.

    Candidates are measured once; a replacement whose frame, or a neighbour, would become flagged
    is dropped together with its neighbours' (at most three passes, no re-measuring).

    Args:
        out: (T, H, W) labels; shape: their measures (with validity).
        replaced: (T, H, W) alternative labels (its non-candidate frames are overwritten with
            ``out``'s); candidate: (T,) bool, frames that may be taken from it.

    Returns:
        (labels, measures).
    """
    replaced[~candidate] = out[~candidate]
    measured = measure_shape(replaced, spacing_mm, thresholds, reference=(out, shape), warm_clinical=True)
    accept = candidate & measured.valid
    flagged = shape.flags.any(axis=1)
    for _ in range(3):
        if not accept.any():
            break
        trial_shape = restore_frames(measured, shape, ~accept, thresholds)
        new = trial_shape.flags.any(axis=1) & ~flagged
        if not new.any():
            return np.where(accept[:, None, None], replaced, out), trial_shape
        accept &= ~(np.convolve(new.astype(int), np.ones(3, dtype=int), mode="same") > 0)
    return out, shape


#: Denoising replaces only frames where it changes more than this fraction of the LV∪MYO pixels.
DENOISE_MIN_CHANGE = 0.002


def _denoise(
    out: np.ndarray,
    shape: ShapeMeasures,
    spacing_mm: tuple[float, float],
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    anchors: tuple[int, ...],
) -> tuple[np.ndarray, ShapeMeasures]:
    """Temporal Gaussian of the corrected sequence's one-hot maps, kept only where it does no harm.

    Segmenters and annotators draw every frame's borders anew: a ~1 px flicker that the shape
    correction, which leaves consistent frames alone, keeps. Once the sequence is consistent, a
    short temporal Gaussian (sigma = ``config.denoise_sigma_frames``) averages that
    flicker away. Each smoothed frame is cleaned up like a decoded one and kept only if it is
    anatomically valid and makes no frame inconsistent (and changes more than
    :data:`DENOISE_MIN_CHANGE` of its LV∪MYO pixels); the ``anchors`` (ED, ES) keep their
    corrected borders, as averaging the volume curve's extremes with their neighbours biases EDV
    and ESV.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).
        anchors: frames never smoothed.

    Returns:
        (labels, measures).
    """
    n = len(out)
    rows, cols = heart_box(out, margin=2)
    original = out[:, rows, cols]
    crop = gaussian_smooth_labels(original, float(config.denoise_sigma_frames))
    # Frames the filter barely touches are left alone: measuring them again would cost more than
    # the few border pixels they would lose.
    changed = (crop != original).reshape(n, -1).sum(axis=1)
    heart = ((original == LV) | (original == MYO)).reshape(n, -1).sum(axis=1)
    candidate = changed > DENOISE_MIN_CHANGE * np.maximum(heart, 1)
    candidate[[a for a in anchors if 0 <= a < n]] = False
    if not candidate.any():
        return out, shape
    smoothed = out.copy()
    # Only the frames the filter changed are cleaned up (and later measured).
    window = smoothed[:, rows, cols]  # a view: writes go to ``smoothed``
    window[candidate] = cleanup_decoded(np.ascontiguousarray(crop[candidate]), spacing_mm, shape.present)
    candidate &= (smoothed != out).reshape(n, -1).any(axis=1)
    return _accept_replacements(out, shape, smoothed, candidate, spacing_mm, thresholds)


def _check_inputs(labels: np.ndarray, spacing_mm: Any) -> tuple[np.ndarray, tuple[float, float]]:
    if 0 in np.shape(labels):
        raise InvalidLabelsError(f"labels of shape {np.shape(labels)}: the sequence has no frame or no pixel")
    return as_label_sequence(labels), check_spacing(spacing_mm)


def _num(x: Any) -> float | None:
    """Python float for JSON; NaN stays NaN (export writes it as null)."""
    return None if x is None else float(x)


def smooth_sequence(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    model: TrainedShapeModel | None = None,
    config: SmoothingConfig = SmoothingConfig(),
    thresholds: AttributeThresholds | None = None,
    ed_frame: int | None = None,
    es_frame: int | None = None,
) -> SmoothingResult:
    """Correct the temporal and anatomical inconsistencies of one segmented sequence.

    ``arvae`` (DESIGN.md §4.3): align and encode every frame; project each attribute dim's latent
    trajectory exactly onto the consistency constraints (``tol_k = tau_k·(u_hi − u_lo)``); Whittaker-
    smooth the free dims of the frames being corrected; decode (residual decoding by default: frames
    left alone come back bit-identical); carry LA over; clean up; re-measure the decoded masks and,
    while a frame is still flagged, tighten that attribute's tolerance (``config.max_rounds``); a
    frame replaced only for being invalid that is still invalid gets the input back. Whatever is
    left is reported in ``summary["residue"]``. ``gaussian``: the reference's baseline. ``none``: the
    input, measured.

    Args:
        labels: (T, H, W) uint8 label map (0 bg, 1 LV, 2 MYO, 3 LA), frame 0 first, apex towards
            row 0; an (H, W) frame is treated as T = 1.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        model: trained shape model (torch or ONNX Runtime) for ``method="arvae"``; ``None`` loads the shipped default.
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
    ed = check_frame_index(ed_frame, n_frames, "ed_frame")
    es = check_frame_index(es_frame, n_frames, "es_frame")
    if thresholds is None:
        from echotemporal.measure.temporal import load_thresholds

        thresholds = load_thresholds()
    reverse = ed is not None and es is not None and es < ed
    work = arr[::-1].copy() if reverse else arr
    if reverse:
        ed, es = n_frames - 1 - ed, n_frames - 1 - es  # type: ignore[operator]

    notes: list[str] = []
    if reverse:
        notes.append("stored ES->ED: reversed for processing and reversed back")
    before = measure_shape(work, spacing, thresholds)
    # The input's clinical measures (mostly Python, holding the GIL) run beside the encoding and
    # decoding (torch/numpy kernels, which release it). Should those raise, the idle worker thread
    # ends with the executor.
    background = ThreadPoolExecutor(1, thread_name_prefix="echotemporal-clinical")
    clin_before_job = background.submit(measure_clinical, work, spacing, ed, es)
    rounds, tolerances, kept = 0, None, np.zeros(n_frames, dtype=bool)
    n_denoised = 0
    weights_sha = None
    method = config.method
    has_heart = Label.LV in before.present or Label.MYO in before.present
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
        after = measure_shape(out, spacing, thresholds, reference=(work, before))
    elif not has_heart:
        warnings.warn("no LV or MYO in any frame: nothing the shape model can correct; input returned", stacklevel=2)
        notes.append("no LV or MYO in any frame; input returned unchanged")
        out, after = work, before
    else:
        if model is None:
            from echotemporal.model.registry import load_model

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
        if config.denoise_sigma_frames > 0 and not config.keep_unflagged_frames:
            anchors = (ed, es) if ed is not None and es is not None else (0, n_frames - 1)
            corrected = out
            out, after = _denoise(out, after, spacing, config, thresholds, tuple(int(a) for a in anchors))
            if out is not corrected:
                n_denoised = int((out != corrected).reshape(n_frames, -1).any(axis=1).sum())
    if model is not None and weights_sha is None and method == "arvae":
        weights_sha = getattr(model, "sha256", None)
    clin_before = clin_before_job.result()
    background.shutdown(wait=False)
    clin_after = clin_before if out is work else measure_clinical(out, spacing, ed, es)

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
    columns = _frame_columns(arr, out.reshape(arr.shape), names, before, after, clin_before, clin_after, kept)
    residue_attrs = {n: frame_indices(after.flags[:, k]) for k, n in enumerate(names) if after.flags[:, k].any()}
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
        "inconsistent_frames_before": frame_indices(before.flags.any(axis=1)),
        "inconsistent_frames_after": frame_indices(after.flags.any(axis=1)),
        "n_invalid_before": int((~before.valid).sum()),
        "n_invalid_after": int((~after.valid).sum()),
        "invalid_frames_before": frame_indices(~before.valid),
        "invalid_frames_after": frame_indices(~after.valid),
        "n_changed_frames": int(columns["changed"].sum()),
        "n_kept_input_frames": int(kept.sum()),
        "n_denoised_frames": n_denoised,
        "rounds": int(rounds),
        "latent_tolerances": None if tolerances is None else dict(zip(names, map(float, tolerances))),
        "residue": {
            "clean": not after.flags.any() and bool(after.valid.all()),
            "inconsistent_attributes": residue_attrs,
            "invalid_frames": frame_indices(~after.valid),
        },
        "notes": notes,
        "config": config_to_dict(config),
        "thresholds": {
            n: {"lo": float(lo), "hi": float(hi), "tau": float(tau)}
            for n, lo, hi, tau in zip(names, thresholds.lo, thresholds.hi, thresholds.tau)
        },
        "package_version": __version__,
        "weights_sha256": weights_sha,
        "inference_backend": getattr(model, "backend", None) if method == "arvae" else None,
        "seconds": time.perf_counter() - start,
    }
    return SmoothingResult(
        labels=out,
        method=method,
        columns=columns,
        summary=summary,
        frame_measures={"before": clin_before.frames, "after": clin_after.frames},
    )


def _frame_columns(
    before_labels: np.ndarray,
    after_labels: np.ndarray,
    names: tuple[str, ...],
    before: ShapeMeasures,
    after: ShapeMeasures,
    clin_before: ClinicalMeasures,
    clin_after: ClinicalMeasures,
    kept: np.ndarray,
) -> dict[str, Any]:
    """The per-frame table's columns: {name: (T,) array or list}, in column order."""
    from echotemporal.measure.anatomy import CRITERIA

    def failed(shape: ShapeMeasures) -> list[str]:
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
    return cols
