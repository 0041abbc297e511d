"""Tests for echotemporal.correct.solvers: the consistency projections, Whittaker smoothing and the weight search."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from echotemporal.correct.solvers import consistency_residual, gradient_descent_smooth, project_consistent, project_consistent_sparse, search_smoothing_weight, whittaker_smooth


def _jumpy_trajectory(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n_frames)
    z = np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 6)) + rng.normal(0, 0.05, n_frames)
    z[rng.integers(1, n_frames - 1)] += rng.choice([-1, 1]) * rng.uniform(0.3, 1.0)
    return z


# ---- metric ---------------------------------------------------------------------------------------


def _slsqp_projection(z0: np.ndarray, tol: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The (weighted) projection by a generic NLP solver, as an independent reference."""
    w = np.ones_like(z0) if weights is None else weights
    cons = [
        {"type": "ineq", "fun": lambda z: tol - consistency_residual(z)},
        {"type": "ineq", "fun": lambda z: tol + consistency_residual(z)},
    ]
    res = scipy.optimize.minimize(
        lambda z: 0.5 * np.sum(w * (z - z0) ** 2),
        z0.copy(),
        jac=lambda z: w * (z - z0),
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert res.success, res.message
    return res.x


def test_linear_trajectory_left_unchanged_by_projection_and_whittaker():
    z0 = 0.3 - 0.07 * np.arange(20.0)
    out = project_consistent(z0, 1e-3)
    np.testing.assert_array_equal(out, z0)
    assert out is not z0
    np.testing.assert_allclose(whittaker_smooth(z0, 50.0), z0, atol=1e-12)


def test_feasible_trajectory_is_returned_bit_exact():
    z0 = 0.01 * np.sin(np.linspace(0, 3, 25))
    tol = np.abs(consistency_residual(z0)).max() * 1.01
    np.testing.assert_array_equal(project_consistent(z0, tol), z0)


@pytest.mark.parametrize("seed", range(6))
def test_projection_is_feasible_and_optimal(seed):
    rng = np.random.default_rng(seed)
    z0 = _jumpy_trajectory(rng, int(rng.integers(8, 30)))
    tol = 0.02 if seed % 2 else rng.uniform(0.0, 0.05, z0.size - 2)  # scalar and per-frame tol
    tol_v = np.broadcast_to(tol, (z0.size - 2,))
    z = project_consistent(z0, tol)
    assert np.all(np.abs(consistency_residual(z)) <= tol_v + 1e-9)
    np.testing.assert_allclose(z, _slsqp_projection(z0, tol_v), atol=1e-6)
    # No feasible point is closer: shrink smoothed trajectories about their linear fit until feasible.
    best = np.linalg.norm(z - z0)
    t = np.arange(z0.size)
    for lam in (1.0, 10.0, 100.0, 1e4):
        w = whittaker_smooth(z0, lam)
        line = np.polyval(np.polyfit(t, w, 1), t)
        scale = min(1.0, float(np.min(tol_v / np.maximum(np.abs(consistency_residual(w)), 1e-300))))
        feasible = line + scale * (w - line)
        assert np.all(np.abs(consistency_residual(feasible)) <= tol_v + 1e-12)
        assert best <= np.linalg.norm(feasible - z0) + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_weighted_projection_is_feasible_and_optimal(seed):
    rng = np.random.default_rng(100 + seed)
    z0 = _jumpy_trajectory(rng, int(rng.integers(8, 25)))
    weights = rng.uniform(0.3, 3.0, z0.size)
    tol = np.full(z0.size - 2, 0.02)
    z = project_consistent(z0, tol, weights=weights)
    assert np.all(np.abs(consistency_residual(z)) <= tol + 1e-9)
    np.testing.assert_allclose(z, _slsqp_projection(z0, tol, weights), atol=1e-6)
    np.testing.assert_array_equal(project_consistent(z0, tol, weights=np.ones(z0.size)), project_consistent(z0, tol))
    with pytest.raises(ValueError, match="weights"):
        project_consistent(z0, tol, weights=np.zeros(z0.size))


def test_sparse_projection_corrects_a_glitch_on_its_own_frame():
    """Known answer: a straight trajectory with one frame knocked off. Least squares moves the
    glitch's good neighbours by a fraction of the glitch; the sparse projection puts (nearly) the
    whole correction on the glitched frame, and stays exactly feasible."""
    z0 = np.linspace(0.0, 10.0, 20)
    z0[9] -= 3.0
    lsq, sparse = project_consistent(z0, 0.1), project_consistent_sparse(z0, 0.1)
    assert np.abs(consistency_residual(sparse)).max() <= 0.1 + 1e-9
    good = np.delete(np.arange(20), 9)
    assert np.abs(lsq - z0)[good].max() > 0.5  # least squares damages the neighbours
    assert np.abs(sparse - z0)[good].max() < 0.15
    assert sparse[9] - z0[9] > 2.7  # the glitch itself is (almost) undone
    clean = np.linspace(0.0, 1.0, 12)
    np.testing.assert_array_equal(project_consistent_sparse(clean, 0.01), clean)


def test_projection_columns_and_zero_tolerance():
    rng = np.random.default_rng(7)
    z0 = np.stack([_jumpy_trajectory(rng, 16) for _ in range(3)], axis=1)
    z = project_consistent(z0, 0.01)
    for d in range(3):
        np.testing.assert_array_equal(z[:, d], project_consistent(z0[:, d], 0.01))
    # tol = 0 forces a straight line: the least-squares line through z0.
    t = np.arange(16.0)
    np.testing.assert_allclose(project_consistent(z0[:, 0], 0.0), np.polyval(np.polyfit(t, z0[:, 0], 1), t), atol=1e-9)
    with pytest.raises(ValueError, match="tol"):
        project_consistent(z0[:, 0], -1.0)


def test_whittaker_matches_gradient_descent_fixed_point():
    rng = np.random.default_rng(3)
    z0 = np.cumsum(rng.normal(size=(15, 2)), axis=0)
    exact = whittaker_smooth(z0, 2.0)
    gd = gradient_descent_smooth(z0, 2.0, momentum=0.9, n_iter=3000)
    np.testing.assert_allclose(gd, exact, atol=1e-4)
    # Exact solution of the normal equations, columns solved together.
    d = np.diff(np.eye(15), n=2, axis=0)
    np.testing.assert_allclose((np.eye(15) + 2.0 * d.T @ d) @ exact, z0, atol=1e-10)
    np.testing.assert_allclose(whittaker_smooth(z0[:, 1], 2.0), exact[:, 1], atol=1e-12)


def test_whittaker_zero_weight_and_short_input_return_input():
    z0 = np.array([1.0, 5.0, -2.0, 4.0])
    np.testing.assert_array_equal(whittaker_smooth(z0, 0.0), z0)
    np.testing.assert_array_equal(whittaker_smooth(z0[:2], 10.0), z0[:2])
    with pytest.raises(ValueError, match="lam"):
        whittaker_smooth(z0, -1.0)


def test_search_smoothing_weight_finds_first_accepted_weight():
    rng = np.random.default_rng(5)
    z0 = np.stack([_jumpy_trajectory(rng, 20) for _ in range(4)], axis=1)

    def ok(z):
        return bool(np.all(np.abs(consistency_residual(z)) <= 0.02))

    z, lam = search_smoothing_weight(z0, ok, lam0=0.1, factor=2.0, max_steps=30)
    assert ok(z) and lam > 0
    assert not ok(whittaker_smooth(z0, lam / 2.0))  # the previous weight was not enough
    np.testing.assert_allclose(z, whittaker_smooth(z0, lam))
    z_same, lam_same = search_smoothing_weight(z, ok)
    assert lam_same == 0.0 and np.array_equal(z_same, z)
    with pytest.warns(RuntimeWarning, match="no smoothing weight"):
        search_smoothing_weight(z0, lambda z: False, max_steps=2)


def test_kernel_dual_active_set_matches_bvls_fallback():
    from echotemporal.correct.solvers import _dual_active_set, _dual_bvls

    rng = np.random.default_rng(11)
    z0 = _jumpy_trajectory(rng, 25) + rng.normal(0, 0.1, 25)  # noisy: many active constraints
    y0, tol = consistency_residual(z0), np.full(23, 0.01)
    np.testing.assert_allclose(_dual_active_set(y0, tol), _dual_bvls(y0, tol), atol=1e-9)
