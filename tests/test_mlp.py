"""Tests of MLPCrossLipClassifier and the MLP regularisers (small data, fast)."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_crosslip import MLPCrossLipClassifier
from sklearn_crosslip._mlp_numba import (
    adam_step_inplace,
    nesterov_step_inplace,
    softplus_and_derivative,
    softplus_derivative,
    softplus_forward_inplace,
)
from sklearn_crosslip.datasets import load_digits
from sklearn_crosslip.mlp import _Layout, _loss_and_grad
from sklearn_crosslip.regularizers.mlp import (
    cross_lipschitz_penalty,
    cross_lipschitz_penalty_and_grad,
    weight_decay_penalty_and_grad,
)

REGULARIZERS = ["cross_lipschitz", "weight_decay", "none"]


def _random_net(rng, d=6, U=8, K=4, scale=0.6):
    W1 = rng.normal(scale=scale, size=(d, U))
    b1 = rng.normal(scale=0.3, size=U)
    W2 = rng.normal(size=(U, K))
    b2 = rng.normal(size=K)
    return W1, b1, W2, b2


def _softplus_ref(t, a):
    # literal s(t) = log(1 + exp(a t)) / a, in long double for moderate |a t|
    t = np.asarray(t, dtype=np.longdouble)
    return np.log1p(np.exp(a * t)) / a


def _forward_ref(X, W1, b1, W2, b2, a):
    Z = X @ W1 + b1
    return _softplus_ref(Z, a) @ W2 + b2


def _central_diff(f, x, h):
    g = np.empty(x.size)
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.fixture(params=["serial", "parallel"])
def kernel_mode(request, monkeypatch):
    """Run the numba kernels through their serial or their prange wrappers."""
    import sklearn_crosslip._mlp_numba as kernels

    size = 0 if request.param == "parallel" else 1 << 62
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE", size)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE_STREAMING", size)
    return request.param


@pytest.fixture(scope="module")
def digits_small():
    X, y = load_digits()
    return X[:240], y[:240], X[240:400], y[240:400]


# --------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_kernels_match_reference(dtype, kernel_mode):
    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(13, 7)) * 3).astype(dtype)
    b = rng.normal(size=7).astype(dtype)
    a = 10.0
    H_ref = _softplus_ref(Z.astype(np.float64) + b, a).astype(np.float64)
    S_ref = 1.0 / (1.0 + np.exp(-a * (Z.astype(np.float64) + b)))
    tol = 1e-5 if dtype == np.float32 else 1e-13
    H, S = softplus_and_derivative(Z, b, dtype(a))
    np.testing.assert_allclose(H, H_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(S, S_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(softplus_derivative(Z, b, dtype(a)), S_ref, rtol=tol, atol=tol)
    Z2, S2 = Z.copy(), np.empty_like(Z)
    softplus_forward_inplace(Z2, b, dtype(a), S2)
    np.testing.assert_allclose(Z2, H_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(S2, S_ref, rtol=tol, atol=tol)


def test_softplus_kernels_no_overflow_extreme_inputs(kernel_mode):
    Z = np.array([[-1e6, -800.0, -1.0, 0.0, 1.0, 800.0, 1e6, 1e300]])
    b = np.zeros(Z.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H, S = softplus_and_derivative(Z, b, 10.0)
        Z2, S2 = Z.copy(), np.empty_like(Z)
        softplus_forward_inplace(Z2, b, 10.0, S2)
    assert np.all(np.isfinite(H)) and np.all(np.isfinite(S))
    np.testing.assert_allclose(H[0, -3:], Z[0, -3:])
    assert H[0, 0] == 0.0 and S[0, 0] == 0.0 and S[0, -1] == 1.0
    np.testing.assert_allclose(H, Z2, rtol=1e-15)
    np.testing.assert_allclose(S, S2, rtol=1e-15)


def test_optimizer_steps_match_numpy(kernel_mode):
    rng = np.random.default_rng(8)
    N = 100_003
    p, m1, m2, v = rng.normal(size=N), rng.normal(size=N), rng.random(N), rng.normal(size=N)
    g = rng.normal(size=N).astype(np.float32)
    g64 = g.astype(np.float64)
    m1_ref = 0.9 * m1 + 0.1 * g64
    m2_ref = 0.999 * m2 + 0.001 * g64**2
    p_ref = p - 0.01 * m1_ref / (np.sqrt(m2_ref) + 1e-8)
    pa, m1a, m2a = p.copy(), m1.copy(), m2.copy()
    adam_step_inplace(pa, g, m1a, m2a, 0.01, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(m1a, m1_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m2a, m2_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pa, p_ref, rtol=1e-12, atol=1e-14)
    v_ref = 0.9 * v - 0.1 * g64
    p_ref = p + 0.9 * v_ref - 0.1 * g64
    pn, vn = p.copy(), v.copy()
    nesterov_step_inplace(pn, g, vn, 0.1, 0.9)
    np.testing.assert_allclose(vn, v_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pn, p_ref, rtol=1e-12, atol=1e-14)


# -------------------------------------------------------------- the objective
@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_objective_gradient_matches_finite_differences(regularizer, kernel_mode):
    rng = np.random.default_rng(1)
    d, U, K, n = 5, 6, 3, 17
    X = rng.normal(size=(n, d))
    y = rng.integers(0, K, n)
    W1, b1, W2, b2 = _random_net(rng, d, U, K)
    layout = _Layout(d, U, K)
    theta = layout.pack(W1, b1, W2, b2)

    def value(t):
        return _loss_and_grad(*layout.unpack(t, np.float64), X, y, 3.0, regularizer, 0.3)[0]

    _, grads = _loss_and_grad(W1, b1, W2, b2, X, y, 3.0, regularizer, 0.3)
    g = layout.pack(*grads)
    g_num = _central_diff(value, theta, 1e-6)
    np.testing.assert_allclose(g, g_num, rtol=1e-6, atol=1e-7)


def test_objective_gradient_with_dropout_mask():
    rng = np.random.default_rng(2)
    d, U, K, n = 4, 6, 3, 11
    X = rng.normal(size=(n, d))
    y = rng.integers(0, K, n)
    W1, b1, W2, b2 = _random_net(rng, d, U, K)
    mask = (rng.random((n, U)) < 0.6) / 0.6
    layout = _Layout(d, U, K)
    theta = layout.pack(W1, b1, W2, b2)

    def value(t):
        p = layout.unpack(t, np.float64)
        return _loss_and_grad(*p, X, y, 2.0, "dropout", 0.0, dropout_mask=mask)[0]

    _, grads = _loss_and_grad(W1, b1, W2, b2, X, y, 2.0, "dropout", 0.0, dropout_mask=mask)
    np.testing.assert_allclose(
        layout.pack(*grads), _central_diff(value, theta, 1e-6), rtol=1e-6, atol=1e-7
    )


def test_objective_value_is_cross_entropy_plus_penalty():
    rng = np.random.default_rng(3)
    d, U, K, n = 5, 7, 4, 9
    X = rng.normal(size=(n, d))
    y = rng.integers(0, K, n)
    W1, b1, W2, b2 = _random_net(rng, d, U, K)
    F = _forward_ref(X, W1, b1, W2, b2, 10.0).astype(np.float64)
    ce = np.mean(np.log(np.exp(F).sum(axis=1)) - F[np.arange(n), y])
    v_none = _loss_and_grad(W1, b1, W2, b2, X, y, 10.0, "none", 5.0)[0]
    assert v_none == pytest.approx(ce, rel=1e-12)
    v_wd = _loss_and_grad(W1, b1, W2, b2, X, y, 10.0, "weight_decay", 0.5)[0]
    assert v_wd == pytest.approx(ce + 0.5 * (np.sum(W1**2) + np.sum(W2**2)), rel=1e-12)
    v_cl = _loss_and_grad(W1, b1, W2, b2, X, y, 10.0, "cross_lipschitz", 0.5)[0]
    assert v_cl == pytest.approx(
        ce + 0.5 * cross_lipschitz_penalty(X, W1, b1, W2, 10.0), rel=1e-12
    )


def test_float32_objective_close_to_float64():
    rng = np.random.default_rng(4)
    d, U, K, n = 20, 30, 5, 50
    X = rng.random((n, d))
    y = rng.integers(0, K, n)
    p64 = _random_net(rng, d, U, K, scale=0.3)
    p32 = [p.astype(np.float32) for p in p64]
    v64, g64 = _loss_and_grad(*p64, X, y, 10.0, "cross_lipschitz", 1e-2)
    v32, g32 = _loss_and_grad(*p32, X.astype(np.float32), y, 10.0, "cross_lipschitz", 1e-2)
    assert v32 == pytest.approx(v64, rel=1e-5)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * np.abs(b).max())


# ------------------------------------------------------------- the regulariser
def _literal_omega(X, W1, b1, W2, b2, a, h=1e-5):
    """Eq. (6) literally: input gradients by central differences, all pairs (l, m)."""
    n, d = X.shape
    K = W2.shape[1]
    total = 0.0
    for i in range(n):
        grads = np.empty((K, d))
        for k in range(d):
            e = np.zeros(d)
            e[k] = h
            up = _forward_ref(X[i:i + 1] + e, W1, b1, W2, b2, a)[0]
            down = _forward_ref(X[i:i + 1] - e, W1, b1, W2, b2, a)[0]
            grads[:, k] = (up - down).astype(np.float64) / (2 * h)
        for l in range(K):
            for m in range(K):
                total += np.sum((grads[l] - grads[m]) ** 2)
    return total / (n * K**2)


@pytest.mark.parametrize("K", [2, 4])
def test_cross_lipschitz_matches_literal_eq6(K):
    rng = np.random.default_rng(5)
    d, U, n = 4, 6, 7
    X = rng.normal(size=(n, d))
    W1, b1, W2, b2 = _random_net(rng, d, U, K)
    omega = cross_lipschitz_penalty(X, W1, b1, W2, 3.0)
    literal = _literal_omega(X, W1, b1, W2, b2, 3.0)
    assert omega == pytest.approx(literal, rel=1e-7)
    # the analytic value does not depend on b2 and is invariant to adding the
    # same function to every output (Section 3: coherent with the loss)
    W2_shift = W2 + rng.normal(size=(U, 1))
    assert cross_lipschitz_penalty(X, W1, b1, W2_shift, 3.0) == pytest.approx(omega, rel=1e-12)


def test_cross_lipschitz_gradient_matches_finite_differences(kernel_mode):
    rng = np.random.default_rng(6)
    d, U, K, n = 5, 7, 3, 9
    X = rng.normal(size=(n, d))
    W1, b1, W2, _ = _random_net(rng, d, U, K)
    omega, gW1, gb1, gW2 = cross_lipschitz_penalty_and_grad(X, W1, b1, W2, 4.0)
    assert omega == pytest.approx(cross_lipschitz_penalty(X, W1, b1, W2, 4.0), rel=1e-13)
    for arr, g in ((W1, gW1), (b1, gb1), (W2, gW2)):
        shape = arr.shape

        def f(v, arr=arr, shape=shape):
            saved = arr.copy()
            arr[...] = v.reshape(shape)
            out = cross_lipschitz_penalty(X, W1, b1, W2, 4.0)
            arr[...] = saved
            return out

        np.testing.assert_allclose(
            g.ravel(), _central_diff(f, arr.ravel().copy(), 1e-6), rtol=1e-6, atol=1e-8
        )


def test_weight_decay_penalty():
    rng = np.random.default_rng(7)
    W1, _, W2, _ = _random_net(rng)
    omega, g1, g2 = weight_decay_penalty_and_grad(W1, W2)
    assert omega == pytest.approx(np.sum(W1**2) + np.sum(W2**2), rel=1e-13)
    np.testing.assert_allclose(g1, 2 * W1)
    np.testing.assert_allclose(g2, 2 * W2)


def test_cross_lipschitz_regularisation_shrinks_omega(digits_small):
    X, y, _, _ = digits_small
    common = dict(hidden_units=24, max_iter=80, random_state=0)
    omegas = []
    for lam in (0.0, 1e-2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = MLPCrossLipClassifier(lam=lam, **common).fit(X, y)
        omegas.append(
            cross_lipschitz_penalty(X, est.coefs_[0], est.intercepts_[0], est.coefs_[1], 10.0)
        )
    assert omegas[1] < 0.5 * omegas[0]


# ------------------------------------------------------------ fitted estimator
@pytest.fixture(scope="module")
def fitted(digits_small):
    X, y, _, _ = digits_small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPCrossLipClassifier(hidden_units=20, max_iter=60, random_state=0).fit(X, y)


def test_fitted_attributes_layout(fitted, digits_small):
    X, y, _, _ = digits_small
    d, K = X.shape[1], np.unique(y).size
    W1, W2 = fitted.coefs_
    b1, b2 = fitted.intercepts_
    assert W1.shape == (d, 20) and W2.shape == (20, K)
    assert b1.shape == (20,) and b2.shape == (K,)
    assert all(a.dtype == np.float64 for a in (W1, W2, b1, b2))
    assert fitted.n_features_in_ == d
    assert fitted.n_iter_ >= 1 and len(fitted.loss_curve_) == fitted.n_iter_
    assert fitted.lam_ == pytest.approx(1e-3)
    np.testing.assert_array_equal(fitted.classes_, np.unique(y))
    F = fitted._logits(X[:5])
    np.testing.assert_allclose(F, _forward_ref(X[:5], W1, b1, W2, b2, 10.0).astype(float),
                               rtol=1e-12, atol=1e-12)


def test_input_gradients_match_finite_differences(fitted, digits_small):
    X = digits_small[2][:4]
    G = fitted._input_gradients(X)
    K, d = fitted.coefs_[1].shape[1], X.shape[1]
    assert G.shape == (4, K, d) and G.dtype == np.float64
    h = 1e-6
    for i in range(X.shape[0]):
        num = np.empty((K, d))
        for k in range(d):
            e = np.zeros(d)
            e[k] = h
            num[:, k] = (fitted._logits((X[i] + e)[None]) - fitted._logits((X[i] - e)[None]))[0] / (
                2 * h
            )
        np.testing.assert_allclose(G[i], num, rtol=1e-5, atol=1e-6)


def test_logits_error_bounds_actual_error(fitted, digits_small):
    X = np.vstack([digits_small[2], 30 * digits_small[2][:10]])
    W1, W2 = fitted.coefs_
    b1, b2 = fitted.intercepts_
    exact = _forward_ref(X, W1.astype(np.longdouble), b1, W2, b2, 10.0)
    err = np.abs(fitted._logits(X) - exact).max(axis=1).astype(np.float64)
    bound = fitted._logits_error(X)
    assert bound.shape == (X.shape[0],)
    assert np.all(bound >= err)
    assert np.all(bound < 1e-9)  # not vacuous
    # the fused pass used by certified_radius gives the same logits and bound
    F, bound2 = fitted._logits_and_error(X)
    np.testing.assert_array_equal(F, fitted._logits(X))
    np.testing.assert_array_equal(bound2, bound)


def test_predict_proba_decision_function_consistency(fitted, digits_small):
    X = digits_small[2]
    P = fitted.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(fitted.predict_log_proba(X)), P, rtol=1e-12)
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[P.argmax(axis=1)])
    np.testing.assert_allclose(fitted.decision_function(X), fitted._logits(X))
    assert fitted.score(*digits_small[2:]) > 0.8


def test_binary_decision_function_and_two_outputs(digits_small):
    X, y, _, _ = digits_small
    mask = np.isin(y, [3, 8])
    est = MLPCrossLipClassifier(hidden_units=10, max_iter=40, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X[mask], np.where(y[mask] == 3, "three", "eight"))
    F = est._logits(X[:6])
    assert est.coefs_[1].shape == (10, 2) and F.shape == (6, 2)
    np.testing.assert_allclose(est.decision_function(X[:6]), F[:, 1] - F[:, 0])
    assert est.predict_proba(X[:6]).shape == (6, 2)


def test_deterministic_under_random_state(digits_small):
    X, y, _, _ = digits_small
    kw = dict(hidden_units=12, max_iter=15, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPCrossLipClassifier(**kw).fit(X, y)
        b = MLPCrossLipClassifier(**kw).fit(X, y)
        c = MLPCrossLipClassifier(**{**kw, "random_state": 4}).fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize(
    "solver, regularizer", [("adam", "cross_lipschitz"), ("sgd", "weight_decay"),
                            ("adam", "dropout")]
)
def test_stochastic_solvers_learn(digits_small, solver, regularizer):
    X, y, Xt, yt = digits_small
    lr = 0.01 if solver == "adam" else 0.1
    est = MLPCrossLipClassifier(hidden_units=32, solver=solver, regularizer=regularizer,
                                learning_rate_init=lr, max_iter=30, batch_size=32,
                                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.score(Xt, yt) > 0.8
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert est.n_iter_ == len(est.loss_curve_)


def test_transform_batch_hook_is_called_with_current_weights(digits_small):
    X, y, _, _ = digits_small
    calls = []

    class Hooked(MLPCrossLipClassifier):
        def _transform_batch(self, Xb, yb, rng):
            calls.append((Xb.shape[0], self.coefs_[0].copy()))
            # duplicate the batch: the loop must accept a different batch size
            return np.vstack([Xb, Xb]), np.concatenate([yb, yb])

    est = Hooked(hidden_units=8, solver="adam", max_iter=2, batch_size=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert len(calls) == 2 * 3  # 2 epochs x ceil(240 / 100) batches
    assert not np.array_equal(calls[0][1], calls[-1][1])  # weights move between batches


def test_warm_start_continues(digits_small):
    X, y, _, _ = digits_small
    est = MLPCrossLipClassifier(hidden_units=12, max_iter=10, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        first = est.loss_
        est.fit(X, y)
    assert est.loss_ < first
    with pytest.raises(ValueError, match="same classes"):
        est.fit(X[y < 5], y[y < 5])


def test_max_iter_convergence_warning(digits_small):
    X, y, _, _ = digits_small
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        MLPCrossLipClassifier(hidden_units=8, max_iter=2, random_state=0).fit(X, y)


def test_pickle_round_trip(fitted, digits_small):
    X = digits_small[2]
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(clone._input_gradients(X[:3]), fitted._input_gradients(X[:3]))


def test_grid_search_pipeline_parallel(digits_small):
    X, y, _, _ = digits_small
    pipe = make_pipeline(
        MinMaxScaler(), MLPCrossLipClassifier(hidden_units=10, max_iter=20, random_state=0)
    )
    grid = GridSearchCV(
        pipe,
        {
            "mlpcrosslipclassifier__lam": [1e-5, 1e-3],
            "mlpcrosslipclassifier__regularizer": ["cross_lipschitz", "weight_decay"],
        },
        cv=2,
        n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_score_ > 0.7
    assert grid.predict(X[:5]).shape == (5,)


def test_no_overflow_warnings_for_large_inputs(digits_small):
    X, y, _, _ = digits_small
    Xbig = X * 1e4  # |a t| in the 1e5 range
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = MLPCrossLipClassifier(hidden_units=8, max_iter=5, tol=0.0, random_state=0)
        try:
            est.fit(Xbig, y)
        except ConvergenceWarning:
            pass
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(Xbig, y)
        warnings.simplefilter("error")
        P = est.predict_proba(Xbig * 100)
        est.predict_log_proba(Xbig * 100)
        est._logits_error(Xbig)
        est._input_gradients(Xbig[:3])
        # beyond the float32 range the fit switches to float64 training
        est.fit(X * 1e200, y)
    assert np.all(np.isfinite(P))
    assert np.all(np.isfinite(est.coefs_[0]))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "params, match",
    [
        ({"softplus_alpha": 0.0}, "softplus_alpha"),
        ({"softplus_alpha": -1.0}, "softplus_alpha"),
        ({"softplus_alpha": np.inf}, "softplus_alpha"),
        ({"hidden_units": 0}, "hidden_units"),
        ({"hidden_units": 2.5}, "hidden_units"),
        ({"regularizer": "l1"}, "regularizer"),
        ({"solver": "newton"}, "solver"),
        ({"lam": -1e-3}, "lam"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"regularizer": "dropout"}, "stochastic solver"),
    ],
)
def test_invalid_parameters(params, match, digits_small):
    X, y, _, _ = digits_small
    with pytest.raises(ValueError, match=match):
        MLPCrossLipClassifier(**params).fit(X, y)


def test_bad_data(fitted, digits_small):
    X, y, _, _ = digits_small
    est = MLPCrossLipClassifier(hidden_units=4, max_iter=3)
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(Xnan, y)
    Xinf = X.copy()
    Xinf[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.fit(Xinf, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="2D array"):
        est.fit(X[0], y)
    with pytest.raises(ValueError, match="only one class"):
        est.fit(X, np.zeros(X.shape[0]))
    with pytest.raises(ValueError, match="Unknown label type"):
        est.fit(X, np.linspace(0, 1, X.shape[0]))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :10])
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict_proba(Xnan)
    with pytest.raises(NotFittedError):
        MLPCrossLipClassifier().predict(X)


def test_protocol_delegations_to_bounds(fitted, digits_small):
    mlp_bounds = pytest.importorskip("sklearn_crosslip.bounds.mlp_bounds")
    X = digits_small[2][:3]
    c = fitted._logits(X).argmax(axis=1)
    L = fitted._local_cross_lipschitz(X, c, np.full(3, 0.1))
    assert L.shape == (3, fitted.classes_.size)
    G = fitted._global_cross_lipschitz()
    assert G.shape == (fitted.classes_.size,) * 2
    assert mlp_bounds is not None


# --------------------------------------------------------- scikit-learn checks
_CHECK_SKIPS = {}


@parametrize_with_checks(
    [MLPCrossLipClassifier(hidden_units=8, max_iter=100, random_state=0),
     # certified training (issue 11) must keep the estimator scikit-learn compatible
     MLPCrossLipClassifier(hidden_units=8, solver="adam", max_iter=100, certified_margin=0.1,
                           certified_warmup=2, learning_rate_init=1e-2, random_state=0)],
    expected_failed_checks=lambda est: _CHECK_SKIPS,
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
