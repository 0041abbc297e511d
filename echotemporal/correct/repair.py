"""Repairs for frames the latent correction left invalid or inconsistent, and the rule that accepts a
replacement only where it does no harm (valid, and no frame newly inconsistent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.correct.cleanup import cleanup_decoded
from echotemporal.correct.decoding import SequenceDecoder
from echotemporal.measure.sequence import ShapeMeasures, heart_box, measure_shape, present_labels, restore_frames

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = [
    "DistanceBlend", "accept_replacements", "bad_runs", "extrapolate_turning_ends", "full_decoding_fallback",
    "interpolate_residue", "interpolate_runs", "restore_good_frames",
]


def full_decoding_fallback(
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
    return accept_replacements(out, shape, replaced, ~shape.valid, spacing_mm, thresholds)


#: Runs of at most this many residue frames are interpolated from their good neighbours.
MAX_INTERPOLATED_RUN = 4
#: An interior run holding an invalid frame may be this long where most of the sequence is good: no
#: decoding made those frames whole, and their good neighbours still bracket them.
MAX_INVALID_RUN = 8
#: Speeds (fractions of the last good frames' motion) tried in turn for a run at an end of the
#: sequence: the motion carried on, slowed (ED and ES are turning points), stopped.
END_SPEEDS = (1.0, 0.5, 0.25, 0.0)


def bad_runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of True in (T,) ``bad``."""
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


class DistanceBlend:
    """Signed-distance interpolation in time between frames of one sequence, inside one box.

    Every label's signed distance (mm) is blended linearly in time between two frames a and b, or
    extrapolated beyond them, and each pixel takes the label of smallest distance: borders move
    continuously, so the in-between shapes are valid and consistent wherever a and b are. The
    distances of a frame are computed once.

    Args:
        labels: (T, H, W) uint8 sequence; spacing_mm: (row_mm, col_mm); box: (rows, cols) slices.
    """

    def __init__(self, labels: np.ndarray, spacing_mm: tuple[float, float], box: tuple[slice, slice]):
        self.labels, self.spacing_mm, self.box = labels, spacing_mm, box
        self._cache: dict[int, np.ndarray] = {}

    def distance(self, t: int) -> np.ndarray:
        from echotemporal.core.distances import label_distances

        if t not in self._cache:
            self._cache[t] = label_distances(self.labels[t][self.box], self.spacing_mm)
        return self._cache[t]

    def __call__(self, a: int, b: int, w: float) -> np.ndarray:
        """(h, w) labels at weight ``w`` (0 = frame a, 1 = frame b; outside [0, 1] extrapolates)."""
        from echotemporal.core.distances import labels_from_distances

        return labels_from_distances((1.0 - w) * self.distance(a) + w * self.distance(b))


def interpolate_runs(
    labels: np.ndarray, fill: np.ndarray, good: np.ndarray, spacing_mm: tuple[float, float], max_run: int
) -> np.ndarray:
    """(T,) bool frames of ``fill`` that were interpolated into ``labels`` (in place) from ``good`` ones.

    Each run of ``fill`` frames of at most ``max_run`` frames with good frames on both sides takes
    the :class:`DistanceBlend` of its nearest good neighbours, cleaned up like a decoded frame.
    """
    rows, cols = heart_box(labels, margin=2)
    blend = DistanceBlend(labels, spacing_mm, (rows, cols))
    done = np.zeros(len(labels), dtype=bool)
    present = present_labels(labels[good])
    for first, last in bad_runs(fill):
        before, after = np.flatnonzero(good[:first]), last + 1 + np.flatnonzero(good[last + 1 :])
        if last - first + 1 > max_run or not before.size or not after.size:
            continue
        a, b = int(before[-1]), int(after[0])
        frames = [blend(a, b, (t - a) / (b - a)) for t in range(first, last + 1)]
        labels[first : last + 1, rows, cols] = cleanup_decoded(np.stack(frames), spacing_mm, present)
        done[first : last + 1] = True
    return done


