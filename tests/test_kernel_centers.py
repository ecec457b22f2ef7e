"""KernelCrossLipClassifier with an expansion over centres (issue 13, n = 60000 scale)."""

import warnings

import joblib
import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import NearestNeighbors

from sklearn_crosslip import _kernel_blocks as kb
from sklearn_crosslip.bounds._testing import strongest_attack
from sklearn_crosslip.kernel import (
    KernelCrossLipClassifier,
    _build_centered_problem,
    _cross_entropy,
)
from sklearn_crosslip.regularizers.kernel import cross_lipschitz, cross_lipschitz_matrix

# the literal references of the expansion over all training points serve here too
from test_kernel import REGULARIZERS, _data  # noqa: E402  (tests/ is on sys.path)
from test_kernel import _literal_input_gradients as _literal_gradients  # noqa: E402
from test_kernel import _literal_omega  # noqa: E402


def _direct_objective(alpha, b, Z, X, y_idx, gamma, regularizer, lam):
    """Eq. (7) for f = alpha k(., Z) + b, from the definitions."""
    Kn = np.exp(-gamma * ((X[:, None, :] - Z[None]) ** 2).sum(-1))
    F = alpha @ Kn.T + b[:, None]
    Fmax = F.max(0)
    lse = Fmax + np.log(np.exp(F - Fmax).sum(0))
    loss = np.mean(lse - F[y_idx, np.arange(len(y_idx))])
    if regularizer == "none":
        return loss
    if regularizer == "rkhs":
        Kz = np.exp(-gamma * ((Z[:, None, :] - Z[None]) ** 2).sum(-1))
        return loss + lam * sum(a @ Kz @ a for a in alpha)
    return loss + lam * _literal_omega(alpha, Z, gamma, X)


# ------------------------------------------------------------ quadratic form
@pytest.mark.parametrize("entries", [1 << 23, 1])  # one block / blocks of _MIN_ROWS rows
def test_centered_quadratic_form_is_literal_eq6(monkeypatch, entries):
    monkeypatch.setattr(kb, "_BLOCK_ENTRIES", entries)
    monkeypatch.setattr(kb, "_MIN_ROWS", 7)
    X, y = _data(n=40, d=4, K=3)
    Z = np.random.default_rng(1).random((9, 4))
    gamma = 1.3
    Kn, G, Q = kb.precompute(X, Z, gamma, "cross_lipschitz")
    Kref = np.exp(-gamma * ((X[:, None] - Z[None]) ** 2).sum(-1))
    np.testing.assert_allclose(Kn, Kref, rtol=1e-13)
    np.testing.assert_allclose(G, Kref.T @ Kref, rtol=1e-12)
    np.testing.assert_array_equal(Q, Q.T)
    rng = np.random.default_rng(2)
    for K in (2, 3, 5):
        alpha = rng.normal(size=(K, 9))
        val, grad = cross_lipschitz(alpha, Q, n_samples=40)
        assert val == pytest.approx(_literal_omega(alpha, Z, gamma, X), rel=1e-11)
        # a^T Q a = sum_i ||grad f_a(x_i)||^2 over all training points
        a = alpha[:1]
        gl = _literal_gradients(a, Z, gamma, X)
        assert float(a[0] @ Q @ a[0]) == pytest.approx(float((gl**2).sum()), rel=1e-11)
        # gradient of Omega by central differences
        h = 1e-6
        fd = np.empty_like(alpha)
        for idx in np.ndindex(*alpha.shape):
            e = np.zeros_like(alpha)
            e[idx] = h
            fd[idx] = (cross_lipschitz(alpha + e, Q, n_samples=40)[0]
                       - cross_lipschitz(alpha - e, Q, n_samples=40)[0]) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9 * np.abs(grad).max())


def test_centres_equal_to_training_points_give_the_exact_matrix():
    X, _ = _data(n=30, d=4)
    gamma = 2.0
    S = ((X[:, None] - X[None]) ** 2).sum(-1)
    Kmat = np.exp(-gamma * S)
    Q_ref = cross_lipschitz_matrix(Kmat, S, gamma)
    Kn, G, Q = kb.precompute(X, X.copy(), gamma, "cross_lipschitz")
    np.testing.assert_allclose(Q, Q_ref, rtol=1e-10, atol=1e-12 * np.abs(Q_ref).max())
    _, _, Kz = kb.precompute(X, X.copy(), gamma, "rkhs")
    np.testing.assert_allclose(Kz, Kmat, rtol=1e-13)


