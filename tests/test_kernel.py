"""Tests of KernelCrossLipClassifier and the kernel regularisers (small data, fast)."""

import pickle
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from sklearn_crosslip.kernel import (
    KernelCrossLipClassifier,
    _build_problem,
    _cross_entropy,
    _train_sq_dists,
)
from sklearn_crosslip.regularizers.kernel import (
    cross_lipschitz,
    cross_lipschitz_matrix,
    no_regularizer,
    rkhs,
)

REGULARIZERS = ["cross_lipschitz", "rkhs", "none"]


def _data(n=60, d=5, K=3, seed=0):
    X, y = make_blobs(n_samples=n, n_features=d, centers=K, cluster_std=2.0, random_state=seed)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    return X, y


def _kernel(X, gamma):
    S = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return np.exp(-gamma * S), S


def _literal_input_gradients(alpha, X_fit, gamma, X):
    """grad f_l(x_i) = -2 gamma sum_r alpha_lr k(x_i, x_r) (x_i - x_r), by explicit loops."""
    K, n = alpha.shape
    G = np.zeros((X.shape[0], K, X.shape[1]))
    for i, x in enumerate(X):
        for r in range(n):
            k = np.exp(-gamma * np.sum((x - X_fit[r]) ** 2))
            for l_ in range(K):
                G[i, l_] += -2.0 * gamma * alpha[l_, r] * k * (x - X_fit[r])
    return G


def _literal_omega(alpha, X_fit, gamma, X=None):
    """Eq. (6): 1/(n K^2) sum_{i <= n} sum_{l,m} ||grad f_l(x_i) - grad f_m(x_i)||^2.

    The expansion is over ``X_fit``; the mean runs over the training points ``X``
    (``X_fit`` itself when None, the paper's model).
    """
    X = X_fit if X is None else X
    K, n = alpha.shape[0], X.shape[0]
    G = _literal_input_gradients(alpha, X_fit, gamma, X)
    total = 0.0
    for i in range(n):
        for l_ in range(K):
            for m in range(K):
                total += np.sum((G[i, l_] - G[i, m]) ** 2)
    return total / (n * K * K)


def _direct_objective(alpha, X, y_idx, gamma, regularizer, lam):
    """Eq. (7) evaluated directly from the dual coefficients."""
    Kmat, _ = _kernel(X, gamma)
    F = alpha @ Kmat
    Fmax = F.max(0)
    lse = Fmax + np.log(np.exp(F - Fmax).sum(0))
    loss = np.mean(lse - F[y_idx, np.arange(len(y_idx))])
    if regularizer == "none":
        return loss
    if regularizer == "rkhs":
        return loss + lam * sum(a @ Kmat @ a for a in alpha)
    return loss + lam * _literal_omega(alpha, X, gamma)


def _fd_grad(f, w, h=1e-6):
    g = np.empty_like(w)
    for k in range(w.size):
        e = np.zeros_like(w)
        e[k] = h
        g[k] = (f(w + e) - f(w - e)) / (2 * h)
    return g


# --------------------------------------------------------------- regularisers
def test_cross_lipschitz_matrix_matches_definition_and_brief_formula():
    rng = np.random.default_rng(0)
    n, d, gamma = 30, 4, 0.8
    X = rng.random((n, d))
    Kmat, S = _kernel(X, gamma)
    Q = cross_lipschitz_matrix(Kmat, S, gamma)
    # Q_rs = 4 gamma^2 sum_i k_ir k_is <x_i - x_r, x_i - x_s>, summed literally
    Q_lit = np.zeros((n, n))
    for i in range(n):
        V = 2 * gamma * Kmat[i][:, None] * (X[i] - X)
        Q_lit += V @ V.T
    np.testing.assert_allclose(Q, Q_lit, rtol=1e-12, atol=1e-14 * np.abs(Q_lit).max())
    # the equivalent form Q = 4 gamma^2 [K D K - A - A^T + (K K) o P], A = (K o P)^T K
    P = X @ X.T
    A = (Kmat * P).T @ Kmat
    Q_alt = 4 * gamma**2 * (Kmat @ np.diag(np.diag(P)) @ Kmat - A - A.T + (Kmat @ Kmat) * P)
    np.testing.assert_allclose(Q, Q_alt, rtol=1e-10, atol=1e-12 * np.abs(Q_lit).max())
    assert np.array_equal(Q, Q.T)
    assert np.linalg.eigvalsh(Q).min() > -1e-12 * np.abs(Q).max()
    # inputs untouched unless overwrite is requested
    np.testing.assert_array_equal(S, _kernel(X, gamma)[1])


