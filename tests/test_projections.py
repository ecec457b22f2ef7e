"""Exactness of the box-constrained minimal-norm half-space solver (eq. 8, Prop. 4.1)."""

import numpy as np
import pytest
from scipy.optimize import linprog, minimize

from sklearn_crosslip.attacks import min_norm_box_halfspace
from sklearn_crosslip.attacks.projections import _solve

NORMS = [1, 2, np.inf]


def _norm(v, p):
    return float(np.linalg.norm(v, ord=p))


def _random_problem(rng, kind):
    """One random problem (g, b, x, lo, hi) with degenerate features mixed in."""
    d = int(rng.integers(1, 31))
    g = rng.normal(size=d) * rng.choice([1e-2, 1.0, 10.0])
    g[rng.random(d) < 0.25] = 0.0  # zero entries of g
    box_kind = rng.integers(0, 4)
    if box_kind == 0:
        lo, hi = 0.0, 1.0
        lo_v, hi_v = np.zeros(d), np.ones(d)
    elif box_kind == 1:
        lo_v = rng.normal(size=d)
        hi_v = lo_v + rng.uniform(0.1, 2.0, size=d)
        lo, hi = lo_v, hi_v
    elif box_kind == 2:
        lo, hi = None, None
        lo_v, hi_v = np.full(d, -np.inf), np.full(d, np.inf)
    else:  # one-sided and mixed infinite bounds
        lo_v = np.where(rng.random(d) < 0.5, -np.inf, -1.0)
        hi_v = np.where(rng.random(d) < 0.5, np.inf, 1.0)
        lo, hi = lo_v, hi_v
    fin_lo = np.where(np.isfinite(lo_v), lo_v, -3.0)
    fin_hi = np.where(np.isfinite(hi_v), hi_v, 3.0)
    x = fin_lo + rng.random(d) * (fin_hi - fin_lo)
    on_lo = rng.random(d) < 0.2
    on_hi = rng.random(d) < 0.2
    x = np.where(on_lo & np.isfinite(lo_v), lo_v, x)  # x on the box boundary
    x = np.where(on_hi & np.isfinite(hi_v), hi_v, x)
    def max_value():
        with np.errstate(invalid="ignore"):
            room = np.where(g > 0, hi_v - x, np.where(g < 0, x - lo_v, 0.0))
        nz = g != 0
        return float(np.sum(np.abs(g[nz]) * room[nz]))

    M = max_value()
    if kind == "nonpositive":
        b = -abs(rng.normal()) if rng.random() < 0.7 else 0.0
    elif kind == "infeasible":
        if not np.isfinite(M):
            g[:] = 0.0
            M = 0.0
        b = M * rng.uniform(1.05, 2.0) + 0.1
    else:
        if M == 0.0:  # make sure the problem has some room
            x[0] = 0.5 * (fin_lo[0] + fin_hi[0])
            g[0] = 1.0
            M = max_value()
        b = M * rng.uniform(0.001, 0.999) if np.isfinite(M) else rng.uniform(0.01, 3.0)
    return g, float(b), x, lo, hi, lo_v, hi_v