# ----------------------------------------------------------------- objective
@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_centered_objective_value_and_gradient(regularizer):
    X, y = _data(n=35, d=3, K=3, seed=3)
    Z = X[::4].copy()
    gamma, lam = 3.0, 0.05
    obj = _build_centered_problem(kb.precompute(X, Z, gamma, regularizer), y, 3,
                                  regularizer, lam)
    rng = np.random.default_rng(4)
    w = rng.normal(size=3 * (Z.shape[0] + 1))
    val, grad = obj(w)
    alpha, b = obj.to_coef(w)
    assert val == pytest.approx(_direct_objective(alpha, b, Z, X, y, gamma, regularizer, lam),
                                rel=1e-11)
    h = 1e-6
    fd = np.array([(obj(w + h * e)[0] - obj(w - h * e)[0]) / (2 * h) for e in np.eye(w.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("regularizer", ["cross_lipschitz", "rkhs"])
def test_fit_reaches_the_optimum_of_the_direct_problem(regularizer):
    X, y = _data(n=60, d=4, K=3, seed=5)
    lam = 1e-2 if regularizer == "cross_lipschitz" else 1e-3
    est = KernelCrossLipClassifier(regularizer=regularizer, lam=lam, n_centers=12,
                                   random_state=0, tol=1e-9).fit(X, y)
    Z, m = est.X_fit_, est.X_fit_.shape[0]
    assert m == 12 and est.intercept_.shape == (3,)
    # direct L-BFGS in (alpha, b) from the fitted solution cannot go meaningfully lower
    pre = kb.precompute(X, Z, est.gamma_, regularizer)
    Kn, _, H = pre

    def f(w):
        alpha, b = w[: 3 * m].reshape(3, m), w[3 * m:]
        F = alpha @ Kn.T + b[:, None]
        v, gF = _cross_entropy(F, y)
        ga = gF @ Kn
        if regularizer == "rkhs":
            v += lam * np.vdot(alpha, alpha @ H)
            ga += 2 * lam * alpha @ H
        else:
            r, g = cross_lipschitz(alpha, H, n_samples=60)
            v, ga = v + lam * r, ga + lam * g
        return v, np.concatenate((ga.ravel(), gF.sum(1)))

    w0 = np.concatenate((est.dual_coef_.ravel(), est.intercept_))
    assert f(w0)[0] == pytest.approx(est.objective_, rel=1e-12)
    best = minimize(f, w0, jac=True, method="L-BFGS-B",
                    options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-15})
    assert est.objective_ - best.fun <= 1e-6 * abs(best.fun)


# -------------------------------------------------------------- centre choice
def test_auto_keeps_the_expansion_over_all_points():
    X, y = _data(n=50)
    a = KernelCrossLipClassifier(n_centers="auto").fit(X, y)
    b = KernelCrossLipClassifier(n_centers=None).fit(X, y)
    np.testing.assert_array_equal(a.dual_coef_, b.dual_coef_)
    np.testing.assert_array_equal(a.X_fit_, X)
    np.testing.assert_array_equal(a.intercept_, np.zeros(3))
    assert a.center_indices_ is None


def test_stratified_kmeans_array_and_fraction():
    X, y = _data(n=90, d=4, K=3, seed=2)
    y = np.where(np.arange(90) < 60, y, 0)  # unbalanced classes
    est = KernelCrossLipClassifier(n_centers=20, random_state=0).fit(X, y)
    idx = est.center_indices_
    assert idx.shape == (20,) and np.unique(idx).size == 20
    np.testing.assert_array_equal(est.X_fit_, X[idx])
    counts = np.bincount(y[idx], minlength=3)
    np.testing.assert_allclose(counts, 20 * np.bincount(y) / 90, atol=1)
    again = KernelCrossLipClassifier(n_centers=20, random_state=0).fit(X, y)
    np.testing.assert_array_equal(again.dual_coef_, est.dual_coef_)
    frac = KernelCrossLipClassifier(n_centers=0.25, random_state=0).fit(X, y)
    assert frac.X_fit_.shape == (23, 4)
    km = KernelCrossLipClassifier(n_centers=9, centers="kmeans", random_state=0).fit(X, y)
    assert km.X_fit_.shape == (9, 4) and km.center_indices_ is None
    assert not any((km.X_fit_ == x).all(1).any() for x in X)  # means, not data points
    Z = X[:7] + 0.01
    arr = KernelCrossLipClassifier(centers=Z, n_centers=3).fit(X, y)
    np.testing.assert_array_equal(arr.X_fit_, Z)
    assert arr.dual_coef_.shape == (3, 7)
    assert arr.score(X, y) > 0.6


def test_knn_rule_blocked_matches_nearest_neighbors(monkeypatch):
    monkeypatch.setattr(kb, "_BLOCK_ENTRIES", 1)
    monkeypatch.setattr(kb, "_MIN_ROWS", 5)
    X, y = _data(n=70, d=5, seed=4)
    dist, _ = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(X)
    rho = dist[:, 1:].mean()
    assert kb.knn_rho(X, 10) == pytest.approx(rho, rel=1e-12)
    est = KernelCrossLipClassifier(n_neighbors=10, gamma_scale=2.0, n_centers=30,
                                   random_state=0).fit(X, y)
    assert est.gamma_ == pytest.approx(2.0 / rho**2, rel=1e-12)


# -------------------------------------------------------- scale-out, caching
def test_dask_cluster_gives_the_same_model():
    distributed = pytest.importorskip("distributed")
    X, y = _data(n=3000, d=6, K=3, seed=6)
    params = dict(n_centers=40, random_state=0, max_iter=40)
    ref = KernelCrossLipClassifier(**params).fit(X, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        assert joblib.effective_n_jobs(None) == 1
        with joblib.parallel_backend("dask"):
            assert kb._n_tasks(X.shape[0]) == 2  # the row blocks really are split
            got = KernelCrossLipClassifier(**params).fit(X, y)
    assert got.gamma_ == pytest.approx(ref.gamma_, rel=1e-13)
    np.testing.assert_allclose(got.dual_coef_, ref.dual_coef_, rtol=1e-6,
                               atol=1e-8 * np.abs(ref.dual_coef_).max())
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))


def test_memory_reuses_lam_independent_work(tmp_path, monkeypatch):
    X, y = _data(n=80, d=4, seed=8)
    calls = {"precompute": 0, "knn": 0}
    pre, knn = kb.precompute, kb.knn_rho

    def counting_pre(*a):
        calls["precompute"] += 1
        return pre(*a)

    def counting_knn(*a):
        calls["knn"] += 1
        return knn(*a)

    counting_pre.__module__ = counting_knn.__module__ = __name__
    monkeypatch.setattr(kb, "precompute", counting_pre)
    monkeypatch.setattr(kb, "knn_rho", counting_knn)
    mem = joblib.Memory(tmp_path, verbose=0)
    params = dict(n_centers=25, random_state=0, memory=mem)
    KernelCrossLipClassifier(lam=1e-2, **params).fit(X, y)
    assert calls == {"precompute": 1, "knn": 1}
    cached = KernelCrossLipClassifier(lam=1e-1, **params).fit(X, y)
    assert calls == {"precompute": 1, "knn": 1}  # reused: only lam changed
    fresh = KernelCrossLipClassifier(lam=1e-1, n_centers=25, random_state=0).fit(X, y)
    assert calls == {"precompute": 2, "knn": 2}
    np.testing.assert_array_equal(cached.dual_coef_, fresh.dual_coef_)
    np.testing.assert_array_equal(cached.intercept_, fresh.intercept_)
    # gamma_scale reuses the KNN distance but not the kernel blocks
    KernelCrossLipClassifier(lam=1e-1, gamma_scale=2.0, **params).fit(X, y)
    assert calls == {"precompute": 3, "knn": 2}
    # a string location works too, and GridSearchCV over lam runs with it
    gs = GridSearchCV(KernelCrossLipClassifier(n_centers=25, random_state=0,
                                               memory=str(tmp_path / "gs")),
                      {"lam": [1e-2, 1e-1]}, cv=2).fit(X, y)
    # 2 folds, once each, shared by both lam values, plus the refit on all of X
    assert calls["precompute"] == 6
    assert gs.best_score_ > 0.5


# ---------------------------------------------------------------- bad input
def _assert_unfitted(est):
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((1, 4)))