@pytest.mark.parametrize("K", [2, 3, 5])
def test_fast_omega_equals_literal_eq6(K):
    rng = np.random.default_rng(K)
    n, d, gamma = 20, 3, 1.3
    X = rng.random((n, d))
    alpha = rng.standard_normal((K, n))
    Kmat, S = _kernel(X, gamma)
    Q = cross_lipschitz_matrix(Kmat, S, gamma)
    value, grad = cross_lipschitz(alpha, Q)
    assert value == pytest.approx(_literal_omega(alpha, X, gamma), rel=1e-11)
    g_fd = _fd_grad(lambda w: cross_lipschitz(w.reshape(K, n), Q)[0], alpha.ravel(), 1e-5)
    np.testing.assert_allclose(grad.ravel(), g_fd, rtol=1e-6, atol=1e-8 * np.abs(g_fd).max())
    # invariance of eq. (6) under adding the same function to every output
    shifted = alpha + rng.standard_normal(n)[None, :]
    assert cross_lipschitz(shifted, Q)[0] == pytest.approx(value, rel=1e-10)


def test_rkhs_and_none_regularizers():
    rng = np.random.default_rng(1)
    Kmat, _ = _kernel(rng.random((15, 3)), 0.5)
    alpha = rng.standard_normal((3, 15))
    value, grad = rkhs(alpha, Kmat)
    assert value == pytest.approx(sum(a @ Kmat @ a for a in alpha), rel=1e-12)
    np.testing.assert_allclose(grad, 2 * alpha @ Kmat, rtol=1e-12)
    v0, g0 = no_regularizer(alpha)
    assert v0 == 0.0 and not g0.any() and g0.shape == alpha.shape


