"""Re-estimate untrusted frames from the trusted ones, as whole shapes of the model (DESIGN.md §4.4).

A frame that :mod:`echotemporal.correct.trust` does not trust is not residual-corrected (its own
detail is the failure): its latent is re-estimated from the trusted frames and decoded in full.

1. **Latent trajectory fit**: per latent dim, the weighted Whittaker smoother
   ``min Σ_t w_t (z_t − z⁰_t)² + λ Σ_t (Δ²z_t)²``: trusted frames weigh 1, untrusted frames almost
   nothing, so their latents follow the trusted frames' curve (a discrete cubic spline between
   them, linear beyond the last one). The cardiac phase of a long run is carried by what is still
   measurable: the LV area and length dims keep a small weight on untrusted frames whose LV is one
   piece, and on frames whose LV is in pieces where the caller's repaired copy (the pieces joined)
   passes its checks (``phase``). Outlier-resistant: two reweighting passes (Huber) on the trusted
   frames' residuals.
2. **Decoding**: the model's full shape, resampled to the native grid; the left atrium (not
   modelled) is taken from the nearest trusted frames, where the output is background.
3. **Plausible by construction**: a decoded shape that breaks an anatomical criterion (checked on
   the model grid first, then on the native one) is replaced by the closest valid shape found near
   its latent: seeded Gaussian samples at growing radii, the valid one nearest to the latent wins
   (rejection sampling in the latent space, as Painchaud et al., "Cardiac Segmentation with Strong
   Anatomical Guarantees", IEEE TMI 2020). Orientation and position stay within the trusted frames'
   range. Where no valid shape lies near the fitted latent, the frame keeps its input (do no harm).
4. **No beat that is not there**: a run rebuilt across ED whose LV dips below both frames bracketing
   it, or across ES with a bump above both, turned the wrong way (:func:`wrong_way_runs`); the caller
   gives it back its input, or a bridge between the brackets where the input turns the wrong way too.
5. **No turn before the end**: a run at an end of the sequence (or beside an untrusted ED/ES end
   frame kept as drawn) has one bracket, and the fit past it follows the supports' trend, which
   broken frames can bend back: the LV growing again after the bracket on the way to the given ES
   (:func:`wrong_way_ends`). Such a run takes its input back where the input drew the whole run and
   does not turn itself; else it is held at the bracket in every dim (the motion stopped, never
   reversed; its shape dims are the bracket's already, see below). A frame of
   an end run that found nothing in the input (no LV or no myocardium), whose fitted shape is
   invalid and for which the latent search of step 3 finds no valid shape, takes the bracket's shape
   at its own phase, else the bracket's own shape, else the bracket's frame as drawn, rather than
   its blank input. A shape that the search finds for a frame of a judged run may not turn the run
   back past its bracket either (it is refused like an invalid one). Past the bracket the fit of
   such a run, when no frame of it carries the phase of its own, is slowed toward the ED/ES it holds
   (:func:`eased_end_runs`): a straight line kept the supports' speed to the end and overshot a
   blank ED. And past the bracket of every end run of :data:`END_RUN_MIN` frames or more, judged
   or not, only the phase dims follow the fit; the others are held at the bracket's latent
   (:func:`held_end_shapes`): the supports' drift in the wall and the pose, carried on for a dozen
   frames, drew shapes the sequence never showed.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import scipy.linalg

from echotemporal.core.labels import LV, MYO
from echotemporal.core.memo import ArrayMemo
from echotemporal.correct.cleanup import MAX_MODELLED
from echotemporal.correct.decoding import SequenceDecoder
from echotemporal.correct.repair import bad_runs
from echotemporal.correct.solvers import penalty_bands

__all__ = [
    "WALL_SUPPORT", "eased_end_runs", "fit_latent_trajectory", "held_end_shapes", "lv_areas", "wrong_way_ends", "wrong_way_runs", "reestimate_frames", "search_valid_latents", "wall_support",
    "with_drawn_lv",
]

#: Smoothing weight of the trajectory fit (per second difference, latent units).
FIT_LAMBDA = 0.1
#: Weight of an untrusted frame in the fit (none would make the system singular at the ends).
UNTRUSTED_WEIGHT = 1e-4
#: Weight of an untrusted frame with an intact LV in the LV area/length dims (the phase carrier).
PHASE_WEIGHT = 0.5
#: A rebuilt ED/ES frame whose drawn LV, intact on its own evidence, lies beyond the rebuilt one (away
#: from the trusted frames' median) by more than this fraction of the rebuilt LV area keeps its LV.
BEYOND_BRIDGE = 0.10
#: A turning frame proposed by the drawn LV curve (no ED/ES given) keeps its drawn LV only where at
#: least this fraction of the disagreement with the rebuilt LV is wall (:func:`wall_support`): a clear
#: majority. On the coherent tuning set, an ES crossed by a broken MYO run scores 0.59-0.86, an LV cut
#: at the apex, leaking or swapped at the base 0.13-0.50.
WALL_SUPPORT = 0.55
#: Latent search: samples per radius, radii in units of the sequence's per-dim latent spread.
SEARCH_SAMPLES = 24
SEARCH_RADII = (0.25, 0.5, 1.0, 2.0)
#: Samples of a radius decoded at once, nearest first (a divisor of :data:`SEARCH_SAMPLES`).
SEARCH_CHUNK = 4


def fit_latent_trajectory(z0: np.ndarray, weights: np.ndarray, lam: float = FIT_LAMBDA, passes: int = 2) -> np.ndarray:
    """Weighted, outlier-resistant Whittaker fit of every latent dim (module docstring, step 1).

    Args:
        z0: (T, D) latents (posterior means), frame 0 first.
        weights: (T, D) or (T,) non-negative weights (1 = trusted).
        lam: weight of the squared second differences.
        passes: Huber reweighting passes after the first fit.

    Returns:
        (T, D) float64 fitted latents.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    n, dims = z0.shape
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64).reshape(n, -1), (n, dims)).copy()
    if n < 3:
        return z0.copy()
    penalty = lam * penalty_bands(n)  # a writable copy of the shared (read-only) DᵀD bands
    base = w.copy()
    fit = z0.copy()
    for step in range(passes + 1):
        for d in range(dims):
            ab = penalty.copy()
            ab[2] += w[:, d]
            fit[:, d] = scipy.linalg.solveh_banded(ab, w[:, d] * z0[:, d])
        if step == passes:
            break
        residual = np.abs(z0 - fit)
        trusted = base >= 0.5
        scale = np.array([np.median(residual[trusted[:, d], d]) if trusted[:, d].any() else 0.0 for d in range(dims)])
        k = 3.0 * np.maximum(scale, 1e-6)  # Huber corner: 3 typical residuals
        w = base * np.minimum(1.0, k / np.maximum(residual, 1e-12))
    return fit