@pytest.mark.parametrize("params, exc, match", [
    (dict(centers=np.zeros((3, 5))), ValueError, "features"),
    (dict(centers=np.full((3, 4), np.nan)), ValueError, "NaN"),
    (dict(centers=np.zeros((61, 4))), ValueError, "more than the 60"),
    (dict(n_centers=61), ValueError, "more than the 60"),
    (dict(n_centers=0), ValueError, "n_centers"),
    (dict(n_centers=1.5), ValueError, "n_centers"),
    (dict(centers="random"), ValueError, "centers"),
])
def test_bad_centres_rejected_and_nothing_half_fitted(params, exc, match):
    X, y = _data(n=60, d=4)
    est = KernelCrossLipClassifier(n_centers=10).fit(X, y)  # fitted before
    est.set_params(**params)
    with pytest.raises(exc, match=match):
        est.fit(X, y)
    _assert_unfitted(est)


def test_memory_guard(monkeypatch):
    X, y = _data(n=60, d=4)
    monkeypatch.setattr(kb, "available_memory", lambda: 10**5)  # 100 kB
    for params, match in [(dict(n_centers=20), "fewer centres"),
                          (dict(n_centers=None), "n_centers=10000")]:
        est = KernelCrossLipClassifier(**params)
        with pytest.raises(MemoryError, match=match):
            est.fit(X, y)
        _assert_unfitted(est)
    monkeypatch.setattr(kb, "available_memory", lambda: None)  # unknown: no guard
    KernelCrossLipClassifier(n_centers=20).fit(X, y)
    # the estimate at the paper's scale: Kn (60000 x 10000) plus three 10000^2 matrices
    est = kb.centered_peak_bytes(60000, 10000, "cross_lipschitz")
    assert 7.2e9 <= est <= 8e9
    assert kb.exact_peak_bytes(60000, "cross_lipschitz") > 80e9


