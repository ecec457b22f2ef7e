"""Certified training of MLPCrossLipClassifier (issue 11): loss, gradients, guarantee, checks."""

import warnings

import numpy as np
import pytest
from scipy.special import expit

import sklearn_crosslip.mlp as mlp_module
from sklearn_crosslip import MLPCrossLipClassifier
from sklearn_crosslip.mlp import _loss_and_grad
from sklearn_crosslip.regularizers.certified import (
    certified_shift,
    power_iteration,
    shifted_margins,
)

EPS_SEARCH = 1e-3  # relative tolerance of the certified-radius search (theorem21.RTOL)


@pytest.fixture(scope="module")
def blobs():
    """Three well separated classes in 12 dimensions, inputs in [0, 1]."""
    rng = np.random.RandomState(0)
    n, d = 240, 12
    y = rng.randint(0, 3, size=n)
    centres = rng.uniform(0.2, 0.8, size=(3, d))
    X = np.clip(centres[y] + rng.normal(0, 0.12, size=(n, d)), 0, 1)
    return X[:180], y[:180], X[180:], y[180:]


def _fit(X, y, **kw):
    params = dict(hidden_units=32, solver="adam", max_iter=40, batch_size=30, random_state=0,
                  regularizer="none", learning_rate_init=1e-2)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPCrossLipClassifier(**params).fit(X, y)


def _problem(seed=0, n=7, d=5, U=6, K=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, K, n)
    W1 = rng.normal(size=(d, U)) * 0.5
    b1 = rng.normal(size=U) * 0.3
    W2 = rng.normal(size=(U, K))
    b2 = rng.normal(size=K)
    return X, y, [W1, b1, W2, b2]


# ------------------------------------------------------------------ the bound itself
def _reference_bound(X, y, W1, b1, W2, a, eps, sigma, bound):
    """Literal loops: sigma * ||(w_c - w_j) * s'(z + eps ||u_r||)||_2 (or without s')."""
    n, K = X.shape[0], W2.shape[1]
    L = np.zeros((n, K))
    for i in range(n):
        c = y[i]
        for j in range(K):
            if j == c:
                continue
            acc = 0.0
            for r in range(W1.shape[1]):
                if bound == "global":
                    s = 1.0
                else:
                    z = sum(X[i, l] * W1[l, r] for l in range(X.shape[1])) + b1[r]
                    nu = np.sqrt(sum(W1[l, r] ** 2 for l in range(X.shape[1])))
                    s = 1.0 / (1.0 + np.exp(-a * (z + eps * nu)))
                acc += ((W2[r, c] - W2[r, j]) * s) ** 2
            L[i, j] = sigma * np.sqrt(acc)
    return L


@pytest.mark.parametrize("bound", ["local_fast", "global"])
def test_shift_matches_literal_reference(bound):
    X, y, (W1, b1, W2, _) = _problem(1)
    L, _, _, _ = certified_shift(X @ W1, b1, W1, W2, y, 2.0, 0.4, 1.7, bound)
    ref = _reference_bound(X, y, W1, b1, W2, 2.0, 0.4, 1.7, bound)
    np.testing.assert_allclose(L, ref, rtol=1e-10, atol=1e-12)


def test_power_iteration_finds_spectral_norm():
    W = np.random.default_rng(3).normal(size=(30, 20))
    sigma, p, q = power_iteration(W, None, n_iter=500, tol=1e-13, random_state=0)
    assert sigma == pytest.approx(np.linalg.norm(W, 2), rel=1e-8)
    np.testing.assert_allclose(np.linalg.norm(p), 1.0)
    assert sigma == pytest.approx(p @ W @ q, rel=1e-12)
    # a single step never exceeds the spectral norm
    s1, _, _ = power_iteration(W, None, n_iter=1, random_state=1)
    assert s1 <= np.linalg.norm(W, 2) * (1 + 1e-12)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("bound", ["local_fast", "global"])
