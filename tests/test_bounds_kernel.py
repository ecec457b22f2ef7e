"""Proposition 2.1, the triangle/fast bounds and the global constant for kernel models."""

import math

import numpy as np
import pytest

from sklearn_crosslip.bounds import kernel_bounds
from sklearn_crosslip.bounds._kernel_numba import exp_vec, triangle_terms
from sklearn_crosslip.bounds._testing import FakeKernel, prop21_reference, prop21_reference_numpy


def _setup(seed, n=25, d=5, K=3, m=5, gamma=None):
    est = FakeKernel.random(n, d, K, seed, gamma=gamma)
    rng = np.random.default_rng(50 + seed)
    X = rng.uniform(0, 1, size=(m, d))
    c = np.argmax(est._logits(X), axis=1)
    return est, X, c


def _L(est, X, c, R, **kw):
    return kernel_bounds.local_cross_lipschitz(
        est.X_fit_, est.dual_coef_, est.gamma_, X, c,
        np.broadcast_to(np.asarray(R, float), (X.shape[0],)), return_parts=True, **kw,
    )


def _exact_norms(est, Y, c):
    G = est._input_gradients(Y)
    return np.linalg.norm(G[np.arange(len(Y)), c][:, None, :] - G, axis=2)


def _offdiag(c, K):
    mask = np.ones((len(c), K), bool)
    mask[np.arange(len(c)), c] = False
    return mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_matches_literal_reference(seed):
    est, X, c = _setup(seed, n=18, d=4, gamma=3.0)
    for R in [0.0, 0.02, 0.15, 0.6]:
        L, parts = _L(est, X, c, R)
        for i in range(3):
            for j in range(3):
                if j == c[i]:
                    continue
                ref = prop21_reference(est.X_fit_, est.dual_coef_, est.gamma_, X[i], c[i], j, R)
                p = parts["prop21"][i, j]
                assert ref <= p <= ref * (1 + 1e-9) + 1e-12, (R, i, j, ref, p)
                assert L[i, j] <= p


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_R0_equals_exact_gradient_difference(seed):
    est, X, c = _setup(seed, n=30, d=12, K=4)
    L, parts = _L(est, X, c, 0.0)
    ex = _exact_norms(est, X, c)
    mask = _offdiag(c, 4)
    np.testing.assert_allclose(parts["prop21"][mask], ex[mask], rtol=1e-9)
    np.testing.assert_allclose(parts["taylor"][mask], ex[mask], rtol=1e-9)
    np.testing.assert_allclose(L[mask], ex[mask], rtol=1e-9)
    assert np.all(L[mask] >= ex[mask]) and np.all(parts["taylor"][mask] >= ex[mask])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["local", "local_fast"])
@pytest.mark.parametrize("box", [False, True])
def test_monte_carlo_ball(seed, method, box):
    est, X, c = _setup(seed, n=40, d=6, K=3, gamma=2.0)
    rng = np.random.default_rng(seed)
    lo, hi = (np.zeros(6), np.ones(6)) if box else (None, None)
    for R in [0.05, 0.3, 1.0]:
        L, parts = _L(est, X, c, R, method=method, lo=lo, hi=hi)
        for i in range(len(X)):
            H = rng.normal(size=(300, 6))
            H /= np.linalg.norm(H, axis=1, keepdims=True)
            H *= R * rng.uniform(size=(300, 1)) ** (1 / 6)
            Y = X[i] + H
            if box:
                Y = np.clip(Y, 0, 1)
            ex = _exact_norms(est, Y, np.full(len(Y), c[i])).max(axis=0)
            for j in range(3):
                if j != c[i]:
                    assert ex[j] <= L[i, j]
                    assert ex[j] <= parts["triangle"][i, j]
                    assert ex[j] <= parts["fast"][i, j]
                    assert ex[j] <= parts["taylor"][i, j]
                    if method == "local":
                        assert ex[j] <= parts["prop21"][i, j]


def test_fast_variant_uses_subset(monkeypatch):
    # with a subset smaller than n the fast bound combines Prop. 2.1 and the triangle bound
    monkeypatch.setattr(kernel_bounds, "FAST_SUBSET_SIZE", 8)
    est, X, c = _setup(3, n=40, d=6, K=3, gamma=2.0)
    ex = _exact_norms(est, X, c)
    mask = _offdiag(c, 3)
    for R in [0.0, 0.1, 0.5]:
        L, parts = _L(est, X, c, R, method="local_fast")
        Ll, pl = _L(est, X, c, R, method="local")
        assert np.all(parts["fast"][mask] >= ex[mask])
        assert np.all(Ll[mask] <= L[mask])
        assert np.all(L[mask] <= parts["triangle"][mask])
        assert np.all(np.isnan(parts["prop21"]))
        if R == 0.0:
            # the split is not exact at R = 0 but lies between exact and triangle
            assert np.all(parts["fast"][mask] <= parts["triangle"][mask] * (1 + 1e-12))