# ------------------------------------------------------------- certificates
def test_logits_error_covers_the_intercept():
    X, y = _data(n=50, d=6, K=4, seed=7)
    est = KernelCrossLipClassifier(lam=1e-3, n_centers=15, random_state=0).fit(X * 10, y)
    est.intercept_ = est.intercept_ + np.array([1e3, -2e3, 5.0, 0.1])  # large offsets
    Xq = np.random.default_rng(8).random((20, 6)) * 10
    F = est._logits(Xq)
    ld = np.longdouble
    D = ((Xq.astype(ld)[:, None, :] - est.X_fit_.astype(ld)[None]) ** 2).sum(-1)
    F_ref = np.exp(-ld(est.gamma_) * D) @ est.dual_coef_.astype(ld).T + est.intercept_.astype(ld)
    err = np.abs(F.astype(ld) - F_ref).max(axis=1)
    bound = est._logits_error(Xq)
    assert (err <= bound).all()
    assert bound.max() >= 2 * np.finfo(float).eps * 2e3  # the intercept's rounding is counted


def test_centred_model_certificates_are_sound():
    rng = np.random.default_rng(0)
    for seed, d in [(0, 5), (1, 20)]:
        X, y = _data(n=120, d=d, K=3, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = KernelCrossLipClassifier(n_centers=25, random_state=seed,
                                           max_iter=80).fit(X, y)
        assert est.X_fit_.shape == (25, d)
        Xt = np.random.default_rng(seed).random((5, d))
        rg = est.certified_radius(Xt, bound="global")
        for bound, box in [("local", None), ("local_fast", None), ("global", None),
                           ("local", (0.0, 1.0)), ("local_fast", (0.0, 1.0))]:
            r = est.certified_radius(Xt, bound=bound, box=box)
            if bound != "global":
                assert (r >= rg * (1 - 1e-9)).all()
            lo, hi = (np.zeros(d), np.ones(d)) if box else (None, None)
            for i in range(len(Xt)):
                if r[i] == 0:
                    continue
                hit, gap = strongest_attack(est, Xt[i], r[i] * (1 - 1e-9), rng=rng, lo=lo,
                                            hi=hi, n_restarts=3, n_steps=30, n_random=150)
                assert hit is None, (bound, box, i, r[i], gap)
        # the radius is not vacuous: an attack at a little more than the distance to the
        # boundary found by the library's own attack succeeds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # some points have no adversarial change
            delta = est.adversarial_perturbation(Xt, refine_steps=2)
        r = est.certified_radius(Xt, bound="local")
        ok = np.isfinite(delta).all(1)
        assert (np.linalg.norm(delta[ok], axis=1) >= r[ok]).all()
