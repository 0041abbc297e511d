"""Correct one segmented sequence: :func:`smooth_sequence` dispatches to the method the config names.

Methods: ``arvae`` (:mod:`echotemporal.correct.arvae`, then the denoise), ``gaussian`` (the reference's
baseline, :mod:`echotemporal.correct.baselines`) and ``none`` (the input, measured). Whatever the
method, the input and the output are measured the same way (:mod:`echotemporal.measure.sequence`),
and the result carries both (:mod:`echotemporal.correct.result`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from echotemporal.core.boxes import Box, grow, mask_box
from echotemporal.core.config import METHODS, SmoothingConfig
from echotemporal.core.errors import InvalidLabelsError
from echotemporal.core.labels import Label, as_label_sequence, check_frame_index, check_frame_time, check_spacing
from echotemporal.correct.arvae import smooth_arvae
from echotemporal.correct.baselines import gaussian_smooth_labels, lcc_gaussian_labels
from echotemporal.correct.denoise import denoise, fit_turning_points, turning_frames
from echotemporal.correct.repair import restore_good_frames
from echotemporal.correct.result import SmoothingResult, beat_columns, beat_table, build_summary, frame_columns
from echotemporal.correct.trust import FrameTrust
from echotemporal.measure.clinical.indices import ef_points, turns_over
from echotemporal.measure.sequence import ShapeMeasures, measure_clinical, measure_shape

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps torch off the import path
    from echotemporal.measure.temporal import AttributeThresholds
    from echotemporal.model.interface import TrainedShapeModel

__all__ = ["METHODS", "OUTCOMES", "SmoothingResult", "judge_outcome", "smooth_sequence", "gaussian_smooth_labels"]


@dataclass
class MethodOutcome:
    """What one method made of the (ED→ES ordered) sequence, before it is reported.

    Attributes:
        labels: (T, H, W) corrected labels; after: their measures.
        rounds: verification rounds (arvae); tolerances: (K,) final latent tolerances or None.
        trust: the input frames' confidence (arvae); reestimated: (T,) bool frames re-estimated.
        kept: (T,) bool, input frames kept unchanged by ``keep_unflagged_frames``.
        n_denoised: frames changed by the border-flicker denoise (the Gaussian between ED and ES, the
            turning-point fit of ED and ES).
        notes: what a reader should know about how the sequence was handled.
    """

    labels: np.ndarray
    after: ShapeMeasures
    rounds: int = 0
    tolerances: np.ndarray | None = None
    kept: np.ndarray | None = None
    n_denoised: int = 0
    notes: list[str] = field(default_factory=list)
    trust: FrameTrust | None = None
    reestimated: np.ndarray | None = None


#: Outcomes of a correction, in the order a reader should worry about them.
OUTCOMES: tuple[str, ...] = ("clean", "residue", "worse")


def _scores(shape: ShapeMeasures) -> str:
    return f"{int(shape.inconsistent.sum())} inconsistent, {int((~shape.valid).sum())} invalid frames"


def _inverted(clinical: Any) -> bool:
    """Whether the clinical measures put the ESV at or above a positive EDV (EF <= 0)."""
    return ef_points(clinical.edv_ml, clinical.esv_ml) <= 0


def judge_outcome(before: ShapeMeasures, after: ShapeMeasures) -> str:
    """"worse" if the output has more inconsistent or more invalid frames than the input, "residue"
    if it still has some, else "clean" (the project's own checks, DESIGN.md §4.1 and §6)."""
    n_bad = lambda s: (int(s.inconsistent.sum()), int((~s.valid).sum()))  # noqa: E731
    (inc_b, inv_b), (inc_a, inv_a) = n_bad(before), n_bad(after)
    if inc_a > inc_b or inv_a > inv_b:
        return "worse"
    return "residue" if inc_a or inv_a else "clean"


def check_inputs(labels: np.ndarray, spacing_mm: Any) -> tuple[np.ndarray, tuple[float, float]]:
    """(T, H, W) uint8 labels and (row_mm, col_mm) spacing, or a one-line error."""
    if 0 in np.shape(labels):
        raise InvalidLabelsError(f"labels of shape {np.shape(labels)}: the sequence has no frame or no pixel")
    return as_label_sequence(labels), check_spacing(spacing_mm)


def _run_method(
    work: np.ndarray,
    spacing: tuple[float, float],
    before: ShapeMeasures,
    model: Any,
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    anchors: tuple[int, int] | None,
) -> MethodOutcome:
    """Apply ``config.method`` to the ED→ES ordered (T, H, W) ``work``; ``model`` is loaded by the caller."""
    n_frames = len(work)
    if n_frames <= 2:
        note = f"{n_frames} frame(s): no interior frame, nothing to smooth; input returned unchanged"
        return MethodOutcome(work, before, notes=[note])
    if config.method == "none":
        return MethodOutcome(work, before)
    if config.method in ("gaussian", "lcc-gaussian"):
        smooth = gaussian_smooth_labels if config.method == "gaussian" else lcc_gaussian_labels
        out = smooth(work, config.gaussian_sigma_fraction * n_frames)
        kept = None
        if config.keep_unflagged_frames:
            kept = before.clean
            out[kept] = work[kept]
        return MethodOutcome(out, measure_shape(out, spacing, thresholds, reference=(work, before)), kept=kept)
    if model is None:  # arvae on a sequence without LV or MYO
        warnings.warn("no LV or MYO in any frame: nothing the shape model can correct; input returned", stacklevel=5)
        return MethodOutcome(work, before, notes=["no LV or MYO in any frame; input returned unchanged"])
    outcome = smooth_arvae(work, spacing, model, config, thresholds, before, anchors)
    result = MethodOutcome(outcome.labels, outcome.shape, outcome.rounds, outcome.tolerances, outcome.kept,
                           trust=outcome.trust, reestimated=outcome.reestimated, notes=list(outcome.notes))
    if config.keep_unflagged_frames:
        return result
    if config.denoise_scope != "all":
        good = ~before.inconsistent  # restore_good_frames also requires validity
        if result.trust is not None:
            good &= result.trust.trusted
        if result.reestimated is not None:
            good &= ~result.reestimated
        result.labels, result.after = restore_good_frames(result.labels, result.after, work, before, good, thresholds)
    corrected = result.labels
    changed = (corrected != work).reshape(n_frames, -1).any(axis=1)
    if config.denoise_scope != "all" and not changed.any():
        # Nothing needed correcting: a sequence every check passes comes back as drawn (its ED/ES
        # flicker is within what clean annotations show, DESIGN §4.1); "all" denoises it anyway,
        # "sequence" denoises every frame of a sequence that needed something.
        return result
    ends = anchors if anchors is not None else (0, n_frames - 1)
    if config.denoise_sigma_frames > 0:
        # Without ED/ES, the turning points of the corrected curve (every beat's) keep their borders
        # too: averaged with their neighbours, the curve's extremes (the EF's) would flatten.
        kept = ends if anchors is not None else tuple(sorted({*ends, *turning_frames(result.after, thresholds)}))
        allowed = None
        if config.denoise_scope == "corrected":
            allowed = changed
        result.labels, result.after = denoise(corrected, result.after, spacing, config, thresholds, kept, allowed)
    if config.turning_fit_frames > 0:
        # Without ED/ES, the turning points are those of the corrected curve (every beat's).
        turning = anchors if anchors is not None else turning_frames(result.after, thresholds)
        result.labels, result.after = fit_turning_points(result.labels, result.after, spacing, thresholds, turning,
                                                         config.turning_fit_frames, support=~changed,
                                                         # the lenders' borders before the Gaussian; in
                                                         # "corrected" they are untouched by it anyway
                                                         borders=None if config.denoise_scope == "corrected" else corrected)
    if result.labels is not corrected:
        result.n_denoised = int((result.labels != corrected).reshape(n_frames, -1).any(axis=1).sum())
    return result


def smooth_sequence(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    model: TrainedShapeModel | None = None,
    config: SmoothingConfig = SmoothingConfig(),
    thresholds: AttributeThresholds | None = None,
    ed_frame: int | None = None,
    es_frame: int | None = None,
    frame_time_ms: float | None = None,
) -> SmoothingResult:
    """Correct the temporal and anatomical inconsistencies of one segmented sequence.

    ``arvae`` (DESIGN.md §4.3): align and encode every frame; project each attribute dim's latent
    trajectory exactly onto the consistency constraints (``tol_k = tau_k·(u_hi − u_lo)``); Whittaker-
    smooth the free dims of the frames being corrected; decode (residual decoding by default: frames
    left alone come back bit-identical, and good frames the projection moved get their drawing back
    where that flags nothing); carry LA over; clean up; re-measure the decoded masks and,
    while a frame is still flagged, tighten that attribute's tolerance (``config.max_rounds``); a
    frame replaced only for being invalid that is still invalid gets the input back. Whatever is
    left is reported in ``summary["residue"]``. ``gaussian``: the reference's baseline. ``none``: the
    input, measured. Every method works on the image cropped around what is drawn (:func:`work_box`)
    and returns the whole image.

    The input gates of the command line (pixel spacing, ED/ES, orientation, swapped labels, no heart
    at all: ``measure.inputs.prepare_input`` on a file, ``measure.plausibility`` on arrays) are not
    applied here: an array drawn upside down, or ED/ES that give a negative EF, is corrected as given.

    Args:
        labels: (T, H, W) uint8 label map (0 bg, 1 LV, 2 MYO, 3 LA), frame 0 first, apex towards
            row 0; an (H, W) frame is treated as T = 1.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        model: trained shape model (torch or ONNX Runtime) for ``method="arvae"``; ``None`` loads the shipped default.
        config: smoothing settings; ``config.method`` picks one of ``METHODS``.
        thresholds: consistency thresholds; ``None`` loads the packaged ones.
        ed_frame, es_frame: 0-based ED/ES (e.g. from the Info cfg). ``None`` detects them from each
            volume curve. ``es_frame < ed_frame`` means the sequence is stored ES→ED: it is reversed,
            processed and reversed back. Without them every beat is detected on each curve (the
            corrected one for the output): half-sequences, full cycles and several beats.
        frame_time_ms: time between frames, ms > 0 (file header or 1000/fps; else ConfigError); None gives
            rates per frame.

    Returns:
        SmoothingResult with (T, H, W) uint8 labels of the input's shape (T = 1 and T = 2 are
        returned unchanged: there is no interior frame to correct), a per-frame table and a summary.
    """
    start = time.perf_counter()
    arr, spacing = check_inputs(labels, spacing_mm)
    n_frames = len(arr)
    ed = check_frame_index(ed_frame, n_frames, "ed_frame")
    es = check_frame_index(es_frame, n_frames, "es_frame")
    frame_time_ms = check_frame_time(frame_time_ms)
    if thresholds is None:
        from echotemporal.measure.temporal import load_thresholds

        thresholds = load_thresholds()
    reverse = ed is not None and es is not None and es < ed
    work = arr[::-1].copy() if reverse else arr
    if reverse:
        ed, es = n_frames - 1 - ed, n_frames - 1 - es  # type: ignore[operator]
    done = _correct_in_box(lambda frames: _correct(frames, spacing, ed, es, model, config, thresholds), work, spacing,
                           tuple(thresholds.names))
    if reverse:
        done = done.reversed()
        done.notes.insert(0, "stored ES->ED: reversed for processing and reversed back")
    out = np.ascontiguousarray(done.labels, dtype=np.uint8)
    if out is arr or np.shares_memory(out, arr):
        out = out.copy()
    columns = frame_columns(arr, out, tuple(thresholds.names), done.before, done.after, done.clin_before,
                            done.clin_after, done.kept, done.trust, done.reestimated)
    beats = {"before": beat_table(done.clin_before, frame_time_ms, ed_frame, es_frame),
             "after": beat_table(done.clin_after, frame_time_ms, ed_frame, es_frame)}
    columns.update(beat_columns(beats["after"][0], done.clin_before.volumes_ml, done.clin_after.volumes_ml, frame_time_ms))
    summary = build_summary(
        config, thresholds, arr, spacing, done.before, done.after, done.clin_before, done.clin_after, columns,
        done.kept, given_ed_es=ed_frame is not None and es_frame is not None, reverse=reverse, notes=done.notes,
        rounds=done.rounds, tolerances=done.tolerances, n_denoised=done.n_denoised, trust=done.trust,
        model=done.model, beats=beats, frame_time_ms=frame_time_ms,
    )
    summary["outcome"] = done.verdict
    summary["kept_input_because_worse"] = bool(done.verdict == "worse" and config.on_worse == "keep_input")
    summary["worse_reason"] = done.worse_reason
    summary["seconds"] = time.perf_counter() - start
    return SmoothingResult(
        labels=out[0] if np.asarray(labels).ndim == 2 else out,
        method=config.method,
        columns=columns,
        summary=summary,
        clinical={"before": done.clin_before, "after": done.clin_after},
    )


@dataclass
class Corrected:
    """A method's result on the sequence with everything measured, frames in one order.

    Attributes:
        labels: (T, H, W) output; before/after: shape measures; clin_before/clin_after: clinical ones.
        kept: (T,) input frames kept; trust: input frames' confidence (arvae); reestimated: (T,) bool.
        verdict: "clean", "residue" or "worse"; notes: for the reader; model: the model used (arvae).
        rounds, tolerances, n_denoised: as in :class:`MethodOutcome`.
        worse_reason: why the verdict is "worse" (the frame counts, or the volumes at ED/ES), else None.
    """

    labels: np.ndarray
    before: ShapeMeasures
    after: ShapeMeasures
    clin_before: Any
    clin_after: Any
    kept: np.ndarray
    trust: FrameTrust | None
    reestimated: np.ndarray | None
    verdict: str
    notes: list[str]
    model: Any
    rounds: int
    tolerances: np.ndarray | None
    n_denoised: int
    worse_reason: str | None = None

    def placed(self, box: Box, shape: tuple[int, int, int], spacing: tuple[float, float], names: tuple[str, ...]) -> Corrected:
        """The same result, computed on the crop ``box`` of an image of (T, H, W) ``shape``, put back in it:
        the labels pasted into background, the position attributes (``names``) moved by the crop's offset."""
        labels = np.zeros(shape, dtype=np.uint8)
        labels[(slice(None), *box)] = self.labels
        offset = (box[0].start * float(spacing[0]), box[1].start * float(spacing[1]))
        return dataclasses.replace(self, labels=labels, before=self.before.translated(names, offset),
                                   after=self.after.translated(names, offset))

    def reversed(self) -> Corrected:
        """The same result in reversed frame order."""
        flip = lambda x: None if x is None else x.reversed()  # noqa: E731
        return dataclasses.replace(
            self, labels=self.labels[::-1], before=self.before.reversed(), after=self.after.reversed(),
            clin_before=self.clin_before.reversed(), clin_after=self.clin_after.reversed(), kept=self.kept[::-1],
            trust=flip(self.trust), reestimated=None if self.reestimated is None else self.reestimated[::-1],
        )


def _judge(
    work: np.ndarray, spacing: tuple[float, float], ed: int | None, es: int | None, before: ShapeMeasures,
    clin_before: Any, outcome: MethodOutcome,
) -> tuple[str, str, Any]:
    """(verdict, why, the output's clinical measures) of a method's ``outcome`` on the input ``work``.

    "worse" when the frame counts say so (:func:`judge_outcome`) or when the output puts the ESV at or
    above the EDV of the given ED/ES where the input showed a contraction (an EF of at least
    ``EF_TURNED_MARGIN`` points; do no harm on the indices too: a run rebuilt the wrong way turns the
    volume curve over whatever the frame counts).
    """
    out, after = outcome.labels, outcome.after
    verdict = judge_outcome(before, after)
    clin_after = clin_before if out is work else measure_clinical(out, spacing, ed, es, reference=(work, clin_before))
    why = f"{_scores(before)} -> {_scores(after)}"
    volumes = lambda clinical: (clinical.edv_ml, clinical.esv_ml)  # noqa: E731
    if verdict != "worse" and turns_over(volumes(clin_before), volumes(clin_after)):
        verdict = "worse"
        why = (f"ESV {float(clin_before.esv_ml):.1f} < EDV {float(clin_before.edv_ml):.1f} mL -> "
               f"ESV {float(clin_after.esv_ml):.1f} >= EDV {float(clin_after.edv_ml):.1f} mL")
    return verdict, why, clin_after


#: An EF moved by at least this many points by a correction that re-estimated frames gets a review note.
EF_REVIEW_POINTS = 10.0


def review_notes(
    trust: FrameTrust | None, clinical: Any, n_frames: int, *, before: Any = None, reestimated: np.ndarray | None = None
) -> list[str]:
    """What a reader must check by eye in a corrected sequence: the correction rests on nothing, its
    indices cannot be right, or the shape model rebuilt frames that moved the EF a long way.

    Args:
        trust: the input frames' trust (arvae; None for the other methods); clinical: the output's
            clinical measures (frame numbers 0-based here, named from 1 in the notes);
        n_frames: T; before: the input's clinical measures; reestimated: (T,) bool, frames the
            model rebuilt from the trusted ones.

    Returns:
        One sentence per finding (none for a sequence the checks can vouch for).
    """
    notes = []
    if trust is not None and n_frames > 2 and trust.too_few:
        notes.append(
            f"only {int(trust.trusted.sum())} of {n_frames} frames could be trusted (valid, reconstructed like "
            "a heart, on the sequence's own curve): there was nothing to re-estimate the others from, so they "
            "were corrected in place where the model could; review this segmentation"
        )
    if _inverted(clinical) and clinical.ed_frame is not None:
        notes.append(
            f"ESV {float(clinical.esv_ml):.1f} mL >= EDV {float(clinical.edv_ml):.1f} mL (ED frame "
            f"{int(clinical.ed_frame) + 1}, ES frame {int(clinical.es_frame) + 1}): the segmentation or the "
            "ED/ES given is too far off for EF; review"
        )
    rebuilt = np.flatnonzero(reestimated) if reestimated is not None else np.zeros(0, dtype=int)
    if before is not None and rebuilt.size:
        ef_in, ef_out = float(before.ef_percent), float(clinical.ef_percent)
        if math.isfinite(ef_in) and math.isfinite(ef_out) and abs(ef_out - ef_in) >= EF_REVIEW_POINTS:
            # Named by its frames: over several beats the summary's EF is their mean, this one the first's.
            at = "" if clinical.ed_frame is None else f" (ED frame {int(clinical.ed_frame) + 1}, ES frame {int(clinical.es_frame) + 1})"
            notes.append(
                f"EF {ef_in:.1f} -> {ef_out:.1f} %{at} with {rebuilt.size} frame(s) rebuilt by the shape model "
                f"(frames {int(rebuilt[0]) + 1}-{int(rebuilt[-1]) + 1}): a change this large rests on those "
                "frames; review the volume curve"
            )
    return notes


#: The correction works on the image cropped to the drawn structures (every label's footprint over
#: the frames) grown by this many mm: most of a CAMUS image is background, which would cost every
#: per-pixel step 2-3x over. A decoded shape may outgrow what was drawn (a wall the segmenter dropped
#: in every frame); when the output comes within half this margin of a cropped edge, the correction
#: is redone on the whole image.
WORK_MARGIN_MM = 10.0


def _margin_px(margin_mm: float, spacing: tuple[float, float]) -> tuple[int, int]:
    """(rows, cols) pixels that cover ``margin_mm`` at the (row_mm, col_mm) ``spacing``."""
    return math.ceil(margin_mm / spacing[0]), math.ceil(margin_mm / spacing[1])


def work_box(labels: np.ndarray, spacing: tuple[float, float]) -> Box | None:
    """The box of the (T, H, W) ``labels`` the correction works in (``WORK_MARGIN_MM`` around what is
    drawn), or None for the whole image (nothing drawn, or the box would be most of it)."""
    footprint = mask_box(labels.max(axis=0))
    if footprint is None:
        return None
    box = grow(footprint, _margin_px(WORK_MARGIN_MM, spacing), labels.shape)
    h, w = labels.shape[-2:]
    area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
    return None if area > 0.8 * h * w else box


def _clear_of_cut_edges(out: np.ndarray, box: Box, shape: tuple[int, ...], margin_px: tuple[int, int]) -> bool:
    """Whether the (T, h, w) crop ``out`` of ``box`` keeps its structures ``margin_px`` (rows, cols) away
    from every edge of the crop that cuts the (..., H, W) image (an image edge cuts nothing)."""
    footprint = mask_box(out.max(axis=0))
    if footprint is None:
        return True
    for part, inner, size, m in zip(box, footprint, shape[-2:], margin_px):
        if part.start > 0 and inner.start < m:
            return False
        if part.stop < size and inner.stop > (part.stop - part.start) - m:
            return False
    return True


def _correct_in_box(
    correct: Callable[[np.ndarray], Corrected], work: np.ndarray, spacing: tuple[float, float], names: tuple[str, ...]
) -> Corrected:
    """``correct`` (:func:`_correct` of one sequence) on the :func:`work_box` crop of the (T, H, W) ``work``,
    put back in the image (``names``: the attribute columns); on the whole image where there is no crop
    or the output comes near a cut edge (what the crop's run warned is then not repeated)."""
    box = work_box(work, spacing)
    if box is None:
        return correct(work)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("default")  # seen here, whatever the caller's filters; re-raised below
        done = correct(np.ascontiguousarray(work[(slice(None), *box)]))
    if not _clear_of_cut_edges(done.labels, box, work.shape, _margin_px(0.5 * WORK_MARGIN_MM, spacing)):
        return correct(work)
    for w in said:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return done.placed(box, work.shape, spacing, names)


def _correct(
    work: np.ndarray,
    spacing: tuple[float, float],
    ed: int | None,
    es: int | None,
    model: Any,
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
) -> Corrected:
    """Measure the ED→ES ordered (T, H, W) ``work``, apply the method, judge the outcome, measure again."""
    n_frames = len(work)
    before = measure_shape(work, spacing, thresholds)
    # The input's clinical measures (mostly Python, holding the GIL) run beside the encoding and
    # decoding (ONNX/numpy kernels, which release it).
    background = ThreadPoolExecutor(1, thread_name_prefix="echotemporal-clinical")
    clin_before_job = background.submit(measure_clinical, work, spacing, ed, es)
    has_heart = Label.LV in before.present or Label.MYO in before.present
    if config.method == "arvae" and n_frames > 2 and has_heart and model is None:
        from echotemporal.model.registry import load_model

        model = load_model()
    anchors = (int(ed), int(es)) if ed is not None and es is not None else None
    outcome = _run_method(work, spacing, before, model if has_heart else None, config, thresholds, anchors)
    clin_before = clin_before_job.result()
    background.shutdown(wait=False)
    verdict, why, clin_after = _judge(work, spacing, ed, es, before, clin_before, outcome)
    rebuilt = outcome.reestimated is not None and bool(np.any(outcome.reestimated))
    if verdict == "worse" and rebuilt:  # only arvae re-estimates frames
        # The re-estimation of untrusted frames is what can go wrong wholesale (a long run at an end
        # rebuilt the wrong way): the in-place correction alone (robust off) may still help.
        plain = _run_method(work, spacing, before, model, dataclasses.replace(config, robust=False), thresholds, anchors)
        plain_verdict, plain_why, plain_clin = _judge(work, spacing, ed, es, before, clin_before, plain)
        if plain_verdict != "worse":
            plain.notes.append(
                f"the re-estimation of untrusted frames scored worse than the input ({why}): the frames were "
                "corrected in place instead (robust: false)"
            )
            plain.trust = outcome.trust
            outcome, verdict, why, clin_after = plain, plain_verdict, plain_why, plain_clin
    out, after = outcome.labels, outcome.after
    if verdict == "worse" and config.on_worse == "keep_input":
        outcome.notes.append(
            f"the correction scored worse than the input ({why}): the input "
            "is returned unchanged; rerun with --force (on_worse: keep_output) to keep the correction"
        )
        out, after, clin_after = work, before, clin_before
        outcome.reestimated = None
    notes = review_notes(outcome.trust, clin_after, n_frames, before=clin_before, reestimated=outcome.reestimated)
    for note in notes:
        warnings.warn(note, stacklevel=5)
        outcome.notes.append(note)
    kept = outcome.kept if outcome.kept is not None else np.zeros(n_frames, dtype=bool)
    return Corrected(out, before, after, clin_before, clin_after, kept, outcome.trust, outcome.reestimated, verdict,
                     outcome.notes, model if config.method == "arvae" else None, outcome.rounds, outcome.tolerances,
                     outcome.n_denoised, why if verdict == "worse" else None)
