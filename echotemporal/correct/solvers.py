"""Latent-trajectory solvers: exact consistency projection, Whittaker smoothing, and baselines.

DESIGN.md §4.3. A latent trajectory is ``(T,)`` (one latent dim) or ``(T, D)`` (all dims), frame 0
first, T ≤ ~40. Two operators recur:

* ``A`` (T−2, T), the consistency operator of the metric: ``(A z)_t = z_t − (z_{t−1} + z_{t+1})/2``
  on interior frames (= −½ × the second difference);
* ``D`` (T−2, T), the second difference ``(D z)_t = z_{t−1} − 2 z_t + z_{t+1}`` of Whittaker's
  smoother (Eilers, "A perfect smoother", Anal. Chem. 2003).

``project_consistent`` and ``whittaker_smooth`` are exact (active-set / one banded solve) and take
microseconds to a millisecond. ``gradient_descent_smooth`` and ``search_smoothing_weight`` reproduce
the reference implementation's approach (Painchaud et al., IEEE TMI 2022: heavy-ball gradient descent
on the Whittaker energy, thousands of Python iterations per latent dim, and a global weight raised
until the sequence is consistent); they are kept as baselines for ``scripts/benchmark_solvers.py``.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

__all__ = [
    "penalty_bands",
    "project_consistent",
    "project_consistent_sparse",
    "whittaker_smooth",
    "gradient_descent_smooth",
    "search_smoothing_weight",
    "consistency_residual",
]


def consistency_residual(z: np.ndarray) -> np.ndarray:
    """``A z``: distance of each interior frame from its neighbours' mean.

    Args:
        z: (T,) or (T, D) trajectory.

    Returns:
        (T−2,) or (T−2, D), same units as ``z`` (empty when T < 3).
    """
    z = np.asarray(z, dtype=np.float64)
    return z[1:-1] - 0.5 * (z[:-2] + z[2:])


def _a_transpose(mu: np.ndarray, n_frames: int) -> np.ndarray:
    """``Aᵀ mu`` (T,) for mu (T−2,)."""
    out = np.zeros(n_frames)
    out[1:-1] += mu
    out[:-2] -= 0.5 * mu
    out[2:] -= 0.5 * mu
    return out


@functools.lru_cache(maxsize=64)
def _gram(n: int) -> np.ndarray:
    """``A Aᵀ`` (n, n), pentadiagonal with bands (0.25, −1, 1.5, −1, 0.25); read-only."""
    k = 1.5 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1) + 0.25 * (np.eye(n, k=2) + np.eye(n, k=-2))
    k.setflags(write=False)
    return k


def _weighted_gram(weights: np.ndarray) -> np.ndarray:
    """``A W⁻¹ Aᵀ`` (T−2, T−2) for positive frame weights (T,): the dual's matrix for min ½‖z − z0‖²_W."""
    n_frames = weights.size
    a = np.zeros((n_frames - 2, n_frames))
    rows = np.arange(n_frames - 2)
    a[rows, rows + 1] = 1.0
    a[rows, rows] = a[rows, rows + 2] = -0.5
    return (a / weights) @ a.T