@pytest.mark.parametrize("reg", ["none", "cross_lipschitz", "weight_decay", "dropout"])
def test_gradient_matches_finite_differences(bound, reg):
    X, y, P = _problem(2)
    _, p, q = power_iteration(P[0], None, n_iter=50, random_state=0)
    mask = None
    if reg == "dropout":
        mask = (np.random.default_rng(5).random((X.shape[0], P[0].shape[1])) < 0.7) / 0.7
    cert = (0.4, bound, p, q)

    def f(params):
        return _loss_and_grad(*params, X, y, 2.0, reg, 1e-2, dropout_mask=mask, certified=cert)

    value, grads = f(P)
    rng = np.random.default_rng(7)
    h = 1e-6
    for k in range(4):
        for _ in range(2):
            D = rng.normal(size=P[k].shape)
            plus = [w.copy() for w in P]
            minus = [w.copy() for w in P]
            plus[k] = P[k] + h * D
            minus[k] = P[k] - h * D
            fd = (f(plus)[0] - f(minus)[0]) / (2 * h)
            assert np.sum(grads[k] * D) == pytest.approx(fd, rel=1e-6, abs=1e-9)
    # the certified loss is the cross-entropy of shifted logits: larger than the plain one
    plain, _ = _loss_and_grad(*P, X, y, 2.0, reg, 1e-2, dropout_mask=mask)
    assert value > plain


def test_zero_radius_is_the_plain_loss():
    X, y, P = _problem(4)
    _, p, q = power_iteration(P[0], None, n_iter=5, random_state=0)
    v0, g0 = _loss_and_grad(*P, X, y, 2.0, "cross_lipschitz", 1e-2)
    v1, g1 = _loss_and_grad(*P, X, y, 2.0, "cross_lipschitz", 1e-2,
                            certified=(0.0, "local_fast", p, q))
    assert v0 == v1
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ the guarantee
@pytest.fixture(scope="module")
def certified_model(blobs):
    X, y, _, _ = blobs
    return _fit(X, y, certified_margin=0.3, certified_warmup=10)


def test_positive_shifted_margin_implies_certificate(blobs, certified_model):
    X, y, Xt, yt = blobs
    est = certified_model
    eps = 0.3
    XX = np.vstack([X, Xt])
    yy = np.concatenate([y, yt])
    sm = shifted_margins(est, XX, yy, eps)
    pos = sm > 0
    assert 0.3 < pos.mean() < 1.0 or pos.all()  # non-vacuous
    assert np.all(est.predict(XX[pos]) == yy[pos])
    # Theorem 2.1 at R = eps with the library's bound: m_j / L_j(eps) >= eps for all j
    c = np.searchsorted(est.classes_, yy[pos])
    F = est._logits(XX[pos])
    L = est._local_cross_lipschitz(XX[pos], c, np.full(pos.sum(), eps), method="local")
    rows = np.arange(pos.sum())
    marg = F[rows, c][:, None] - F
    marg[rows, c] = np.inf
    assert np.all(marg >= eps * L * (1 - 1e-12))
    # and the library's certificate (search to relative 1e-3) reaches eps
    for bound in ("local", "local_fast"):
        r = est.certified_radius(XX[pos], yy[pos], bound=bound)
        assert np.all(r >= eps * (1 - 1.01 * EPS_SEARCH))


def test_shifted_margins_reference(blobs, certified_model):
    X, y, _, _ = blobs
    est = certified_model
    from sklearn_crosslip.bounds._common import spectral_norm_upper

    W1, W2 = est.coefs_
    b1 = est.intercepts_[0]
    c = np.searchsorted(est.classes_, y[:20])
    L = _reference_bound(X[:20], c, W1, b1, W2, est.softplus_alpha, 0.3,
                         spectral_norm_upper(W1), "local_fast")
    F = est._logits(X[:20])
    rows = np.arange(20)
    ref = F[rows, c][:, None] - F - 0.3 * L
    ref[rows, c] = np.inf
    np.testing.assert_allclose(shifted_margins(est, X[:20], y[:20], 0.3), ref.min(axis=1),
                               rtol=1e-9, atol=1e-12)


def test_attacks_never_beat_certified_radius(blobs, certified_model):
    _, _, Xt, _ = blobs
    est = certified_model
    r = est.certified_radius(Xt, bound="local")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        delta = est.adversarial_perturbation(Xt, norm=2)
    found = np.all(np.isfinite(delta), axis=1)
    assert found.mean() > 0.5
    dist = np.linalg.norm(delta[found], axis=1)
    assert np.all(dist >= r[found])


def test_certified_training_certifies_more(blobs, certified_model):
    _, _, Xt, yt = blobs
    plain = _fit(*blobs[:2])
    ok_c = certified_model.predict(Xt) == yt
    ok_p = plain.predict(Xt) == yt
    rc = certified_model.certified_radius(Xt, bound="local")
    rp = plain.certified_radius(Xt, bound="local")
    assert ok_c.mean() >= 0.9
    assert np.mean(ok_c & (rc >= 0.3)) > np.mean(ok_p & (rp >= 0.3)) + 0.1
    assert np.mean(np.where(ok_c, rc, 0)) > np.mean(np.where(ok_p, rp, 0))