# ----------------------------------------------------------------- objective
@pytest.mark.parametrize("regularizer", REGULARIZERS)
@pytest.mark.parametrize("duplicates", [False, True])
def test_objective_gradient_and_change_of_variables(regularizer, duplicates):
    """Analytic gradient vs finite differences; values equal eq. (7) at alpha = u U^{-T}.

    With duplicated training points the kernel matrix is singular and the
    preconditioner needs its jitter.
    """
    X, y = _data(n=24, d=3, K=3, seed=2)
    if duplicates:
        X[5] = X[4]
        X[11] = X[4]
    gamma, lam, K, n = 2.0, 0.05, 3, X.shape[0]
    S = _train_sq_dists(X, np.einsum("ij,ij->i", X, X))
    obj, to_alpha, exact = _build_problem([S], gamma, y, K, regularizer, lam)
    rng = np.random.default_rng(3)
    # choose alpha = w of unit size and u = w U^T (to_alpha inverts this map)
    w = rng.standard_normal((K, n))
    Uinv_T = to_alpha(np.eye(n))  # rows: e_r U^{-T}
    u = np.linalg.solve(Uinv_T.T, w.T).T
    np.testing.assert_allclose(to_alpha(u), w, rtol=1e-8, atol=1e-8)
    value, grad = obj(u.ravel())
    g_fd = _fd_grad(lambda v: obj(v)[0], u.ravel(), 1e-6)
    np.testing.assert_allclose(grad, g_fd, rtol=1e-5, atol=1e-7 * np.abs(g_fd).max())
    direct = _direct_objective(w, X, y, gamma, regularizer, lam)
    assert exact(u, w) == pytest.approx(direct, rel=1e-9)
    # the minimised value differs from eq. (7) only by the jitter's ridge term
    delta = obj.delta
    if regularizer == "rkhs":
        extra = delta / 2 * np.sum(w**2)
    elif regularizer == "cross_lipschitz":
        extra = delta / (2 * K) * (K * np.sum(w**2) - np.sum(w.sum(0) ** 2))
    else:
        extra = 0.0
    assert 0 <= extra <= 1e-8 * direct
    assert value == pytest.approx(direct + extra, rel=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    F = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -800.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, g = _cross_entropy(F, np.array([0, 1, 1]))
    assert np.isfinite(loss) and np.isfinite(g).all()
    # columns are points: losses 0, 0 and 800 (up to e^{-800})
    assert loss == pytest.approx(800.0 / 3)


@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_fit_reaches_optimum_of_direct_alpha_problem(regularizer):
    """The fitted dual_coef_ minimises eq. (7): compare with L-BFGS run directly in alpha."""
    X, y = _data(n=30, d=3, K=3, seed=4)
    lam = 0.0 if regularizer == "none" else (1e-2 if regularizer == "cross_lipschitz" else 1e-3)
    est = KernelCrossLipClassifier(
        gamma=3.0, regularizer=regularizer, lam=lam, tol=1e-10, max_iter=3000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    direct = _direct_objective(est.dual_coef_, X, y, 3.0, regularizer, lam)
    assert est.objective_ == pytest.approx(direct, rel=1e-6, abs=1e-9)
    if regularizer == "none":
        return  # no finite minimiser (separable data)
    Kmat, S = _kernel(X, 3.0)
    Q = cross_lipschitz_matrix(Kmat, S, 3.0)
    K, n = 3, X.shape[0]

    def f(w):
        a = w.reshape(K, n)
        F = a @ Kmat
        loss, gF = _cross_entropy(F, y)
        r, g = cross_lipschitz(a, Q) if regularizer == "cross_lipschitz" else rkhs(a, Kmat, F)
        return loss + lam * r, (gF @ Kmat + lam * g).ravel()

    with threadpool_limits(1):  # tiny BLAS calls: threads only add overhead
        res = minimize(f, np.zeros(K * n), jac=True, method="BFGS",
                       options={"maxiter": 5000, "gtol": 1e-10})
    # both solvers reach the same minimum (the problem is strictly convex)
    assert est.objective_ == pytest.approx(res.fun, rel=1e-7)


# --------------------------------------------------------- model quantities
def test_input_gradients_match_finite_differences_and_literal():
    X, y = _data(n=40, d=4, K=3, seed=5)
    est = KernelCrossLipClassifier(lam=1e-2).fit(X, y)
    Xq = np.random.default_rng(6).random((5, 4))
    G = est._input_gradients(Xq)
    assert G.shape == (5, 3, 4) and G.dtype == np.float64
    np.testing.assert_allclose(
        G, _literal_input_gradients(est.dual_coef_, est.X_fit_, est.gamma_, Xq), rtol=1e-9,
        atol=1e-12 * np.abs(G).max(),
    )
    h = 1e-6
    for t in range(4):
        e = np.zeros(4)
        e[t] = h
        fd = (est._logits(Xq + e) - est._logits(Xq - e)) / (2 * h)
        np.testing.assert_allclose(G[:, :, t], fd, rtol=1e-5, atol=1e-7 * np.abs(G).max())


def test_logits_and_error_bound_against_extended_precision():
    X, y = _data(n=50, d=6, K=4, seed=7)
    est = KernelCrossLipClassifier(lam=1e-3).fit(X * 10, y)  # larger norms
    Xq = np.random.default_rng(8).random((20, 6)) * 10
    F = est._logits(Xq)
    # reference in long double, from the definition f_j(x) = sum_r a_jr exp(-g ||x - x_r||^2)
    ld = np.longdouble
    D = ((Xq.astype(ld)[:, None, :] - est.X_fit_.astype(ld)[None]) ** 2).sum(-1)
    F_ref = np.exp(-ld(est.gamma_) * D) @ est.dual_coef_.astype(ld).T
    err = np.abs(F.astype(ld) - F_ref).max(axis=1)
    bound = est._logits_error(Xq)
    assert bound.shape == (20,) and (bound > 0).all()
    assert (err <= bound).all()
    # the bound is conservative but not absurd
    assert bound.max() < 1e-6 * max(1.0, np.abs(F).max())


def test_gamma_knn_rule_matches_nearest_neighbors():
    X, y = _data(n=80, d=5, K=3, seed=9)
    for k, scale in [(40, 1.0), (5, 2.0)]:
        est = KernelCrossLipClassifier(n_neighbors=k, gamma_scale=scale, max_iter=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
        rho = dist[:, 1:].mean()
        assert est.gamma_ == pytest.approx(scale / rho**2, rel=1e-9)
    est = KernelCrossLipClassifier(gamma=0.7, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert est.fit(X, y).gamma_ == 0.7


def test_cross_lipschitz_regularisation_reduces_omega():
    X, y = _data(n=60, d=4, K=3, seed=10)
    omegas = []
    for lam in [1e-3, 1e-1, 10.0]:
        est = KernelCrossLipClassifier(gamma=4.0, lam=lam).fit(X, y)
        omegas.append(_literal_omega(est.dual_coef_, X, 4.0))
    assert omegas[0] > omegas[1] > omegas[2]


# ----------------------------------------------------------- sklearn API
def _expected_failed_checks(estimator):
    return {}


@parametrize_with_checks(
    [KernelCrossLipClassifier(), KernelCrossLipClassifier(regularizer="rkhs", lam=1e-4)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_string_labels_binary_and_proba():
    X, y = _data(n=50, d=3, K=2, seed=11)
    labels = np.array(["cat", "dog"])[y]
    est = KernelCrossLipClassifier(lam=1e-2).fit(X, labels)
    assert list(est.classes_) == ["cat", "dog"]
    assert est.dual_coef_.shape == (2, 50)
    d = est.decision_function(X)
    F = est._logits(X)
    assert d.shape == (50,)
    np.testing.assert_allclose(d, F[:, 1] - F[:, 0])
    pred = est.predict(X)
    assert np.array_equal(pred, np.where(d > 0, "dog", "cat"))
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1.0)
    np.testing.assert_allclose(P[:, 1], 1 / (1 + np.exp(-d)), rtol=1e-10)
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(P), rtol=1e-10, atol=1e-12)
    assert est.score(X, labels) > 0.9
    # multiclass: (m, K) decision values, argmax = predict
    X3, y3 = _data(n=60, d=3, K=4, seed=12)
    est3 = KernelCrossLipClassifier().fit(X3, np.array(list("abcd"))[y3])
    D3 = est3.decision_function(X3)
    assert D3.shape == (60, 4)
    assert np.array_equal(est3.classes_[D3.argmax(1)], est3.predict(X3))


def test_grid_search_in_pipeline_n_jobs_2():
    X, y = _data(n=90, d=4, K=3, seed=13)
    pipe = make_pipeline(MinMaxScaler(), KernelCrossLipClassifier(max_iter=200))
    grid = GridSearchCV(
        pipe,
        {"kernelcrosslipclassifier__gamma_scale": [0.5, 2.0],
         "kernelcrosslipclassifier__lam": [1e-3, 1e-1]},
        cv=3,
        n_jobs=2,
    )
    grid.fit(X, y)
    assert grid.best_score_ > 0.8
    assert len(grid.cv_results_["params"]) == 4
    assert grid.predict(X).shape == (90,)


def test_pickle_roundtrip():
    X, y = _data(n=40, d=3, K=3, seed=14)
    est = KernelCrossLipClassifier().fit(X, y)
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est.decision_function(X), est2.decision_function(X))
    np.testing.assert_array_equal(est._input_gradients(X[:3]), est2._input_gradients(X[:3]))


def test_convergence_warning_and_verbose(capsys):
    X, y = _data(n=40, d=3, K=3, seed=15)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        KernelCrossLipClassifier(max_iter=1, tol=0.0).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        KernelCrossLipClassifier(verbose=2, max_iter=3, tol=0.0).fit(X, y)
    assert "objective" in capsys.readouterr().out


def test_n_jobs_limits_threads_and_gives_same_result():
    X, y = _data(n=40, d=3, K=3, seed=16)
    a = KernelCrossLipClassifier(n_jobs=1).fit(X, y).decision_function(X)
    b = KernelCrossLipClassifier(n_jobs=-1).fit(X, y).decision_function(X)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_rejected(bad):
    X, y = _data(n=20, d=3, K=2)
    Xb = X.copy()
    Xb[3, 1] = bad
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        KernelCrossLipClassifier().fit(Xb, y)
    est = KernelCrossLipClassifier().fit(X, y)
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        est.predict(Xb)


def test_wrong_dimensions_and_feature_mismatch():
    X, y = _data(n=20, d=3, K=2)
    with pytest.raises(ValueError, match="2D array"):
        KernelCrossLipClassifier().fit(X[:, 0], y)
    with pytest.raises(ValueError):
        KernelCrossLipClassifier().fit(X[:, :, None], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        KernelCrossLipClassifier().fit(X, y[:-1])
    est = KernelCrossLipClassifier().fit(X, y)
    with pytest.raises(ValueError, match="3 features"):
        est.predict(X[:, :2])
    with pytest.raises(NotFittedError):
        KernelCrossLipClassifier().predict(X)


def test_single_class_rejected():
    X, _ = _data(n=20, d=3, K=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        KernelCrossLipClassifier().fit(X, np.zeros(20))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": -1.0}, "gamma"),
        ({"gamma_scale": 0.0}, "gamma_scale"),
        ({"regularizer": "l2"}, "regularizer"),
        ({"lam": -1.0}, "lam"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_parameters_rejected(params, match):
    X, y = _data(n=20, d=3, K=2)
    with pytest.raises(ValueError, match=match):
        KernelCrossLipClassifier(**params).fit(X, y)


def test_duplicated_points_knn_rule_error():
    X = np.zeros((10, 3))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="Pass gamma explicitly"):
        KernelCrossLipClassifier().fit(X, y)


# ------------------------------------------------- protocol for the certificate
def test_cross_lipschitz_protocol_delegation_is_sound():
    """Local/global bounds from the model dominate the gradient differences actually seen."""
    X, y = _data(n=60, d=4, K=3, seed=17)
    est = KernelCrossLipClassifier(lam=1e-2).fit(X, y)
    Xq = X[:6]
    c = np.argmax(est._logits(Xq), axis=1)
    L_glob = est._global_cross_lipschitz()
    assert L_glob.shape == (3, 3)
    rng = np.random.default_rng(18)
    for R in (0.0, 0.05):
        L = est._local_cross_lipschitz(Xq, c, np.full(6, R))
        assert L.shape == (6, 3)
        for i in range(6):
            # sample points of the ball (centre included) and compare gradient differences
            pts = Xq[i] + R * rng.uniform(-1, 1, (20, 4)) / 2.0
            Gp = est._input_gradients(np.vstack([Xq[i:i + 1], pts]))
            for j in range(3):
                if j == c[i]:
                    continue
                seen = np.linalg.norm(Gp[:, c[i]] - Gp[:, j], axis=1).max()
                assert seen <= L[i, j] * (1 + 1e-9)
                assert seen <= L_glob[c[i], j] * (1 + 1e-9)
    radius = est.certified_radius(Xq)
    assert radius.shape == (6,) and (radius >= 0).all()
    # no sampled point inside the certified ball changes the decision
    for i in range(6):
        dirs = rng.standard_normal((50, 4))
        dirs *= radius[i] / np.linalg.norm(dirs, axis=1, keepdims=True)
        assert (est.predict(Xq[i] + dirs) == est.predict(Xq[i:i + 1])).all()