def _dual_active_set(y0: np.ndarray, tol: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
    """Goldfarb–Idnani dual active-set solve of min ½‖z − z0‖² s.t. |(A z)_i| ≤ tol_i.

    Goldfarb & Idnani, "A numerically stable dual method for solving strictly convex quadratic
    programs", Math. Program. 1983, with Hessian I. It starts from the unconstrained optimum z0, adds
    the most violated constraint, and moves along the direction that keeps the active constraints
    tight, dropping an active constraint whose multiplier would turn negative; it ends, exactly, in
    finitely many steps (typically one per active constraint). Everything is carried in
    ``y = A z`` and multipliers ``mu`` (``z = z0 − Aᵀ mu``, ``y = y0 − K mu``, ``K = A Aᵀ``), so
    each step is one small SPD solve on the active rows of K.

    With frame weights W (min ½‖z − z0‖²_W) the same steps run on ``K = A W⁻¹ Aᵀ`` and
    ``z = z0 − W⁻¹ Aᵀ mu``.

    Args:
        y0: (n,) = A z0.
        tol: (n,) ≥ 0.
        k: (n, n) ``A W⁻¹ Aᵀ``; default ``A Aᵀ`` (W = I).

    Returns:
        mu (n,): the KKT multipliers; mu_i > 0 where y_i = tol_i, < 0 where y_i = −tol_i, else 0.
    """
    n = y0.size
    k = _gram(n) if k is None else k
    # Violations below this are round-off, not constraints to activate (y is O(max|y0|)).
    eps = 1e-12 * max(float(np.max(np.abs(y0))), float(np.max(tol)), 1e-300)
    act_i: list[int] = []  # active constraint rows, their signs s (s·y_i ≤ tol_i) and multipliers
    act_s: list[float] = []
    u = np.zeros(0)
    mu = np.zeros(n)
    y = y0.copy()
    for _ in range(10 * n + 10):  # a safeguard; GI ends long before
        viol = np.abs(y) - tol
        viol[act_i] = -np.inf
        p = int(np.argmax(viol))
        if viol[p] <= eps:
            break
        s_p = 1.0 if y[p] > 0 else -1.0
        u_p = 0.0
        while True:
            idx = np.array(act_i, dtype=int)
            sg = np.array(act_s)
            # GI normals are m_j = -s_j a_{i_j}; their Gram matrix and products come from K.
            nm = sg * s_p * k[idx, p]
            r = np.linalg.solve(sg[:, None] * k[np.ix_(idx, idx)] * sg[None, :], nm) if idx.size else nm
            curvature = k[p, p] - nm @ r  # ‖(I − N N⁺) m_p‖²
            slack = tol[p] - s_p * y[p]  # < 0 while p is violated
            t2 = -slack / curvature if curvature > 1e-12 * k[p, p] else np.inf
            pos = r > 1e-14
            t1, drop = np.inf, -1
            if pos.any():
                ratios = np.where(pos, u / np.where(pos, r, 1.0), np.inf)
                drop = int(np.argmin(ratios))
                t1 = float(ratios[drop])
            t = min(t1, t2)
            if not np.isfinite(t):  # cannot happen: the constraints are always feasible
                raise RuntimeError("consistency projection: infeasible constraint set")
            u = u - t * r
            u_p += t
            mu = np.zeros(n)
            mu[idx] = sg * u
            mu[p] += s_p * u_p
            y = y0 - k @ mu
            if t2 <= t1:
                act_i.append(p)
                act_s.append(s_p)
                u = np.append(u, u_p)
                break
            del act_i[drop], act_s[drop]
            u = np.delete(u, drop)
    return mu


def _dual_bvls(y0: np.ndarray, tol: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
    """Same problem in ``y = A z``: min (y − y0)ᵀ K⁻¹ (y − y0) s.t. |y| ≤ tol, by BVLS (finite).

    With K = L Lᵀ this is the bounded least-squares problem min ‖L⁻¹ (y − y0)‖² (Stark & Parker's
    BVLS, exact in finitely many steps). Returns mu = K⁻¹ (y0 − y).
    """
    k = _gram(y0.size) if k is None else k
    chol = scipy.linalg.cholesky(k, lower=True)
    c = scipy.linalg.solve_triangular(chol, np.eye(y0.size), lower=True)
    ub = np.where(tol > 0, tol, 1e-300)  # lsq_linear needs lb < ub; 1e-300 is an equality in practice
    from scipy.optimize import lsq_linear  # ~0.15 s to import, only this fallback needs it: off the CLI start-up

    res = lsq_linear(c, c @ y0, bounds=(-ub, ub), method="bvls", tol=1e-15)
    return scipy.linalg.cho_solve((chol, True), y0 - res.x)


def _project_one(z0: np.ndarray, tol: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    y0 = consistency_residual(z0)
    if np.all(np.abs(y0) <= tol):
        return z0.copy()
    k = None if weights is None else _weighted_gram(weights)
    scale = 1.0 if weights is None else 1.0 / weights
    mu = _dual_active_set(y0, tol, k)
    z = z0 - _a_transpose(mu, z0.size) * scale
    # Safety net against numerical trouble in the active-set steps (never seen in tests): the
    # bounded least-squares route is slower but equally exact.
    if np.max(np.abs(consistency_residual(z)) - tol) > 1e-9 * max(1.0, float(np.max(np.abs(y0)))):
        z = z0 - _a_transpose(_dual_bvls(y0, tol, k), z0.size) * scale
    return z


def project_consistent(z0: np.ndarray, tol: float | np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Closest trajectory whose interior frames all lie within ``tol`` of their neighbours' mean.

    Solves exactly ``min Σ_t w_t (z_t − z0_t)²  s.t.  |z_t − (z_{t−1} + z_{t+1})/2| ≤ tol_t`` for every
    interior frame t (DESIGN.md §4.3; w = 1 without ``weights``) by the Goldfarb–Idnani dual
    active-set method (finite, exact; about 0.1–0.5 ms for T = 20). End frames are unconstrained.

    Args:
        z0: (T,) or (T, D) trajectory (each column is projected independently), any units.
        tol: scalar, (T−2,) per interior frame, or (T−2, D) per frame and column; ≥ 0, units of z0.
        weights: optional positive (T,) or (T, D) cost of moving each frame (per column).

    Returns:
        Same shape as ``z0``, float64. Columns that already satisfy the constraints come back
        bit-identical; T < 3 returns a copy of ``z0``.

    Raises:
        ValueError: non-finite ``z0``, negative/non-finite ``tol``, or a ``tol`` shape that does not
            broadcast to (T−2,) / (T−2, D).
    """
    z = np.array(z0, dtype=np.float64)  # a copy, so callers never alias their input
    if z.ndim not in (1, 2):
        raise ValueError(f"z0 must be (T,) or (T, D); got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("z0 holds NaN or infinite values; a latent trajectory must be finite")
    n = z.shape[0] - 2
    if n < 1:
        return z
    z2 = z[:, None] if z.ndim == 1 else z
    tol_a = np.asarray(tol, dtype=np.float64)
    try:
        # A 1-D tol is per frame, shared by all columns.
        tol2 = np.broadcast_to(tol_a[:, None] if tol_a.ndim == 1 else tol_a, (n, z2.shape[1]))
    except ValueError:
        raise ValueError(
            f"tol must be a scalar, ({n},) or ({n}, {z2.shape[1]}) for z0 of shape {z.shape}; "
            f"got shape {np.shape(tol)}"
        ) from None
    if not (np.all(np.isfinite(tol2)) and np.all(tol2 >= 0)):
        raise ValueError(f"tol must be finite and >= 0; got {tol!r}")
    w2 = None
    if weights is not None:
        w_a = np.asarray(weights, dtype=np.float64)
        w2 = np.broadcast_to(w_a[:, None] if w_a.ndim == 1 else w_a, z2.shape)
        if not (np.all(np.isfinite(w2)) and np.all(w2 > 0)):
            raise ValueError("weights must be finite and > 0")
    for d in range(z2.shape[1]):
        z2[:, d] = _project_one(z2[:, d].copy(), tol2[:, d], None if w2 is None else np.ascontiguousarray(w2[:, d]))
    return z


def project_consistent_sparse(z0: np.ndarray, tol: float | np.ndarray, iterations: int = 3) -> np.ndarray:
    """Consistency projection that changes as few frames as it can (an L1-like minimal change).

    The exact projection (least squares, :func:`project_consistent`) answers a one-frame glitch by
    moving the glitch and, by a fraction, its good neighbours. Iteratively reweighted projections
    (weights ``1 / max(|z − z0|, 0.01·tol)`` from the previous solution, as in iteratively
    reweighted least squares for an L1 objective) make moving a frame that already moved cheap and
    moving an untouched one dear, so the correction concentrates on the frames that caused the
    inconsistency. Every iterate satisfies the constraints exactly.

    Args:
        z0: (T,) or (T, D) trajectory; tol: as for :func:`project_consistent` (scalar or per frame).
        iterations: reweighting steps after the least-squares start.

    Returns:
        Same shape as ``z0``, float64; bit-identical where ``z0`` is already consistent.
    """
    z = project_consistent(z0, tol)
    z0_a = np.asarray(z0, dtype=np.float64)
    if np.array_equal(z, z0_a):
        return z
    floor = 0.01 * max(float(np.max(tol)), 1e-12)
    for _ in range(int(iterations)):
        z = project_consistent(z0_a, tol, weights=1.0 / np.maximum(np.abs(z - z0_a), floor))
    return z


@functools.lru_cache(maxsize=64)
def penalty_bands(n_frames: int) -> np.ndarray:
    """``DᵀD`` in upper banded storage (3, T) for ``scipy.linalg.solveh_banded``; read-only."""
    d = np.diff(np.eye(n_frames), n=2, axis=0)
    dtd = d.T @ d
    ab = np.zeros((3, n_frames))
    ab[0, 2:] = np.diagonal(dtd, 2)
    ab[1, 1:] = np.diagonal(dtd, 1)
    ab[2] = np.diagonal(dtd)
    ab.setflags(write=False)
    return ab


@functools.lru_cache(maxsize=128)
def _whittaker_bands(n_frames: int, lam: float) -> np.ndarray:
    """``I + lam·DᵀD`` in upper banded storage (3, T); read-only."""
    ab = lam * penalty_bands(n_frames)
    ab[2] += 1.0
    ab.setflags(write=False)
    return ab


def whittaker_smooth(z0: np.ndarray, lam: float) -> np.ndarray:
    """Whittaker smoother: solve ``(I + lam·DᵀD) z = z0`` (Eilers 2003), D the second difference.

    It is the exact minimiser of ``½‖z − z0‖² + ½·lam·‖D z‖²``; one banded Cholesky solve serves all
    columns at once.

    Args:
        z0: (T,) or (T, D) trajectory, frame 0 first, any units.
        lam: smoothing weight ≥ 0 (dimensionless); 0 returns the input unchanged.

    Returns:
        Same shape as ``z0``, float64 (a copy when nothing is solved: lam = 0 or T < 3).

    Raises:
        ValueError: ``lam`` negative or not finite.
    """
    z = np.array(z0, dtype=np.float64)
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and >= 0; got {lam!r}")
    if lam == 0 or z.shape[0] < 3:
        return z
    # LAPACK's banded Cholesky solve called directly: scipy.linalg.solveh_banded does the same with
    # ~10 µs of checks, as much as the solve itself at T = 20.
    _, out, info = scipy.linalg.lapack.dpbsv(_whittaker_bands(z.shape[0], float(lam)), z, lower=0, overwrite_b=1)
    if info != 0:  # I + lam·DᵀD is SPD for lam >= 0: only non-finite input gets here
        raise ValueError(f"whittaker_smooth: banded solve failed (LAPACK info {info}); is z0 finite?")
    return out


def gradient_descent_smooth(
    z0: np.ndarray,
    lam: float,
    *,
    lr: float | None = None,
    momentum: float = 0.9,
    n_iter: int = 2000,
) -> np.ndarray:
    """Heavy-ball gradient descent on the Whittaker energy — the reference implementation's way.

    Minimises ``½‖z − z0‖² + ½·lam·‖D z‖²`` (same optimum as :func:`whittaker_smooth`) with
    ``v ← momentum·v − lr·∇``, ``z ← z + v``, iterating in Python, one latent dim at a time, as the
    reference does. Kept as a faithful baseline for benchmarks; use :func:`whittaker_smooth`.

    Args:
        z0: (T,) or (T, D) trajectory, any units.
        lam: smoothing weight ≥ 0.
        lr: step size; None uses ``1/(1 + 16·lam)``, the inverse Lipschitz constant of the gradient
            (‖DᵀD‖ ≤ 16), which never diverges.
        momentum: heavy-ball coefficient in [0, 1).
        n_iter: iterations per latent dim.

    Returns:
        Same shape as ``z0``, float64.
    """
    z0a = np.asarray(z0, dtype=np.float64)
    z02 = z0a[:, None] if z0a.ndim == 1 else z0a
    step = 1.0 / (1.0 + 16.0 * lam) if lr is None else float(lr)
    out = np.empty_like(z02)
    for d in range(z02.shape[1]):
        target = z02[:, d]
        z = target.copy()
        v = np.zeros_like(z)
        for _ in range(n_iter):
            dz = z[:-2] - 2.0 * z[1:-1] + z[2:]
            grad = z - target
            grad[:-2] += lam * dz
            grad[1:-1] -= 2.0 * lam * dz
            grad[2:] += lam * dz
            v = momentum * v - step * grad
            z = z + v
        out[:, d] = z
    return out[:, 0] if z0a.ndim == 1 else out


def search_smoothing_weight(
    z0: np.ndarray,
    is_consistent: Callable[[np.ndarray], bool],
    *,
    solver: Callable[[np.ndarray, float], np.ndarray] = whittaker_smooth,
    lam0: float = 0.1,
    factor: float = 2.0,
    max_steps: int = 20,
) -> tuple[np.ndarray, float]:
    """Raise one global smoothing weight until the trajectory is consistent (the reference's search).

    Tries ``lam = lam0, lam0·factor, lam0·factor², …`` and returns the first ``solver(z0, lam)``
    accepted by ``is_consistent``. A trajectory already accepted comes back unchanged with lam 0.

    Args:
        z0: (T, D) or (T,) latent trajectory.
        is_consistent: callback on a candidate trajectory (same shape as ``z0``) → True if accepted.
        solver: ``solver(z0, lam) -> z``; :func:`whittaker_smooth` (exact) or a partial of
            :func:`gradient_descent_smooth` (the reference's baseline).
        lam0: first weight tried (> 0).
        factor: multiplier between tries (> 1).
        max_steps: number of weights tried.

    Returns:
        (z, lam): the accepted trajectory and its weight. If no weight is accepted, a warning is
        issued and the last (most smoothed) trajectory is returned with its weight.
    """
    if not (lam0 > 0 and factor > 1 and max_steps >= 1):
        raise ValueError(f"need lam0 > 0, factor > 1, max_steps >= 1; got {lam0}, {factor}, {max_steps}")
    z0a = np.array(z0, dtype=np.float64)
    if is_consistent(z0a):
        return z0a, 0.0
    lam = lam0
    for step in range(max_steps):
        z = solver(z0a, lam)
        if is_consistent(z):
            return z, lam
        if step < max_steps - 1:
            lam *= factor
    warnings.warn(
        f"no smoothing weight up to {lam:g} made the trajectory consistent; returning the smoothest",
        RuntimeWarning,
        stacklevel=2,
    )
    return z, lam