def test_triangle_against_grid_maximum():
    est, X, c = _setup(4, n=15, d=3, K=2, gamma=5.0)
    A = est.dual_coef_
    for R in [0.0, 0.05, 0.4, 2.0]:
        _, parts = _L(est, X, c, R)
        t_star = 1 / math.sqrt(2 * est.gamma_)
        for i in range(len(X)):
            j = 1 - c[i]
            beta = np.abs(A[j] - A[c[i]])
            dist = np.linalg.norm(X[i] - est.X_fit_, axis=1)
            tot = 0.0
            for r in range(len(dist)):
                ts = np.linspace(max(0, dist[r] - R), dist[r] + R, 2001)
                ts = np.append(ts, np.clip(t_star, ts[0], ts[-1]))
                tot += beta[r] * np.max(ts * np.exp(-est.gamma_ * ts ** 2))
            ref = 2 * est.gamma_ * tot
            assert ref <= parts["triangle"][i, j] <= ref * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_global_constant(seed):
    est, X, c = _setup(seed, n=10, d=3, K=3, gamma=4.0)
    Lg = kernel_bounds.global_cross_lipschitz(est.dual_coef_, est.gamma_)
    A = est.dual_coef_
    expect = np.abs(A[:, None, :] - A[None, :, :]).sum(-1) * math.sqrt(2 * est.gamma_ / math.e)
    np.testing.assert_allclose(Lg, expect, rtol=1e-12)
    rng = np.random.default_rng(seed)
    Y = rng.uniform(-1, 2, size=(4000, 3))
    G = est._input_gradients(Y)
    for a in range(3):
        for b in range(3):
            assert np.linalg.norm(G[:, a] - G[:, b], axis=1).max() <= Lg[a, b]
    # the global constant is attained in the limit: a single training point
    one = FakeKernel(np.zeros((1, 3)), np.array([[1.0], [0.0]]), 4.0)
    y = np.array([[1 / math.sqrt(8.0), 0, 0]])
    g = one._input_gradients(y)
    Lg1 = kernel_bounds.global_cross_lipschitz(one.dual_coef_, 4.0)
    np.testing.assert_allclose(np.linalg.norm(g[0, 0] - g[0, 1]), Lg1[0, 1], rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monotone_in_R_and_box_never_looser(seed):
    est, X, c = _setup(seed, n=30, d=4, K=3, gamma=1.0)
    prev = None
    mask = _offdiag(c, 3)
    for R in [0.0, 0.1, 0.4, 1.5, 5.0]:
        L, _ = _L(est, X, c, R)
        Lb, pb = _L(est, X, c, R, lo=np.zeros(4), hi=np.ones(4))
        assert np.all(Lb[mask] <= L[mask])
        if prev is not None:
            assert np.all(L[mask] >= prev[mask] * (1 - 1e-12))
        prev = L


def test_box_tightens_triangle_terms():
    # training points far from the box: ||y - x_r|| >= dist(x_r, box) > t* for y in the box
    rng = np.random.default_rng(0)
    Xf = np.vstack([rng.uniform(0, 0.5, size=(10, 4)), rng.uniform(1.5, 2.0, size=(10, 4))])
    est = FakeKernel(Xf, rng.normal(size=(3, 20)), 20.0)
    X = rng.uniform(0, 0.5, size=(4, 4))
    c = np.argmax(est._logits(X), axis=1)
    mask = _offdiag(c, 3)
    _, p = _L(est, X, c, 5.0)
    _, pb = _L(est, X, c, 5.0, lo=np.zeros(4), hi=np.full(4, 0.5))
    assert np.all(pb["triangle"][mask] < p["triangle"][mask])


def test_training_point_at_centre():
    # x equal to a training point: d_r = 0, S can be 0; bounds must stay valid
    est, X, c = _setup(5, n=12, d=3, K=2, gamma=3.0)
    Xc = est.X_fit_[:3].copy()
    c = np.argmax(est._logits(Xc), axis=1)
    rng = np.random.default_rng(0)
    for R in [0.0, 0.01, 0.2]:
        L, _ = _L(est, Xc, c, R)
        for i in range(3):
            H = rng.normal(size=(200, 3))
            H *= R * rng.uniform(size=(200, 1)) / np.linalg.norm(H, axis=1, keepdims=True)
            ex = _exact_norms(est, Xc[i] + H, np.full(200, c[i])).max(axis=0)
            assert ex[1 - c[i]] <= L[i, 1 - c[i]]


def test_bad_input():
    est, X, c = _setup(0)
    args = (est.X_fit_, est.dual_coef_, est.gamma_)
    R = np.zeros(len(X))
    with pytest.raises(ValueError, match="method"):
        kernel_bounds.local_cross_lipschitz(*args, X, c, R, method="fast")
    with pytest.raises(ValueError, match="gamma"):
        kernel_bounds.local_cross_lipschitz(est.X_fit_, est.dual_coef_, -1.0, X, c, R)
    with pytest.raises(ValueError, match="R must"):
        kernel_bounds.local_cross_lipschitz(*args, X, c, np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="shape"):
        kernel_bounds.local_cross_lipschitz(*args, X[:, :2], c, R)
    with pytest.raises(ValueError, match="dual_coef"):
        kernel_bounds.local_cross_lipschitz(est.X_fit_, est.dual_coef_[:, :3], 1.0, X, c, R)


@pytest.mark.parametrize("seed", [0, 1])
def test_multiblock_prop21_against_numpy_reference(seed, monkeypatch):
    # n above the kernel's lane block (256) and a proper subset for the fast split
    monkeypatch.setattr(kernel_bounds, "FAST_SUBSET_SIZE", 100)
    est, X, c = _setup(seed, n=300, d=5, K=3, m=3, gamma=1.5)
    for R in [0.0, 0.08, 0.5]:
        P = kernel_bounds.proposition21(est.X_fit_, est.dual_coef_, est.gamma_, X, c,
                                        np.full(3, R))
        L, parts = _L(est, X, c, R, method="local_fast")
        ex = _exact_norms(est, X, c)
        for i in range(3):
            for j in range(3):
                if j == c[i]:
                    continue
                ref = prop21_reference_numpy(est.X_fit_, est.dual_coef_, est.gamma_, X[i],
                                             c[i], j, R)
                assert ref <= P[i, j] <= ref * (1 + 1e-9) + 1e-12
                assert parts["fast"][i, j] >= ex[i, j]


def test_hessian_terms_against_grid():
    rng = np.random.default_rng(3)
    gamma = 2.0
    d2 = rng.uniform(0, 4, size=(3, 40))
    R = np.array([0.0, 0.3, 1.2])
    phi = np.empty_like(d2)
    psi = np.empty_like(d2)
    triangle_terms(d2, np.zeros(3), R, gamma, np.zeros(40), np.full(40, np.inf), phi, psi)
    for i in range(3):
        for r in range(40):
            dist = np.sqrt(d2[i, r])
            ts = np.linspace(max(0, dist - R[i]), dist + R[i], 4001)
            ps = np.exp(-gamma * ts ** 2) * np.maximum(1, np.abs(2 * gamma * ts ** 2 - 1))
            ph = ts * np.exp(-gamma * ts ** 2)
            assert ps.max() <= psi[i, r] <= ps.max() * (1 + 1e-4) + 1e-12
            assert ph.max() <= phi[i, r] <= ph.max() * (1 + 1e-4) + 1e-12


def test_vectorisable_exp_accuracy():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-707.9, 5, 200_001), -rng.uniform(0, 700, 100_000)])
    got = np.array([exp_vec(v) for v in x[::50]])
    ref = np.exp(x[::50])
    assert np.max(np.abs(got - ref) / ref) < 8 * np.finfo(float).eps  # documented: 64 u
    assert exp_vec(-800.0) == 0.0