def extrapolate_turning_ends(
    labels: np.ndarray, fill: np.ndarray, good: np.ndarray, spacing_mm: tuple[float, float], anchors: tuple[int, ...]
) -> np.ndarray:
    """(T,) bool end frames of ``fill`` that are ED/ES ``anchors`` rebuilt in place from their two
    good neighbours as a turning point: the zero-slope quadratic ``v₁ − (v₂ − v₁)/3`` of their signed
    distances (a straight extrapolation overshoots the volume's extremum)."""
    rows, cols = heart_box(labels, margin=2)
    blend = DistanceBlend(labels, spacing_mm, (rows, cols))
    done = np.zeros(len(labels), dtype=bool)
    n = len(labels)
    present = present_labels(labels[good])
    for t, step in ((0, 1), (n - 1, -1)):
        near, far = t + step, t + 2 * step
        if t in anchors and fill[t] and 0 <= far < n and good[near] and good[far] and not fill[near]:
            labels[t, rows, cols] = cleanup_decoded(blend(near, far, -1.0 / 3.0)[None], spacing_mm, present)[0]
            done[t] = True
    return done


def interpolate_residue(
    out: np.ndarray,
    shape: ShapeMeasures,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Last resort for frames still invalid or inconsistent: the shape between their good neighbours.

    A frame that neither residual nor full decoding made valid and consistent (a glitch the model
    reconstructs, a coarse myocardium one pixel thick) takes the signed-distance interpolation of
    the good frames (valid and consistent) around its run of residue frames (at most
    :data:`MAX_INTERPOLATED_RUN` frames; :data:`MAX_INVALID_RUN` for an interior run holding an
    invalid frame, where at least half of the sequence's frames are good): every label's signed
    distance (mm) is interpolated linearly in time, or extrapolated from the two last good frames
    for a run at an end of the sequence (at the speeds of :data:`END_SPEEDS` in turn: carried on,
    slowed, stopped), and each pixel takes the label of smallest distance. Borders move
    continuously, so the in-between shapes are valid and consistent wherever their neighbours are.
    Proposals are cleaned up like decoded frames and kept only if valid and making no frame newly
    inconsistent. Should a run make a good neighbour inconsistent, the run is widened by that
    neighbour and tried again. Should the bridge of a run within ``MAX_INTERPOLATED_RUN`` frames of
    an end fail, the frames beyond it may be the broken ones (an end-systolic run whose ES is off
    too): the run is carried to that end and extrapolated like an end run, at the later end speeds.
    A short interior run that its bridge left flagged is bridged once more from one frame farther on
    each side, up to ``WIDEN_FRAMES`` (:func:`_widened_bridges`).

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).

    Returns:
        (labels, measures).
    """
    # Where most frames are residue, long bridges between the few good ones would make up most of
    # the sequence: only short runs are bridged there.
    long_runs = 2 * int(shape.clean.sum()) >= len(out)
    out, shape = _bridged_runs(out, shape, spacing_mm, thresholds, long_runs)
    return _widened_bridges(out, shape, spacing_mm, thresholds, long_runs)


def _longest_run(shape: ShapeMeasures, first: int, last: int, long_runs: bool) -> int:
    """How long the residue run of frames ``first``..``last`` (inclusive) may be to be interpolated:
    :data:`MAX_INVALID_RUN` where ``long_runs`` allows it and ``shape`` holds an invalid frame
    there, else :data:`MAX_INTERPOLATED_RUN`."""
    return MAX_INVALID_RUN if long_runs and not shape.valid[first : last + 1].all() else MAX_INTERPOLATED_RUN


def _bridged_runs(
    out: np.ndarray, shape: ShapeMeasures, spacing_mm: tuple[float, float], thresholds: AttributeThresholds,
    long_runs: bool,
) -> tuple[np.ndarray, ShapeMeasures]:
    """The bridges and end extrapolations of :func:`interpolate_residue` (same arguments and return;
    ``long_runs``: interior runs holding an invalid frame may reach :data:`MAX_INVALID_RUN` frames)."""
    rows, cols = heart_box(out, margin=2)
    blend = DistanceBlend(out, spacing_mm, (rows, cols))

    n = len(out)
    bad = ~shape.clean
    # Interior runs have one proposal each (the interpolation between their good neighbours): one
    # tried on these frames is not tried again, but a run widened by a rejection is a new proposal,
    # tried at the next end speed.
    tried: set[tuple[int, int, int, int]] = set()
    for end_speed in END_SPEEDS:
        for _ in range(2):  # a second pass for what the first left, or with widened runs
            good = ~bad
            if not bad.any() or good.sum() < 2:
                return out, shape
            replaced = out.copy()
            window = replaced[:, rows, cols]  # a view: writes go to ``replaced``
            candidate = np.zeros(n, dtype=bool)
            for first, last in bad_runs(bad):
                before = np.flatnonzero(good[:first])
                after = first + 1 + np.flatnonzero(good[first + 1 :])
                interior = long_runs and before.size > 0 and after.size > 0  # ends are extrapolated: short runs only
                if last - first + 1 > _longest_run(shape, first, last, interior):
                    continue
                if before.size and after.size:
                    a, b, near = int(before[-1]), int(after[0]), None
                    if (first, last, a, b) in tried:
                        # Bridging failed. Near an end, the frames beyond the run may be the broken
                        # ones (an end-systolic run whose ES is off too): the run is carried to that
                        # end and extrapolated from the other side, as an end run is.
                        if n - first <= MAX_INTERPOLATED_RUN and before.size >= 2:
                            last, (a, b, near) = n - 1, (int(before[-2]), int(before[-1]), 1.0)
                        elif last + 1 <= MAX_INTERPOLATED_RUN and after.size >= 2:
                            first, (a, b, near) = 0, (int(after[0]), int(after[1]), 0.0)
                        else:
                            continue
                    else:
                        tried.add((first, last, a, b))
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
                    window[t] = blend(a, b, w)
                    candidate[t] = True
            if not candidate.any():
                break
            window[candidate] = cleanup_decoded(np.ascontiguousarray(window[candidate]), spacing_mm, shape.present)
            new_out, new_shape = accept_replacements(out, shape, replaced, candidate, spacing_mm, thresholds)
            if new_out is not out:
                out, shape = new_out, new_shape
                if end_speed == END_SPEEDS[0]:
                    tried.clear()  # the first end speed bridges again what a partial take left
                bad = ~shape.clean
                blend = DistanceBlend(out, spacing_mm, (rows, cols))  # replaced frames may now serve as good frames
                continue
            # Rejected: widen each run by the good neighbours it would have made inconsistent.
            beside = np.convolve(candidate.astype(int), np.ones(3, dtype=int), mode="same") > 0
            trial = measure_shape(replaced, spacing_mm, thresholds, reference=(out, shape), validity=False)
            widen = trial.inconsistent & ~bad & beside
            if not widen.any():
                break
            bad = bad | widen
    return out, shape


def _widened_bridges(
    out: np.ndarray, shape: ShapeMeasures, spacing_mm: tuple[float, float], thresholds: AttributeThresholds,
    long_runs: bool = False,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Interior runs of residue frames still flagged between their good neighbours, bridged from one
    frame farther on each side.

    The bridge between a run's two good neighbours can stay inconsistent with them when an attribute
    is measured erratically on their shapes (the base width of a base drawn half as myocardium: the
    hinge jumps from one corner of the block to the other). The neighbours then join the run, and
    the signed-distance blend of the next good frames on each side replaces them all. Kept only where
    every frame of the widened run comes out valid and consistent and no other frame is newly
    flagged: good frames are not changed for nothing. Where that bridge flags a frame beside it, it
    reaches one frame farther again (``WIDEN_FRAMES``). Runs of at most ``MAX_INTERPOLATED_RUN`` − 2
    frames (``MAX_INVALID_RUN`` − 2 for a run holding an invalid frame where ``long_runs``).

    Args:
        out: (T, H, W) labels; shape: their measures (with validity); long_runs: as for
            :func:`_bridged_runs`.

    Returns:
        (labels, measures).
    """
    for first, last in bad_runs(~shape.clean):
        if last - first + 1 > _longest_run(shape, first, last, long_runs) - 2:
            continue
        for k in range(1, WIDEN_FRAMES + 1):
            a, b = first - 1 - k, last + 1 + k
            if a < 0 or b >= len(out) or not (shape.clean[a:first].all() and shape.clean[last + 1 : b + 1].all()):
                break
            replaced = out.copy()
            run = np.zeros(len(out), dtype=bool)
            run[a + 1 : b] = True
            interpolate_runs(replaced, run, ~run, spacing_mm, len(out))  # the blend of frames a and b
            measured = measure_shape(replaced, spacing_mm, thresholds, reference=(out, shape))
            if measured.clean[run].all() and not (measured.inconsistent & ~shape.inconsistent).any():
                out, shape = replaced, measured
                break
    return out, shape


#: How many frames farther on each side :func:`_widened_bridges` may reach for a run's bridge: one,
#: then one more each time the bridge flagged a frame beside it. Four: a step the segmenter draws in
#: one attribute (the LV's length jumping 7 mm between two frames) is spread over the bridge only
#: from that far (U-Net seed 53 case 27 as a cycle; two reached no further than flagging again).
WIDEN_FRAMES = 4


def accept_replacements(
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
    measured = measure_shape(replaced, spacing_mm, thresholds, reference=(out, shape))
    return _take_unless_flagging(
        out, shape, replaced, candidate & measured.valid, lambda take: restore_frames(measured, shape, ~take, thresholds)
    )


def _take_unless_flagging(
    out: np.ndarray,
    shape: ShapeMeasures,
    other: np.ndarray,
    take: np.ndarray,
    measures_with: Callable[[np.ndarray], ShapeMeasures],
) -> tuple[np.ndarray, ShapeMeasures]:
    """Frames ``take`` of ``other`` in place of ``out``'s, unless that flags a frame ``shape`` left unflagged.

    A frame that would be newly flagged drops the taking of itself and its two neighbours; at most
    three passes, nothing re-measured.

    Args:
        out: (T, H, W) labels; shape: their measures. other: (T, H, W) alternative labels.
        take: (T,) bool, frames to take from ``other``.
        measures_with: the measures of ``out`` with the frames of a (T,) bool mask taken from ``other``.

    Returns:
        (labels, measures): ``out`` with the frames taken, or ``out`` and ``shape`` if none can be.
    """
    flagged = shape.inconsistent
    for _ in range(3):
        if not take.any():
            break
        trial = measures_with(take)
        new = trial.inconsistent & ~flagged
        if not new.any():
            return np.where(take[:, None, None], other, out), trial
        take = take & ~(np.convolve(new.astype(int), np.ones(3, dtype=int), mode="same") > 0)
    return out, shape


def restore_good_frames(
    out: np.ndarray,
    shape: ShapeMeasures,
    work: np.ndarray,
    before: ShapeMeasures,
    good: np.ndarray,
    thresholds: AttributeThresholds,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Give the ``good`` input frames that the correction changed their drawing back, where that is safe.

    The latent projection constrains latents, not the measured attributes: it can move frames that
    need nothing (a jittered trajectory it smooths, the neighbours of a repaired frame). Such a frame
    gets the input back unless that would flag a frame the correction left consistent; then it and
    its neighbours keep the correction (at most three passes, measures reused, nothing re-measured).

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).
        work: (T, H, W) input labels; before: their measures.
        good: (T,) bool, input frames judged good (valid, unflagged, trusted, not re-estimated).

    Returns:
        (labels, measures).
    """
    restore = good & before.valid & (out != work).reshape(len(out), -1).any(axis=1)
    return _take_unless_flagging(out, shape, work, restore, lambda take: restore_frames(shape, before, take, thresholds))