# ------------------------------------------------------------------ solvers and settings
def test_lbfgs_certified_training(blobs):
    X, y, Xt, yt = blobs
    plain = _fit(X, y, solver="lbfgs", max_iter=60)
    cert = _fit(X, y, solver="lbfgs", max_iter=60, certified_margin=0.3)
    assert np.all(np.isfinite(cert.loss_curve_))
    assert np.mean(shifted_margins(cert, X, y, 0.3) > 0) > np.mean(
        shifted_margins(plain, X, y, 0.3) > 0) + 0.1


@pytest.mark.parametrize("kw", [
    dict(solver="sgd"),
    dict(regularizer="cross_lipschitz", lam=1e-3),
    dict(regularizer="weight_decay", lam=1e-4),
    dict(regularizer="dropout", dropout_rate=0.2),
    dict(adversarial_fraction=0.5, input_box=(0.0, 1.0), max_iter=3),
    dict(adversarial_fraction=0.5, input_box=(0.0, 1.0), adversarial_attack="linearized"),
    dict(augmentation=lambda Xb, rng: np.clip(Xb + rng.normal(0, 0.02, Xb.shape), 0, 1)),
    dict(certified_bound="global"),
])
def test_combines_with_settings(blobs, kw):
    X, y, _, _ = blobs
    params = dict(max_iter=5, certified_margin=0.2, certified_warmup=2)
    params.update(kw)
    est = _fit(X, y, **params)
    base = _fit(X, y, **{**params, "certified_margin": 0.0, "certified_warmup": 0})
    assert np.all(np.isfinite(est.loss_curve_))
    assert not np.allclose(est.coefs_[0], base.coefs_[0])


def test_warmup_ramps_radius_linearly(blobs, monkeypatch):
    X, y, _, _ = blobs
    seen = []
    orig = mlp_module._loss_and_grad

    def spy(*args, certified=None, **kw):
        seen.append(None if certified is None else certified[0])
        return orig(*args, certified=certified, **kw)

    monkeypatch.setattr(mlp_module, "_loss_and_grad", spy)
    _fit(X, y, max_iter=4, certified_margin=0.4, certified_warmup=2, tol=1e9)
    n_batches = 6  # 180 points in batches of 30
    expected = [0.4 * min(1.0, (k + 1) / (2 * n_batches)) for k in range(4 * n_batches)]
    # tol=1e9 would stop after 11 epochs without improvement; warm-up epochs do not count
    np.testing.assert_allclose(seen, expected, rtol=1e-12)


def test_warmup_epochs_do_not_count_for_convergence(blobs):
    X, y, _, _ = blobs
    est = _fit(X, y, max_iter=20, certified_margin=0.3, certified_warmup=15, tol=1e9)
    # every epoch is "no improvement" with tol=1e9: stop 11 epochs after the warm-up
    assert est.n_iter_ == 20
    est = _fit(X, y, max_iter=40, certified_margin=0.3, certified_warmup=5, tol=1e9)
    assert est.n_iter_ == 5 + 12


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("value", [-0.1, np.nan, np.inf, "0.3"])
def test_bad_margin(blobs, value):
    X, y, _, _ = blobs
    with pytest.raises(ValueError, match="certified_margin"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", certified_margin=value).fit(X, y)


def test_bad_schedule_and_solver(blobs):
    X, y, _, _ = blobs
    with pytest.raises(ValueError, match="longer than training"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", max_iter=5, certified_margin=0.3,
                              certified_warmup=6).fit(X, y)
    with pytest.raises(ValueError, match="certified_warmup"):
        MLPCrossLipClassifier(hidden_units=4, solver="lbfgs", certified_margin=0.3,
                              certified_warmup=2).fit(X, y)
    with pytest.raises(ValueError, match="certified_warmup"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", certified_warmup=-1).fit(X, y)
    with pytest.raises(ValueError, match="certified_bound"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", certified_margin=0.3,
                              certified_bound="local").fit(X, y)


def test_shifted_margins_bad_input(certified_model, blobs):
    X, y, _, _ = blobs
    with pytest.raises(ValueError, match="eps"):
        shifted_margins(certified_model, X, y, -1.0)
    with pytest.raises(ValueError, match="eps"):
        shifted_margins(certified_model, X, y, np.nan)
    with pytest.raises(ValueError, match="classes_"):
        shifted_margins(certified_model, X, y + 7, 0.3)