def test_gradient_cache_follows_model():
    est, X, c = _setup(6, n=30, d=4, K=3)
    L1, p1 = _L(est, X, c, 0.0)
    L2, p2 = _L(est, X, c, 0.0)  # served from the row cache
    np.testing.assert_array_equal(p1["taylor"], p2["taylor"])
    other = FakeKernel(est.X_fit_, est.dual_coef_ * 2.0, est.gamma_)
    L3 = kernel_bounds.local_cross_lipschitz(other.X_fit_, other.dual_coef_, other.gamma_, X,
                                             c, np.zeros(len(X)))
    mask = _offdiag(c, 3)
    np.testing.assert_allclose(L3[mask], 2 * L1[mask], rtol=1e-9)


def test_large_model_guard_and_cache_clear(monkeypatch):
    est, X, c = _setup(7, n=40, d=4, K=3)
    R = np.full(len(X), 0.2)
    ref = kernel_bounds.local_cross_lipschitz(est.X_fit_, est.dual_coef_, est.gamma_, X, c, R,
                                              method="local_fast")
    monkeypatch.setattr(kernel_bounds, "DFIT_MAX_BYTES", 100)
    kernel_bounds.clear_cache()
    with pytest.raises(MemoryError, match="local_fast"):
        kernel_bounds.local_cross_lipschitz(est.X_fit_, est.dual_coef_, est.gamma_, X, c, R)
    L = kernel_bounds.local_cross_lipschitz(est.X_fit_, est.dual_coef_, est.gamma_, X, c, R,
                                            method="local_fast")
    mask = _offdiag(c, 3)
    assert np.all(L[mask] >= ref[mask])  # without the split bound: never tighter
    ex = _exact_norms(est, X, c)
    assert np.all(L[mask] >= ex[mask])
