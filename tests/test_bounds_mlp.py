"""Proposition 2.2 (with biases), the O(U) bound and the global constant for the MLP."""

import numpy as np
import pytest

from sklearn_crosslip.bounds import mlp_bounds
from sklearn_crosslip.bounds._testing import FakeMLP, prop22_reference


def _setup(seed, d=8, U=12, K=4, m=6, alpha=10.0, scale=1.0):
    est = FakeMLP.random(d, U, K, seed, scale=scale, alpha=alpha)
    rng = np.random.default_rng(100 + seed)
    X = rng.uniform(0, 1, size=(m, d))
    c = np.argmax(est._logits(X), axis=1)
    return est, X, c


def _L(est, X, c, R, **kw):
    return mlp_bounds.local_cross_lipschitz(
        est.coefs_[0], est.intercepts_[0], est.coefs_[1], est.softplus_alpha,
        X, c, np.broadcast_to(np.asarray(R, float), (X.shape[0],)), return_parts=True, **kw,
    )


def _exact_norms(est, Y, c):
    G = est._input_gradients(Y)
    return np.linalg.norm(G[np.arange(len(Y)), c][:, None, :] - G, axis=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_literal_reference(seed):
    est, X, c = _setup(seed)
    for R in [0.0, 0.05, 0.3, 1.0]:
        L, parts = _L(est, X, c, R)
        for i in range(3):
            for j in range(est.coefs_[1].shape[1]):
                if j == c[i]:
                    continue
                ref = prop22_reference(*est.coefs_[:1], est.intercepts_[0], est.coefs_[1],
                                       est.softplus_alpha, X[i], c[i], j, R)
                p = parts["prop22"][i, j]
                assert ref <= p <= ref * (1 + 1e-10) + 1e-12
                assert L[i, j] == min(p, parts["opnorm"][i, j], parts["global"][i, j])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_R0_equals_exact_gradient_difference(seed):
    est, X, c = _setup(seed, d=20, U=30, K=5)
    L, parts = _L(est, X, c, 0.0)
    ex = _exact_norms(est, X, c)
    mask = np.ones_like(ex, bool)
    mask[np.arange(len(X)), c] = False
    np.testing.assert_allclose(parts["prop22"][mask], ex[mask], rtol=1e-9)
    assert np.all(L[mask] >= ex[mask])
    assert np.all(L[np.arange(len(X)), c] == 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("box", [False, True])
def test_monte_carlo_ball(seed, box):
    est, X, c = _setup(seed, d=10, U=25, K=4, scale=3.0)
    rng = np.random.default_rng(seed)
    lo, hi = (np.zeros(10), np.ones(10)) if box else (None, None)
    for R in [0.1, 0.5, 2.0]:
        L, parts = _L(est, X, c, R, lo=lo, hi=hi)
        for i in range(len(X)):
            H = rng.normal(size=(400, 10))
            H /= np.linalg.norm(H, axis=1, keepdims=True)
            H *= R * rng.uniform(size=(400, 1)) ** (1 / 10)
            Y = X[i] + H
            if box:
                # still in the ball: projection onto a convex set containing x
                Y = np.clip(Y, 0, 1)
            ex = _exact_norms(est, Y, np.full(len(Y), c[i])).max(axis=0)
            for j in range(4):
                if j != c[i]:
                    assert ex[j] <= L[i, j]
                    assert ex[j] <= parts["prop22"][i, j]


@pytest.mark.parametrize("seed", [0, 1])
def test_global_constant_dominates(seed):
    est, X, c = _setup(seed, d=6, U=15, K=3, scale=4.0)
    Lg = mlp_bounds.global_cross_lipschitz(est.coefs_[0], est.coefs_[1])
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(3000, 6)) * 3
    G = est._input_gradients(Y)
    for a in range(3):
        for b in range(3):
            assert np.linalg.norm(G[:, a] - G[:, b], axis=1).max() <= Lg[a, b]
    assert np.all(np.diag(Lg) == 0) and np.allclose(Lg, Lg.T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monotone_in_R_and_box_tighter(seed):
    est, X, c = _setup(seed, d=10, U=20, K=4, scale=3.0)
    prev = None
    for R in [0.0, 0.1, 0.3, 1.0, 3.0]:
        L, parts = _L(est, X, c, R)
        Lb, partsb = _L(est, X, c, R, lo=np.zeros(10), hi=np.ones(10))
        mask = np.isfinite(L) & (L > 0)
        # (up to the last bits of the rounding slack; radii are exactly monotone, see
        # test_certified_radius)
        assert np.all(Lb[mask] <= L[mask] * (1 + 1e-12))
        assert np.all(partsb["prop22"][mask] <= parts["prop22"][mask] * (1 + 1e-12))
        if prev is not None:
            assert np.all(L[mask] >= prev[mask])
        prev = L
    # the box can matter: at a large radius some bound is strictly smaller
    assert np.any(Lb[mask] < L[mask])


def test_active_mask_and_fast_method():
    est, X, c = _setup(0, K=5)
    act = np.zeros((len(X), 5), bool)
    act[:, 0] = True
    L = mlp_bounds.local_cross_lipschitz(*est.coefs_[:1], est.intercepts_[0], est.coefs_[1],
                                         10.0, X, c, np.full(len(X), 0.2), act)
    for i in range(len(X)):
        for j in range(5):
            if j == c[i]:
                assert L[i, j] == 0
            elif j != 0:
                assert L[i, j] == np.inf
    Lf, pf = _L(est, X, c, 0.2, method="local_fast")
    Ll, pl = _L(est, X, c, 0.2)
    mask = np.isfinite(Ll) & (Ll > 0)
    assert np.all(Ll[mask] <= Lf[mask])
    assert np.all(np.isnan(pf["prop22"]))


def test_bad_input():
    est, X, c = _setup(0)
    W1, b1, W2 = est.coefs_[0], est.intercepts_[0], est.coefs_[1]
    R = np.zeros(len(X))
    with pytest.raises(ValueError, match="method"):
        mlp_bounds.local_cross_lipschitz(W1, b1, W2, 10.0, X, c, R, method="exact")
    with pytest.raises(ValueError, match="R must"):
        mlp_bounds.local_cross_lipschitz(W1, b1, W2, 10.0, X, c, -R - 1)
    with pytest.raises(ValueError, match="shape"):
        mlp_bounds.local_cross_lipschitz(W1, b1, W2, 10.0, X[:, :3], c, R)
    with pytest.raises(ValueError, match="active"):
        mlp_bounds.local_cross_lipschitz(W1, b1, W2, 10.0, X, c, R, np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="softplus_alpha"):
        mlp_bounds.local_cross_lipschitz(W1, b1, W2, 0.0, X, c, R)
    with pytest.raises(ValueError, match="class indices"):
        mlp_bounds.local_cross_lipschitz(W1, b1, W2, 10.0, X, c + 10, R)


@pytest.mark.parametrize("seed", [0, 1])
def test_large_hidden_layer_against_reference(seed):
    # several entry blocks and a U large enough for blocked BLAS paths
    est, X, c = _setup(seed, d=12, U=300, K=3, m=3, scale=2.0)
    W1, b1, W2 = est.coefs_[0], est.intercepts_[0], est.coefs_[1]
    for R in [0.0, 0.3]:
        _, parts = _L(est, X, c, R)
        for i in range(2):
            j = (c[i] + 1) % 3
            ref = prop22_reference(W1, b1, W2, est.softplus_alpha, X[i], c[i], j, R)
            assert ref <= parts["prop22"][i, j] <= ref * (1 + 1e-9)