def _linprog_ref(g, b, x, lo_v, hi_v, p):
    """Reference optimum of (8) for p in {1, inf} with HiGHS (None if infeasible)."""
    d = g.size
    bounds_delta = [
        (
            None if not np.isfinite(lo_v[i]) else lo_v[i] - x[i],
            None if not np.isfinite(hi_v[i]) else hi_v[i] - x[i],
        )
        for i in range(d)
    ]
    eye = np.eye(d)
    if p == 1:
        c = np.r_[np.zeros(d), np.ones(d)]
        A = np.block([[eye, -eye], [-eye, -eye], [-g[None, :], np.zeros((1, d))]])
        ub = np.r_[np.zeros(2 * d), -b]
        bounds = bounds_delta + [(0, None)] * d
    else:
        c = np.r_[np.zeros(d), 1.0]
        one = np.ones((d, 1))
        A = np.block([[eye, -one], [-eye, -one], [-g[None, :], np.zeros((1, 1))]])
        ub = np.r_[np.zeros(2 * d), -b]
        bounds = bounds_delta + [(0, None)]
    res = linprog(
        c, A_ub=A, b_ub=ub, bounds=bounds, method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status == 2:
        return None
    assert res.status == 0, res.message
    return res.fun


def _kkt_l2_ref(g, b, x, lo_v, hi_v):
    """Exact p = 2 solution by sorting the break points of phi(t) (independent code)."""
    if b <= 0:
        return np.zeros_like(g)
    l, u = lo_v - x, hi_v - x
    nz = g != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(g > 0, u / g, np.where(g < 0, l / g, np.inf))
    order = np.argsort(tau[nz])
    tz, gz = tau[nz][order], g[nz][order]
    with np.errstate(invalid="ignore"):
        cz = np.where(gz > 0, gz * u[nz][order], gz * l[nz][order])
    # phi(tau_k) = sum_{i<k} c_i + tau_k * sum_{i>=k} g_i^2, nondecreasing in k.
    n = tz.size
    slope_from = np.r_[np.cumsum((gz ** 2)[::-1])[::-1], 0.0]
    const_to = np.r_[0.0, np.cumsum(cz)]
    t = None
    for k in range(n):
        if slope_from[k] > 0 and const_to[k] + tz[k] * slope_from[k] >= b:
            t = (b - const_to[k]) / slope_from[k]
            break
    if t is None:
        t = np.inf
    with np.errstate(invalid="ignore"):
        delta = np.clip(t * g, l, u)
    delta[~nz] = 0.0
    return delta


def _check_feasible(g, b, x, delta, lo_v, hi_v):
    scale = 1.0 + np.sum(np.abs(g * delta))
    assert g @ delta >= b - 1e-12 * scale
    assert np.all(x + delta >= lo_v - 1e-15 * (1 + np.abs(x)))
    assert np.all(x + delta <= hi_v + 1e-15 * (1 + np.abs(x)))


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("kind", ["feasible", "nonpositive", "infeasible"])
def test_matches_reference_solvers(p, kind):
    rng = np.random.default_rng(hash((str(p), kind)) % 2**32)
    for _ in range(150):
        g, b, x, lo, hi, lo_v, hi_v = _random_problem(rng, kind)
        delta, ok = min_norm_box_halfspace(g, b, x, lo, hi, p=p)
        if kind == "infeasible":
            assert not ok
            assert np.isnan(delta).all()
            if p != 2:
                assert _linprog_ref(g, b, x, lo_v, hi_v, p) is None
            continue
        assert ok
        _check_feasible(g, b, x, delta, lo_v, hi_v)
        if kind == "nonpositive":
            assert np.all(delta == 0)
            continue
        if p == 2:
            ref = _kkt_l2_ref(g, b, x, lo_v, hi_v)
            assert np.linalg.norm(delta - ref) <= 1e-8 * max(1.0, np.linalg.norm(ref))
        else:
            ref = _linprog_ref(g, b, x, lo_v, hi_v, p)
            assert abs(_norm(delta, p) - ref) <= 1e-8 * max(1.0, ref)


def test_l2_kkt_conditions_and_slsqp():
    # The p = 2 solution satisfies KKT: delta = clip(t g, lo - x, hi - x), t >= 0,
    # <g, delta> = b; and agrees with a generic QP solver.
    rng = np.random.default_rng(0)
    for _ in range(40):
        g, b, x, lo, hi, lo_v, hi_v = _random_problem(rng, "feasible")
        if not np.all(np.isfinite(lo_v)) or not np.all(np.isfinite(hi_v)):
            continue
        delta, ok = min_norm_box_halfspace(g, b, x, lo, hi, p=2)
        assert ok
        nz = g != 0
        free = nz & (x + delta > lo_v) & (x + delta < hi_v)
        if free.any():
            t = delta[free] / g[free]
            assert np.all(t >= 0)
            np.testing.assert_allclose(t, t[0], rtol=1e-10)
            np.testing.assert_allclose(np.clip(t[0] * g, lo_v - x, hi_v - x), delta, atol=1e-12)
        assert abs(g @ delta - b) <= 1e-12 * (1 + np.abs(g * delta).sum())
        res = minimize(
            lambda v: 0.5 * v @ v, np.zeros_like(g), jac=lambda v: v, method="SLSQP",
            bounds=list(zip(lo_v - x, hi_v - x)),
            constraints=[{"type": "ineq", "fun": lambda v: g @ v - b, "jac": lambda v: g}],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        assert np.linalg.norm(delta) <= np.linalg.norm(res.x) + 1e-8
        assert np.linalg.norm(delta - res.x) <= 1e-5 * max(1.0, np.linalg.norm(delta))


@pytest.mark.parametrize("p", NORMS)
def test_batched_equals_single_and_tight_bound(p):
    rng = np.random.default_rng(1)
    m, d = 200, 17
    G = rng.normal(size=(m, d))
    G[rng.random((m, d)) < 0.2] = 0.0
    X = rng.random((m, d))
    X[rng.random((m, d)) < 0.2] = 0.0
    X[rng.random((m, d)) < 0.2] = 1.0
    room = np.where(G > 0, 1 - X, np.where(G < 0, X, 0.0))
    M = np.sum(np.abs(G) * room, axis=1)
    B = M * rng.uniform(-0.5, 1.5, size=m)
    B[:5] = M[:5]  # exactly the largest achievable value: the corner, feasible
    delta, ok = min_norm_box_halfspace(G, B, X, 0.0, 1.0, p=p)
    np.testing.assert_array_equal(ok, B <= M)
    for i in range(m):
        di, oki = min_norm_box_halfspace(G[i], B[i], X[i], 0.0, 1.0, p=p)
        assert oki == ok[i]
        np.testing.assert_array_equal(np.isnan(di), np.isnan(delta[i]))
        if oki:
            np.testing.assert_allclose(di, delta[i], rtol=0, atol=0)
    corner = np.where(G > 0, 1 - X, np.where(G < 0, -X, 0.0))
    np.testing.assert_allclose(delta[:5], corner[:5], atol=1e-12)


def test_unbounded_closed_forms():
    rng = np.random.default_rng(2)
    g = rng.normal(size=(50, 12))
    b = rng.uniform(0.1, 2.0, size=50)
    x = rng.normal(size=(50, 12))
    d2, ok = min_norm_box_halfspace(g, b, x, p=2)
    assert ok.all()
    np.testing.assert_allclose(
        np.linalg.norm(d2, axis=1), b / np.linalg.norm(g, axis=1), rtol=1e-13
    )
    dinf, _ = min_norm_box_halfspace(g, b, x, p="inf")
    np.testing.assert_allclose(np.abs(dinf).max(axis=1), b / np.abs(g).sum(axis=1), rtol=1e-13)
    d1, _ = min_norm_box_halfspace(g, b, x, p=1)
    np.testing.assert_allclose(np.abs(d1).sum(axis=1), b / np.abs(g).max(axis=1), rtol=1e-13)
    assert np.all((d1 != 0).sum(axis=1) == 1)


@pytest.mark.parametrize("p", NORMS)
def test_worst_case_guards(p, monkeypatch):
    # Force the sorted fall-back paths (after 1 Newton step / 1 selection round)
    # and check they give the same answers as the fast paths.
    import sklearn_crosslip.attacks._projections_numba as kern

    rng = np.random.default_rng(3)
    m, d = 300, 25
    G = rng.normal(size=(m, d)) * rng.uniform(0.01, 10, size=(m, 1))
    G[rng.random((m, d)) < 0.2] = 0.0
    X = rng.random((m, d))
    room = np.where(G > 0, 1 - X, np.where(G < 0, X, 0.0))
    B = np.sum(np.abs(G) * room, axis=1) * rng.uniform(0.01, 0.99, size=m)
    lo, hi = np.zeros(d), np.ones(d)
    p_code = {1: 1, 2: 2, np.inf: 0}[p]
    fast, _, _ = _solve(G, B, X, lo, hi, p_code, False)
    py1 = kern._solve_one_l1.py_func if p == 1 else kern._solve_one_piecewise.py_func
    monkeypatch.setattr(kern, "_MAX_NEWTON", 1)
    monkeypatch.setattr(kern, "_MAX_SELECT", 1)
    for i in range(m):
        out, s1, s2 = np.empty(d), np.empty(d), np.empty(d)
        # py_func runs the Python source, which reads the patched module globals
        if p == 1:
            ok, _ = py1(G[i], B[i], X[i], lo, hi, False, out, s1, s2, np.empty(d), np.empty(d))
        else:
            ok, _ = py1(G[i], B[i], X[i], lo, hi, p == np.inf, False, out, s1, s2)
        assert ok
        assert abs(_norm(out, p) - _norm(fast[i], p)) <= 1e-10 * max(1.0, _norm(fast[i], p))
        _check_feasible(G[i], B[i], X[i], out, lo, hi)


@pytest.mark.parametrize("p", NORMS)
def test_problem_without_any_room_is_infeasible(p):
    g = np.array([1.0, -2.0, 0.0])
    x = np.array([1.0, 0.0, 0.5])  # pushed against the face g points to
    delta, ok = min_norm_box_halfspace(g, 1e-9, x, 0, 1, p=p)
    assert not ok and np.isnan(delta).all()
    delta, ok = min_norm_box_halfspace(g, 0.0, x, 0, 1, p=p)
    assert ok and np.all(delta == 0)


def test_bad_input():
    g = np.ones((3, 4))
    x = np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match="p must be"):
        min_norm_box_halfspace(g, 1.0, x, 0, 1, p=3)
    with pytest.raises(ValueError, match="p must be"):
        min_norm_box_halfspace(g, 1.0, x, 0, 1, p="l2")
    with pytest.raises(ValueError, match="same shape"):
        min_norm_box_halfspace(g, 1.0, x[:, :3], 0, 1)
    with pytest.raises(ValueError, match="b must"):
        min_norm_box_halfspace(g, np.ones(2), x, 0, 1)
    with pytest.raises(ValueError, match="NaN"):
        min_norm_box_halfspace(g, np.nan, x, 0, 1)
    with pytest.raises(ValueError, match="NaN"):
        min_norm_box_halfspace(g, 1.0, x, np.nan, 1)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        min_norm_box_halfspace(g, 1.0, x, 1, 0)
    with pytest.raises(ValueError, match="inside the box"):
        min_norm_box_halfspace(g, 1.0, x + 1.0, 0, 1)