def _carry_from(labels: np.ndarray, frames: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """(n, H, W) labels whose unmodelled labels (LA) are the majority of the nearest trusted frames."""
    good = np.flatnonzero(trusted)
    out = np.zeros((len(frames),) + labels.shape[1:], dtype=labels.dtype)
    unmodelled = range(MAX_MODELLED + 1, int(labels[good].max(initial=0)) + 1)  # one pass, not a sort per frame
    for i, t in enumerate(frames):
        order = good[np.argsort(np.abs(good - t), kind="stable")][:2]
        for value in unmodelled:
            out[i][np.mean([labels[s] == value for s in order], axis=0) >= 0.5] = value
    return out


def search_valid_latents(
    z: np.ndarray,
    model: Any,
    grid_spacing_mm: float,
    spread: np.ndarray,
    *,
    seed: int = 0,
    accept: Any = None,
) -> np.ndarray | None:
    """The latent nearest to ``z`` whose decoded grid shape is anatomically valid (module step 3).

    Args:
        z: (D,) latent whose decoding is invalid.
        model: the shape model (``decode``: (N, D) -> (N, C, G, G) probabilities).
        grid_spacing_mm: the model grid's pixel size for this sequence (isotropic).
        spread: (D,) per-dim scale of the samples (the sequence's latent spread).
        seed: random seed (the search is deterministic).
        accept: optional ``(N, G, G) labels -> (N,) bool`` extra test (e.g. orientation range).

    Returns:
        (D,) the accepted latent, or None if no sample at any radius is valid. A search asked again
        of the same model (``accept`` None) is answered from memory (:data:`SEARCH_MEMO`).
    """
    if accept is not None:
        return _search(z, model, grid_spacing_mm, spread, seed, accept)
    key = (np.asarray(z, dtype=np.float64).tobytes(), np.asarray(spread, dtype=np.float64).tobytes(),
           float(grid_spacing_mm), int(seed))
    with _FOUND_LOCK:
        found = _FOUND.setdefault(model, ArrayMemo(SEARCH_MEMO))
    return found.answer(key, lambda: _search(z, model, grid_spacing_mm, spread, seed, None))


#: Latents :func:`search_valid_latents` found (or None), per model (dropped with it), keyed by what
#: decides them: the search is deterministic, and a sequence asks the same questions again (its
#: readings share frames; a crop whose output comes near a cut edge is corrected again on the whole
#: image). U-Net seed 53 case 11 (48 frames, nearly all broken) asks 300, 226 of them different.
_FOUND: "weakref.WeakKeyDictionary[Any, ArrayMemo]" = weakref.WeakKeyDictionary()
_FOUND_LOCK = threading.Lock()
#: Most searches remembered per model (each a (D,) latent), the least recently asked dropped first.
SEARCH_MEMO = 4096


def _search(z: np.ndarray, model: Any, grid_spacing_mm: float, spread: np.ndarray, seed: int, accept: Any) -> np.ndarray | None:
    """:func:`search_valid_latents`, computed."""
    from echotemporal.measure.anatomy import check_validity

    rng = np.random.default_rng(seed)
    for radius in SEARCH_RADII:
        steps = rng.standard_normal((SEARCH_SAMPLES, len(z))) * spread * radius
        candidates = (z[None] + steps).astype(np.float32)
        # Nearest first, a few at a time: the first valid one is the nearest valid one, and the
        # farther ones need not be decoded (a sample's decoding and checks do not depend on the others).
        order = np.argsort(np.linalg.norm(steps / spread, axis=1), kind="stable")
        for chunk in np.array_split(order, SEARCH_SAMPLES // SEARCH_CHUNK):
            grid = np.asarray(model.decode(candidates[chunk])).argmax(axis=1).astype(np.uint8)
            ok = np.asarray(check_validity(grid, (grid_spacing_mm, grid_spacing_mm), present=(1, 2)), dtype=bool).all(axis=1)
            if accept is not None:
                ok &= np.asarray(accept(grid), dtype=bool)
            if ok.any():
                return candidates[chunk[int(np.argmax(ok))]].astype(np.float64)
    return None


def _fit_weights(z0: np.ndarray, trusted: np.ndarray, phase_dims: np.ndarray, lv_intact: np.ndarray) -> np.ndarray:
    weights = np.where(trusted, 1.0, UNTRUSTED_WEIGHT)[:, None] * np.ones(z0.shape[1])
    if phase_dims.size:
        weights[np.ix_(~trusted & lv_intact, phase_dims)] = PHASE_WEIGHT
    return weights


def _with_phase(z0: np.ndarray, phase_dims: np.ndarray, phase: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(latents the fit follows, (T,) bool frames carrying the phase only) given ``phase`` =
    ((T,) bool carriers, (T, D) their latents): the carriers' phase dims are replaced."""
    if phase is None or not phase_dims.size:
        return z0, np.zeros(len(z0), dtype=bool)
    carriers, latents = phase
    target = z0.copy()
    target[np.ix_(carriers, phase_dims)] = latents[np.ix_(carriers, phase_dims)]
    return target, np.asarray(carriers, dtype=bool)


def reestimate_frames(
    labels: np.ndarray,
    z0: np.ndarray,
    trusted: np.ndarray,
    targets: np.ndarray,
    alignment: Any,
    model: Any,
    *,
    spacing_mm: tuple[float, float],
    present: tuple[int, ...],
    phase_dims: np.ndarray,
    check: Any,
    lv_intact: np.ndarray,
    turning: tuple[int, ...] = (),
    lv_drawn_ok: np.ndarray | None = None,
    corroborate: tuple[int, ...] = (),
    phase: tuple[np.ndarray, np.ndarray] | None = None,
    given: tuple[int, int] | None = None,
) -> np.ndarray:
    """Replace the untrusted frames by the model's shapes at latents fitted to the trusted frames.

    Args:
        labels: (T, H, W) uint8 input; z0: (T, D) its latents (posterior means).
        trusted: (T,) bool, the frames that support the fit (at least two).
        targets: (T,) bool, the frames to re-estimate (untrusted; frames neither trusted nor targets
            are left as they are and do not support the fit).
        alignment: the sequence's alignment (``encode_sequence``); model: the shape model.
        spacing_mm: native (row_mm, col_mm); present: labels present in the sequence.
        phase_dims: latent dims of LV area and length (the phase carriers).
        check: ``((n, H, W) labels, (n,) their 0-based frames in the sequence[, drawn_lv (n,) bool])
            -> (n,) bool`` native validity of candidate frames (silent: rejected candidates are not the output);
            ``drawn_lv``: frames that keep their drawn LV for lying beyond the bridge (their drawn pose
            widens the allowed range).
        lv_intact: (T,) bool, frames whose LV alone is right: their LV is kept as drawn (the rest
            re-estimated around it) wherever the composed frame is valid.
        turning: the ED/ES frames (turning points of the LV curve).
        lv_drawn_ok: (T,) bool, frames whose drawn LV passes its own checks (one piece, no hole, open at
            the base, on the myocardial level). A rebuilt turning frame among them whose drawn LV is
            more extreme than the rebuilt one (``_beyond_bridge``) counts as ``lv_intact``: a fit
            bridged across a turning point falls short of the extremum, never past it.
        corroborate: turning frames only proposed by the drawn LV curve (no ED/ES given): their drawn
            LV counts only where the walls confirm it (:func:`wall_support` ≥ :data:`WALL_SUPPORT`).
        phase: ((T,) bool, (T, D) latents): frames whose LV is broken but whose repaired copy (the
            caller's) still carries the phase: the fit follows those latents in the phase dims, as
            for ``lv_intact`` frames, but the frame's LV is not kept.
        given: the (ED, ES) frames when given (they tell which way an end run heads; module step 5).

    Returns:
        (T, H, W) uint8, ``labels`` with the re-estimated frames replaced. A frame whose decoding
        stays invalid after the latent search (no valid shape near the fitted latent: the fit left the
        sequence's own range, as a long run at an end extrapolated from the other end's trend does)
        keeps its input: the consistency correction then repairs it as drawn, which never goes as far
        wrong as an implausible rebuilt shape.
    """
    frames = np.flatnonzero(targets & ~trusted)
    carry = _carry_from(labels, frames, trusted)
    decoder = SequenceDecoder(carry, alignment, model, None, cleanup=True, present=present)
    out = labels.copy()

    target, carriers = _with_phase(z0, phase_dims, phase)

    rebuilt = np.zeros(len(labels), dtype=bool)
    rebuilt[frames] = True

    def bridge(intact: np.ndarray) -> np.ndarray:
        """(T, D) latents fitted with ``intact`` frames carrying the phase; decodes ``frames`` into ``out``."""
        fitted = fit_latent_trajectory(target, _fit_weights(z0, trusted, phase_dims, intact | carriers))
        fitted[trusted] = z0[trusted]
        fitted = held_end_shapes(eased_end_runs(fitted, rebuilt, trusted, given, intact | carriers), rebuilt, trusted, phase_dims)
        out[frames] = decoder(fitted[frames])
        return fitted

    z = bridge(lv_intact)
    promoted = np.zeros(len(labels), dtype=bool)
    promoted[_beyond_bridge(labels, out, trusted, turning, lv_drawn_ok, lv_intact, frames, corroborate)] = True
    if promoted.any():  # the fit again, with the promoted frames carrying the phase
        lv_intact = lv_intact | promoted
        z = bridge(lv_intact)

    def decode_at(rows: np.ndarray, latents: np.ndarray) -> np.ndarray:
        """(n, H, W) decodings of ``latents`` (n, D) for the frames ``frames[rows]``."""
        return SequenceDecoder(carry[rows], alignment, model, None, cleanup=True, present=present)(latents)

    shape_dims = np.setdiff1d(np.arange(z0.shape[1]), phase_dims)
    index = {int(t): i for i, t in enumerate(frames)}
    restored = _hold_turned_ends(labels, out, z, rebuilt, trusted, given, decode_at, index)
    # Every frame of an end run beyond the supports, and its bracket (judged or not).
    ends = {t: bracket for lo, hi, bracket in _bracketed_end_runs(rebuilt, trusted) for t in range(lo, hi + 1)}
    # The way each judged end run heads (step 5): a shape the search below finds may not turn it back.
    heading = {t: (bracket, toward_ed) for lo, hi, bracket, toward_ed in _judged_end_runs(rebuilt, trusted, given)
               for t in range(lo, hi + 1)}
    spread = np.maximum(z0.std(axis=0), 0.1 * np.median(z0.std(axis=0)) + 1e-3)
    valid = np.asarray(check(out[frames], frames), dtype=bool)
    for i in np.flatnonzero(~valid & ~restored[frames]):
        t = int(frames[i])
        out[t] = labels[t]  # unless a valid shape is found near the fit (do no harm)
        tries = [lambda: search_valid_latents(z[t], model, float(alignment.scale_mm), spread, seed=t)]
        blank_end = t in ends and _found_nothing(labels[t])
        if blank_end:  # a blank frame past the supports: else the bracket's shape
            tries.append(lambda: _held_at(z, t, ends[t], shape_dims))  # at its own phase,
            tries.append(lambda: _held_at(z, t, ends[t], np.arange(z.shape[1])))  # else the bracket's own
        for attempt in tries:
            found = attempt()
            # z[t] itself was decoded above and found invalid: past the bracket of an end run of
            # END_RUN_MIN frames or more its shape dims are the bracket's already (held_end_shapes).
            if found is None or np.array_equal(found, z[t]):
                continue
            candidate = decode_at(np.array([i]), found[None])
            if t in heading and _turns_wrong_way(lv_areas(candidate), lv_areas(out[[heading[t][0]]]), heading[t][1]):
                continue
            if bool(np.asarray(check(candidate, frames[i : i + 1]), dtype=bool)[0]):
                out[t] = candidate[0]
                break
        else:
            if blank_end:
                # No valid shape anywhere near (the decoded LV misses the LA carried over, say): the
                # bracket's frame as drawn, the motion stopped there; the bracket is trusted, so the
                # consistency correction repairs it as it repairs the bracket. Left blank, the frame
                # was extrapolated later from what that correction made of its neighbours.
                out[t] = labels[ends[t]]
    _keep_intact_lv(out, labels, frames[lv_intact[frames]], check, promoted)
    return out


#: How far an end run's fit is slowed toward the ED/ES it holds (:func:`eased_end_runs`): the share
#: of the supports' speed lost by the turning frame (1: stopped there; 0: the straight line). On the
#: U-Net tuning sets with 8 blank frames through ED or ES (400- and 150-step seed 7), measured against
#: what the correction gives when those frames are drawn (mean volume differences): the straight
#: line overshoots ED by 7 and 11 mL and ES by 1-2 mL; stopped (1), it lands within 1-3 mL of ED
#: but 3-4 mL short of ES; 0.5 lands 1.8 and 5.5 mL past ED and 1 mL short of ES.
END_EASE = 0.5


def eased_end_runs(
    fitted: np.ndarray, rebuilt: np.ndarray, support: np.ndarray, given: tuple[int, int] | None, carriers: np.ndarray
) -> np.ndarray:
    """The fit past the bracket of each judged end run slowed toward the ED or ES it holds.

    Past its last support the fit is a straight line: the supports' speed kept to the end of the
    sequence. The heart slows into ED and ES (the volume curve turns with zero slope there), so a
    run of frames that found nothing (blank) through ED overshot it: LV volume at a blank ED rebuilt
    7-12 mL above what the correction gives when the same U-Net's ED is drawn, on every U-Net set
    measured. Each judged run (:func:`wrong_way_ends`; ED/ES given) with no frame carrying the phase
    of its own (``carriers``: drawn evidence, followed as it is) has its frames' latents moved along
    the fitted line to the distance ``τ = d − a·d²/(2D)`` from the bracket instead of ``d`` (``D``:
    frames from the bracket to the held ED/ES, ``a`` = :data:`END_EASE`): the bracket's value and
    speed, the speed falling linearly to ``1 − a`` of it at ED/ES.

    Args:
        fitted: (T, D) fitted latents; rebuilt: (T,) bool re-estimated frames; support: (T,) bool the
            fit's supports; given: (ED, ES) or None (nothing is eased); carriers: (T,) bool frames
            whose phase dims follow drawn evidence.

    Returns:
        (T, D) latents (a copy where any run is eased, else ``fitted`` itself).
    """
    out = fitted
    for lo, hi, bracket, toward_ed in _judged_end_runs(rebuilt, support, given):
        if carriers[lo : hi + 1].any():
            continue
        turn = given[0] if toward_ed else given[1]
        steps = np.arange(lo, hi + 1) if bracket < lo else np.arange(hi, lo - 1, -1)  # away from the bracket
        line = np.concatenate([fitted[[bracket]], fitted[steps]])  # (n + 1, D), at distances 0..n
        span = abs(turn - bracket)
        d = np.arange(1, len(steps) + 1, dtype=np.float64)
        tau = d - END_EASE * d**2 / (2.0 * span)
        if out is fitted:
            out = fitted.copy()
        grid = np.arange(len(line), dtype=np.float64)
        for k in range(fitted.shape[1]):
            out[steps, k] = np.interp(tau, grid, line[:, k])
    return out


def held_end_shapes(fitted: np.ndarray, rebuilt: np.ndarray, support: np.ndarray, phase_dims: np.ndarray) -> np.ndarray:
    """The fit past the bracket of each end run of :data:`END_RUN_MIN` frames or more held at the
    bracket's latent in every dim but the phase dims.

    Past its last support the fit is a straight line in every dim. In the phase dims (LV area and
    length) that line is the motion, which the drawn LV may carry. In the others (the wall, the
    orientation, the position) it carries the supports' small drift over up to a dozen frames into a
    shape the sequence never showed: a U-Net's cycle (seed 127 case 32, no ED/ES) whose 13 trusted
    frames all lie around ES had its 10 frames at each end rebuilt at LV Dice 0.73-0.77 against
    the truth (drawn: 0.77-0.82; its supports' 0.78-0.88). The supports tell nothing about the shape past them but
    the bracket's own.

    Args:
        fitted: (T, D) fitted latents; rebuilt: (T,) bool re-estimated frames; support: (T,) bool the
            fit's supports; phase_dims: (k,) the phase dims, left to the fit.

    Returns:
        (T, D) latents (a copy where any run is held, else ``fitted`` itself).
    """
    shape_dims = np.setdiff1d(np.arange(fitted.shape[1]), phase_dims)
    out = fitted
    for lo, hi, bracket in _bracketed_end_runs(rebuilt, support):
        if hi - lo + 1 < END_RUN_MIN:
            continue
        if out is fitted:
            out = fitted.copy()
        out[lo : hi + 1, shape_dims] = fitted[bracket, shape_dims]
    return out


def lv_areas(labels: np.ndarray) -> np.ndarray:
    """(T,) float64 LV pixel counts of (T, H, W) labels."""
    return (np.asarray(labels) == LV).reshape(len(labels), -1).sum(axis=1).astype(np.float64)


def _held_at(z: np.ndarray, t: int, bracket: int, dims: np.ndarray) -> np.ndarray:
    """(D,) frame ``t``'s latent from ``z`` (T, D) with the dims ``dims`` taken from frame ``bracket``."""
    held = z[t].copy()
    held[dims] = z[bracket, dims]
    return held


def _found_nothing(frame: np.ndarray) -> bool:
    """Whether an (H, W) input frame lacks the LV or the myocardium (a segmenter that found nothing)."""
    return not (frame == LV).any() or not (frame == MYO).any()


def _hold_turned_ends(
    labels: np.ndarray, out: np.ndarray, z: np.ndarray, rebuilt: np.ndarray, trusted: np.ndarray,
    given: tuple[int, int] | None, decode_at: Any, index: dict[int, int],
) -> np.ndarray:
    """Redo the end runs turned the wrong way (:func:`wrong_way_ends`, module step 5), in place.

    Such a run takes its input back where every frame of it drew an LV and a myocardium and the
    drawn LV does not turn the wrong way itself (the consistency correction then repairs it as
    drawn). Otherwise every dim is held at its bracket's latent (the motion stopped at the bracket,
    never reversed): its shape dims are held there already (:func:`held_end_shapes`), and the phase
    dims are what turned it. ``z`` (T, D) and ``out``
    (T, H, W) are updated; ``rebuilt``: (T,) bool the re-estimated frames; ``given``: the (ED, ES)
    frames or None; ``decode_at(rows, latents)`` decodes for the re-estimated frames' rows, ``index``
    maps a frame to its row.

    Returns:
        (T,) bool, the frames given their input back.
    """
    restored = np.zeros(len(labels), dtype=bool)
    drawn = lv_areas(labels)
    for lo, hi, bracket, toward_ed in wrong_way_ends(lv_areas(out), rebuilt, trusted, given):
        run = np.arange(lo, hi + 1)
        drawn_whole = not any(_found_nothing(labels[t]) for t in run)
        if drawn_whole and not _turns_wrong_way(drawn[run], lv_areas(out[[bracket]]), toward_ed):
            out[run], restored[run] = labels[run], True
            continue
        # Its shape dims are already the bracket's (:func:`held_end_shapes`): what turns it is the
        # phase, so every dim is held.
        held = np.repeat(z[[bracket]], len(run), axis=0)
        out[run], z[run] = decode_at(np.array([index[int(t)] for t in run]), held), held
    return restored


def _beyond_bridge(
    labels: np.ndarray,
    rebuilt: np.ndarray,
    trusted: np.ndarray,
    turning: tuple[int, ...],
    lv_drawn_ok: np.ndarray | None,
    lv_intact: np.ndarray,
    frames: np.ndarray,
    corroborate: tuple[int, ...] = (),
) -> np.ndarray:
    """Rebuilt frames whose drawn LV is more extreme than the rebuilt one, in runs across a turning point.

    A rebuilt ED/ES frame whose drawn LV passes its own checks and lies beyond the rebuilt LV (away
    from the trusted frames' median, by more than ``BEYOND_BRIDGE`` of the rebuilt area) is returned
    with the unbroken stretch of rebuilt frames around it that meet the same two tests. A turning
    frame in ``corroborate`` (proposed by the drawn curve, not given) also needs its walls' support.

    Args:
        labels: (T, H, W) input; rebuilt: (T, H, W) with ``frames`` (n,) re-estimated; trusted,
        lv_drawn_ok, lv_intact: (T,) bool; turning: ED/ES frames; corroborate: the proposed ones.

    Returns:
        (m,) int, the frames (0-based, increasing).
    """
    if lv_drawn_ok is None or not trusted.any() or not len(frames):
        return np.zeros(0, dtype=int)
    middle = float(np.median([np.count_nonzero(labels[t] == LV) for t in np.flatnonzero(trusted)]))
    drawn = np.array([np.count_nonzero(labels[t] == LV) for t in frames], dtype=np.float64)
    bridged = np.array([np.count_nonzero(rebuilt[t] == LV) for t in frames], dtype=np.float64)
    beyond = ((drawn - bridged) * (bridged - middle) > 0) & (np.abs(drawn - bridged) > BEYOND_BRIDGE * bridged)
    beyond &= lv_drawn_ok[frames] & ~lv_intact[frames]
    keep = np.zeros(len(frames), dtype=bool)
    for i, t in enumerate(frames):
        confirmed = t not in corroborate or wall_support(labels[t], rebuilt[t]) >= WALL_SUPPORT
        if t in turning and beyond[i] and confirmed:  # the unbroken stretch of such frames around it
            lo, hi = i, i
            while lo > 0 and beyond[lo - 1] and frames[lo - 1] == frames[lo] - 1:
                lo -= 1
            while hi < len(frames) - 1 and beyond[hi + 1] and frames[hi + 1] == frames[hi] + 1:
                hi += 1
            keep[lo : hi + 1] = True
    return frames[keep]


def wall_support(drawn: np.ndarray, rebuilt: np.ndarray) -> float:
    """Fraction of the pixels where the drawn and the rebuilt LV disagree that the other one's
    myocardium covers: drawn wall where the rebuilt LV reaches beyond the drawn one, rebuilt wall where
    the drawn LV reaches beyond the rebuilt one.

    A full cycle's ES inside a broken run: the rebuilt LV, bridged from trusted frames near ED, spills
    over the drawn wall, which moved in with the drawn LV (high support: the drawn LV is right). An
    LV cut at the apex or leaking below the base disagrees with the rebuilt one where the drawn frame
    holds no wall (low support: the drawn LV is the failure).

    Args:
        drawn, rebuilt: (H, W) uint8 labels of one frame.

    Returns:
        In [0, 1]; 0 when the two LVs agree everywhere.
    """
    drawn_lv, rebuilt_lv = drawn == LV, rebuilt == LV
    disagree = int(np.count_nonzero(drawn_lv ^ rebuilt_lv))
    walls = np.count_nonzero(rebuilt_lv & ~drawn_lv & (drawn == MYO)) + np.count_nonzero(drawn_lv & ~rebuilt_lv & (rebuilt == MYO))
    return float(walls) / disagree if disagree else 0.0


def with_drawn_lv(decoded: np.ndarray, drawn_lv: np.ndarray) -> np.ndarray:
    """A copy of the (..., H, W) label maps ``decoded`` with the LV ``drawn_lv`` (same shape, bool) put
    in: the decoded LV around the drawn one becomes myocardium, the decoded myocardium (or anything
    else) under the drawn LV becomes LV."""
    composed = np.array(decoded, copy=True)
    composed[(composed == LV) & ~drawn_lv] = MYO
    composed[drawn_lv] = LV
    return composed


def _keep_intact_lv(out: np.ndarray, labels: np.ndarray, frames: np.ndarray, check: Any, beyond: np.ndarray) -> None:
    """Put the input LV of ``frames`` back into their re-estimated shapes, in place, where valid.

    The decoded LV around the drawn one becomes myocardium, the decoded myocardium under the drawn
    LV becomes LV: only the broken rest of the frame is the model's. Frames kept for lying beyond the
    bridge (``beyond``, (T,) bool; ``_beyond_bridge``) are checked against a pose range that reaches
    their drawn pose, and where the wall would close under a drawn LV smaller than the decoded one,
    ``_open_composition`` keeps the base open.
    """
    if not len(frames):
        return
    drawn = labels[frames] == LV
    composed = with_drawn_lv(out[frames], drawn)
    ok = np.asarray(check(composed, frames, drawn_lv=beyond[frames]), dtype=bool)
    out[frames[ok]] = composed[ok]
    retry = np.flatnonzero(~ok & beyond[frames])
    if retry.size:
        opened = np.stack([_open_composition(out[frames[i]], drawn[i]) for i in retry])
        ok = np.asarray(check(opened, frames[retry], drawn_lv=beyond[frames[retry]]), dtype=bool)
        out[frames[retry[ok]]] = opened[ok]


def _open_composition(decoded: np.ndarray, drawn_lv: np.ndarray) -> np.ndarray:
    """(H, W) ``decoded`` with the LV ``drawn_lv`` (H, W bool) put in, the decoded LV around it split
    between wall and outside by nearness (``_keep_intact_lv``)."""
    from scipy import ndimage

    from echotemporal.core.boxes import mask_box

    out = decoded.copy()
    box = mask_box((decoded == LV) | (decoded == MYO) | drawn_lv, margin=2)
    if box is None:  # nothing drawn nor decoded: nothing to compose
        return out
    rows, cols = box
    crop, lv = out[rows, cols], drawn_lv[rows, cols]
    ring = (crop == LV) & ~lv
    outside = (crop != LV) & (crop != MYO)
    if ring.any() and outside.any() and (crop == MYO).any():
        to_outside, (ri, ci) = ndimage.distance_transform_edt(~outside, return_indices=True)
        to_wall = ndimage.distance_transform_edt(crop != MYO)
        nearer_out = ring & (to_outside < to_wall)
        nearest = crop[ri, ci]
        crop[ring] = MYO
        crop[nearer_out] = nearest[nearer_out]
    crop[lv] = LV
    return out


#: A rebuilt run across ED may not fall below the lower of its two bracketing frames' LV areas by more
#: than this fraction (across ES: not rise above the higher one), about 8 % in volume. The one run of the
#: tuning sets' rotated cycles (ES -> ED -> ES) it catches dipped 9 % in area (13 % in volume) below both.
WRONG_WAY = 0.05


def wrong_way_runs(
    drawn_area: np.ndarray, rebuilt_area: np.ndarray, rebuilt: np.ndarray, support: np.ndarray, turning: tuple[int, ...],
    drawn_turns: tuple[int, ...] = (),
) -> np.ndarray:
    """Interior rebuilt runs whose LV area curve turns the wrong way across a turning point.

    A run across ED (a turning frame whose drawn LV area lies above the supports' median) holds the
    volume maximum: its rebuilt LV should reach the level of the frames bracketing it. The fit
    follows the slopes of the supports next to it, and a segmenter's flicker there (the frames before
    ED drawn smaller, say) can bend it into a dip below both brackets: a second beat that is not
    there. Across ES, likewise, a bump above both. A run across ES that never dips below its brackets
    where the drawn curve dips past them (:func:`_flattened`) has lost the volume minimum, when the
    drawn dip can be believed: a turning frame of ``drawn_turns`` inside the run (a segmenter's
    glitch also dips the drawn curve). Runs at an end (one bracket) are not judged. A run holding both an
    ED and an ES (a beat the drawn curve shows inside it and the supports do not) is judged only on
    rising past every LV drawn in it and its brackets (:func:`_beyond_drawn`): the fit between two
    brackets of a U-Net that drew mid-systole too big climbed to an ES bigger than any frame drawn.

    Args:
        drawn_area: (T,) LV areas of the input (any unit); rebuilt_area: (T,) of the output.
        rebuilt: (T,) bool, the re-estimated frames; support: (T,) bool, the frames the fit followed.
        turning: ED/ES frames (given or proposed by the drawn curve).
        drawn_turns: those of them whose drawn dip can be believed (``arvae._unturned`` says which).

    Returns:
        (T,) bool, the frames of the runs turned the wrong way.
    """
    out = np.zeros(len(rebuilt), dtype=bool)
    if not support.any():
        return out
    middle = float(np.median(drawn_area[support]))
    for lo, hi in bad_runs(rebuilt):
        if lo == 0 or hi == len(rebuilt) - 1 or not (support[lo - 1] and support[hi + 1]):
            continue
        inside = [t for t in turning if lo <= t <= hi]
        peaks = [t for t in inside if drawn_area[t] > middle]
        if not inside:
            continue
        if len(peaks) < len(inside) and peaks:
            # The drawn curve beats inside the run (a turn each way), which the fit between the
            # brackets cannot follow; it may still not rise past everything drawn there.
            out[lo : hi + 1] = _beyond_drawn(rebuilt_area[lo : hi + 1], drawn_area[lo - 1 : hi + 2])
            continue
        ends, run = rebuilt_area[[lo - 1, hi + 1]], rebuilt_area[lo : hi + 1]
        believed = not peaks and any(t in drawn_turns for t in inside)  # only across ES (see _flattened)
        out[lo : hi + 1] = _turns_wrong_way(run, ends, toward_ed=bool(peaks)) or believed and _flattened(
            run, ends, drawn_area[lo : hi + 1], drawn_area[[lo - 1, hi + 1]]
        )
    return out


#: A rebuilt run across ES whose dip below its brackets is less than this share of the drawn run's
#: has bridged the volume minimum (:func:`_flattened`).
FLAT_SHARE = 0.5


def _flattened(run: np.ndarray, brackets: np.ndarray, drawn_run: np.ndarray, drawn_brackets: np.ndarray) -> bool:
    """Whether a rebuilt run across ES (LV areas ``run`` (n,) and ``brackets`` (2,)) dips below its
    brackets by less than :data:`FLAT_SHARE` of the drawn run's dip below its own (``drawn_run``,
    ``drawn_brackets``), which exceeds :data:`WRONG_WAY`: the fit bridged the volume minimum the EF is
    read on (a U-Net's full cycle with only its ES frame invalid: rebuilt flat across ES, EF 34 -> 15 %;
    one whose wall is in pieces over 13 frames around ES: rebuilt 13 % under its brackets where the
    drawn LV falls 47 %, EF error 2 -> 42). Runs across ED are not judged so: a segmenter's
    over-segmentation around ES draws a peak there that no ED holds."""
    drawn_dip = 1.0 - drawn_run.min() / drawn_brackets.min()
    return bool(drawn_dip > WRONG_WAY and 1.0 - run.min() / brackets.min() < FLAT_SHARE * drawn_dip)


def _beyond_drawn(run: np.ndarray, drawn: np.ndarray) -> bool:
    """Whether a rebuilt run's LV areas ``run`` (n,) rise above every drawn area ``drawn`` (m,) (the
    run's and its brackets') by more than :data:`WRONG_WAY`."""
    return bool(run.max() > (1.0 + WRONG_WAY) * drawn.max())


def _turns_wrong_way(run: np.ndarray, brackets: np.ndarray, toward_ed: bool) -> bool:
    """Whether a rebuilt run's LV areas ``run`` (n,) dip below every bracketing area ``brackets`` (k,)
    by more than :data:`WRONG_WAY` (a run toward or across ED), or rise above every one (toward ES)."""
    if toward_ed:
        return bool(run.min() < (1.0 - WRONG_WAY) * brackets.min())
    return bool(run.max() > (1.0 + WRONG_WAY) * brackets.max())


#: End runs shorter than this are not judged by :func:`wrong_way_ends`: a frame or two past the last
#: support is within the flicker of a drawn turning point (a 1-frame ES rebuilt 6 % above its bracket
#: was right on a tuning sequence).
END_RUN_MIN = 3


def wrong_way_ends(
    rebuilt_area: np.ndarray, rebuilt: np.ndarray, support: np.ndarray, given: tuple[int, int] | None
) -> list[tuple[int, int, int, bool]]:
    """Rebuilt runs at an end of the sequence whose LV area turns back before the ED or ES they hold.

    An untrusted run reaching an end has one bracket, the support next to it, and the fit
    extrapolates past it from the supports' trend, which a segmenter's broken frames (blank ones, a
    curve drawn without contraction) can bend: a half-sequence whose last 8 frames, ES among them,
    were rebuilt with the LV growing again after the bracket reads an ESV above the frames before
    it. A run holding the given ES may not rise above its bracket by more than :data:`WRONG_WAY`;
    one holding the given ED may not fall below it. Only the given ED/ES tell the way: without them
    (a full cycle, its turning points detected on a drawn curve that broken frames trace) the
    supports' own curve is no guide, as supports that all lie on the ES plateau of a cycle, their
    flicker reading "falling", showed on a held-out set. Runs shorter than :data:`END_RUN_MIN`, and
    runs holding both or neither, are not judged.

    Args:
        rebuilt_area: (T,) LV areas of the output (any unit); rebuilt: (T,) bool, the re-estimated
            frames; support: (T,) bool, the frames the fit followed.
        given: (ED, ES) frames when given (an Info cfg), else None (nothing is judged).

    Returns:
        (first, last, bracket, toward ED) of each end run turned the wrong way (0-based frames).
    """
    return [
        (lo, hi, bracket, toward_ed)
        for lo, hi, bracket, toward_ed in _judged_end_runs(rebuilt, support, given)
        if _turns_wrong_way(rebuilt_area[lo : hi + 1], rebuilt_area[[bracket]], toward_ed)
    ]


def _judged_end_runs(
    rebuilt: np.ndarray, support: np.ndarray, given: tuple[int, int] | None
) -> list[tuple[int, int, int, bool]]:
    """(first, last, bracket, toward ED) of each end run that :func:`wrong_way_ends` judges: at least
    :data:`END_RUN_MIN` frames holding exactly one of the ``given`` (ED, ES) frames (none without them)."""
    found: list[tuple[int, int, int, bool]] = []
    if given is None:
        return found
    last = len(rebuilt) - 1
    for lo, hi, bracket in _bracketed_end_runs(rebuilt, support):
        # The ED/ES it holds may be the end frame itself, kept as drawn past the run (untrusted, not rebuilt).
        first, end = (lo, last) if bracket < lo else (0, hi)
        held = [t == given[0] for t in given if first <= t <= end]
        if hi - lo + 1 >= END_RUN_MIN and len(held) == 1:
            found.append((lo, hi, int(bracket), held[0]))
    return found


def _bracketed_end_runs(rebuilt: np.ndarray, support: np.ndarray) -> list[tuple[int, int, int]]:
    """(first, last, bracket) of each run of (T,) bool ``rebuilt`` that reaches one end of the sequence
    (not both) and whose one neighbour, the bracket, is in (T,) bool ``support``. A run reaches an end
    when no support lies between it and that end: an untrusted ED/ES end frame kept as drawn (neither
    rebuilt nor a support) leaves the run beside it with one bracket too."""
    found = []
    for lo, hi in bad_runs(rebuilt):
        at_start, at_end = not support[:lo].any(), not support[hi + 1 :].any()
        if at_start == at_end:
            continue
        bracket = hi + 1 if at_start else lo - 1
        if support[bracket]:
            found.append((lo, hi, bracket))
    return found
