"""Box-constrained minimal adversarial changes (Section 4): adversarial_perturbation."""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from sklearn_crosslip._robustness import RobustnessMixin
from sklearn_crosslip.attacks import adversarial_perturbation, min_norm_box_halfspace
from sklearn_crosslip.datasets import load_digits

NORMS = [1, 2, np.inf]


class LinearModel(RobustnessMixin, ClassifierMixin, BaseEstimator):
    """f(x) = W^T x + b: the linearisation (8) is exact."""

    def __init__(self, W=None, b=None):
        self.W, self.b = W, b
        if W is not None:
            self.classes_ = np.arange(W.shape[1])
            self.n_features_in_ = W.shape[0]

    def fit(self, X=None, y=None):
        return self

    def _logits(self, X):
        return X @ self.W + self.b

    def _input_gradients(self, X):
        return np.broadcast_to(self.W.T[None], (X.shape[0],) + self.W.T.shape).copy()

    def predict(self, X):
        return self.classes_[np.argmax(self._logits(np.asarray(X, float)), axis=1)]


class TinyMLP(LinearModel):
    """Softplus network f(x) = W2^T s(W1^T x + b1) + b2 with given weights."""

    def __init__(self, W1=None, b1=None, W2=None, b2=None, alpha=10.0, labels=None):
        self.W1, self.b1, self.W2, self.b2, self.alpha, self.labels = W1, b1, W2, b2, alpha, labels
        if W1 is not None:
            self.classes_ = np.arange(W2.shape[1]) if labels is None else np.asarray(labels)
            self.n_features_in_ = W1.shape[0]

    @classmethod
    def random(cls, d, U, K, seed, labels=None):
        rng = np.random.default_rng(seed)
        return cls(
            rng.normal(size=(d, U)) * 3 / np.sqrt(d), rng.normal(size=U) * 0.5,
            rng.normal(size=(U, K)) * 2 / np.sqrt(U), rng.normal(size=K) * 0.1, 10.0, labels,
        )

    def _logits(self, X):
        Z = X @ self.W1 + self.b1
        return np.logaddexp(0.0, self.alpha * Z) / self.alpha @ self.W2 + self.b2

    def _input_gradients(self, X):
        S = 0.5 * (1.0 + np.tanh(0.5 * self.alpha * (X @ self.W1 + self.b1)))  # sigmoid
        return np.einsum("du,nu,uk->nkd", self.W1, S, self.W2)


def _check_flips_and_box(est, X, D, box=None, target=None):
    assert D.shape == X.shape
    assert not np.isnan(D).any()
    pred0 = est.predict(X)
    pred1 = est.predict(X + D)
    if target is None:
        assert np.all(pred1 != pred0)
    else:
        assert np.all(pred1 == target)
    if box is not None:
        assert np.all(X + D >= box[0]) and np.all(X + D <= box[1])


# ----------------------------------------------------------------- linear model
@pytest.fixture
def linear():
    rng = np.random.default_rng(0)
    d, K = 15, 4
    return LinearModel(rng.normal(size=(d, K)), rng.normal(size=K)), rng.normal(size=(60, d))


def _linear_closed_form(est, X, p_dual, target=None):
    F = est._logits(X)
    c = F.argmax(1)
    out = np.empty(len(X))
    for i in range(len(X)):
        js = [target] if target is not None else [j for j in range(F.shape[1]) if j != c[i]]
        out[i] = min(
            (F[i, c[i]] - F[i, j]) / np.linalg.norm(est.W[:, j] - est.W[:, c[i]], ord=p_dual)
            for j in js
        )
    return out


@pytest.mark.parametrize("p, p_dual", [(2, 2), (1, np.inf), (np.inf, 1)])
def test_linear_model_is_exact_without_box(linear, p, p_dual):
    # For a linear model the attack is exact: ||delta||_p = margin / ||w_c - w_j||_q.
    est, X = linear
    D = adversarial_perturbation(est, X, norm=p)
    _check_flips_and_box(est, X, D)
    np.testing.assert_allclose(
        np.linalg.norm(D, ord=p, axis=1), _linear_closed_form(est, X, p_dual), rtol=1e-5
    )


def test_linear_model_targeted(linear):
    # Reaching class t needs f_t >= f_k for every k: the half-space {f_t >= f_c}
    # gives a lower bound, exact where its projection is already classified t
    # (elsewhere the attack, which handles one half-space at a time, is only an
    # upper bound).
    est, X = linear
    c = est.predict(X)
    X, c = X[c != 2], c[c != 2]
    lower = _linear_closed_form(est, X, 2, target=2)
    g = (est.W[:, 2][None, :] - est.W[:, c].T)
    proj = X + (lower * (1 + 1e-6))[:, None] * g / np.linalg.norm(g, axis=1)[:, None]
    exact = est.predict(proj) == 2
    assert exact.any() and (~exact).any()
    for steps in (0, 3):
        D = adversarial_perturbation(est, X, norm=2, target=2, refine_steps=steps)
        _check_flips_and_box(est, X, D, target=2)
        nrm = np.linalg.norm(D, axis=1)
        np.testing.assert_allclose(nrm[exact], lower[exact], rtol=1e-5)
        assert np.all(nrm >= lower * (1 - 1e-9))


@pytest.mark.parametrize("p", NORMS)
def test_linear_model_with_box_matches_min_over_classes(p):
    # With a box, the exact minimal change of a linear model is the smallest
    # box-constrained solution of (8) over the competing classes.
    rng = np.random.default_rng(1)
    d, K = 12, 3
    est = LinearModel(rng.normal(size=(d, K)) * 2, rng.normal(size=K))
    X = rng.random((80, d))
    X[rng.random(X.shape) < 0.3] = 0.0
    F = est._logits(X)
    c = F.argmax(1)
    ref = np.full(len(X), np.inf)
    for j in range(K):
        g = est.W[:, j][None, :] - est.W[:, c].T
        dl, ok = min_norm_box_halfspace(g, F[np.arange(len(X)), c] - F[:, j], X, 0, 1, p=p)
        nrm = np.where(ok, np.linalg.norm(np.nan_to_num(dl), ord=p, axis=1), np.inf)
        ref = np.where(j != c, np.minimum(ref, nrm), ref)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        D = adversarial_perturbation(est, X, norm=p, box=(0, 1))
    reachable = np.isfinite(ref)
    nan_rows = np.isnan(D).any(1)
    np.testing.assert_array_equal(nan_rows, ~reachable)
    if (~reachable).any():
        assert any("No adversarial perturbation" in str(w.message) for w in rec)
    _check_flips_and_box(est, X[reachable], D[reachable], box=(0, 1))
    np.testing.assert_allclose(
        np.linalg.norm(D[reachable], ord=p, axis=1), ref[reachable], rtol=1e-5, atol=1e-7
    )


def test_boundary_search_false_returns_first_flipping_solution(linear):
    est, X = linear
    D = adversarial_perturbation(est, X, boundary_search=False)
    _check_flips_and_box(est, X, D)
    # first ladder rung: 1e-4 past the linearised boundary
    np.testing.assert_allclose(
        np.linalg.norm(D, axis=1), _linear_closed_form(est, X, 2) * (1 + 1e-4), rtol=1e-6
    )


def test_no_flip_possible_gives_nan_and_one_warning():
    # f_1 - f_0 = x_0 - 5 < 0 on [0, 1]^2: class 1 is unreachable inside the box.
    est = LinearModel(np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([0.0, -5.0]))
    X = np.array([[0.2, 0.3], [0.9, 0.1], [0.0, 1.0]])
    with pytest.warns(UserWarning, match="3 of 3 samples") as rec:
        D = adversarial_perturbation(est, X, box=(0, 1))
    assert len([w for w in rec if "No adversarial" in str(w.message)]) == 1
    assert np.isnan(D).all()
    D = adversarial_perturbation(est, X)  # without the box it is reachable
    _check_flips_and_box(est, X, D)


# ------------------------------------------------------------ nonlinear model
@pytest.fixture(scope="module")
def mlp():
    est = TinyMLP.random(10, 30, 4, seed=3)
    X = np.random.default_rng(4).random((80, 10))
    return est, X


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("box", [None, (0.0, 1.0)])
@pytest.mark.parametrize("boundary_search", [True, False])
def test_nonlinear_flips_and_box(mlp, p, box, boundary_search):
    est, X = mlp
    D = adversarial_perturbation(est, X, norm=p, box=box, boundary_search=boundary_search)
    ok = ~np.isnan(D).any(1)
    assert ok.mean() > 0.9
    _check_flips_and_box(est, X[ok], D[ok], box)


def test_boundary_search_lands_just_past_the_boundary(mlp):
    # Without a box the L2 path is the ray x + s b g/||g||^2: shrinking delta
    # by 1e-4 must give back the original decision, and the returned point flips.
    est, X = mlp
    D0 = adversarial_perturbation(est, X, boundary_search=False)
    D = adversarial_perturbation(est, X)
    _check_flips_and_box(est, X, D)
    assert np.all(est.predict(X + (1 - 1e-4) * D) == est.predict(X))
    assert np.all(np.linalg.norm(D, axis=1) <= np.linalg.norm(D0, axis=1) * (1 + 1e-12))
    assert np.median(np.linalg.norm(D, axis=1) / np.linalg.norm(D0, axis=1)) < 0.999


@pytest.mark.parametrize("p", NORMS)
def test_refinement_never_increases_the_norm(mlp, p):
    est, X = mlp
    D0 = adversarial_perturbation(est, X, norm=p, box=(0, 1))
    D3 = adversarial_perturbation(est, X, norm=p, box=(0, 1), refine_steps=3)
    ok = ~np.isnan(D0).any(1)
    assert np.array_equal(ok, ~np.isnan(D3).any(1))
    _check_flips_and_box(est, X[ok], D3[ok], (0, 1))
    n0 = np.linalg.norm(D0[ok], ord=p, axis=1)
    n3 = np.linalg.norm(D3[ok], ord=p, axis=1)
    assert np.all(n3 <= n0 * (1 + 1e-12))
    assert np.mean(n3 < n0 * (1 - 1e-3)) > 0.1  # it actually tightens some


@pytest.mark.parametrize("p", NORMS)
def test_binary_model(p):
    est = TinyMLP.random(8, 20, 2, seed=7, labels=np.array([-1, 1]))
    X = np.random.default_rng(8).random((50, 8))
    D = adversarial_perturbation(est, X, norm=p, box=(0, 1), refine_steps=1)
    ok = ~np.isnan(D).any(1)
    assert ok.mean() > 0.8
    _check_flips_and_box(est, X[ok], D[ok], (0, 1))
    other = np.where(est.predict(X) == 1, -1, 1)
    Dt = adversarial_perturbation(est, X, norm=p, box=(0, 1), target=other, refine_steps=1)
    np.testing.assert_array_equal(D, Dt)  # with two classes, targeted == untargeted


def test_targeted_with_string_labels_and_per_sample_targets():
    est = TinyMLP.random(6, 20, 3, seed=5, labels=np.array(["a", "b", "c"]))
    X = np.random.default_rng(6).random((40, 6))
    pred = est.predict(X)
    tgt = np.where(pred == "a", "b", "a")
    D = adversarial_perturbation(est, X, target=tgt, box=(0, 1))
    ok = ~np.isnan(D).any(1)
    assert ok.mean() > 0.8
    _check_flips_and_box(est, X[ok], D[ok], (0, 1), target=tgt[ok])
    sel = pred != "c"
    D = adversarial_perturbation(est, X[sel], target="c")
    ok = ~np.isnan(D).any(1)
    _check_flips_and_box(est, X[sel][ok], D[ok], target="c")


@pytest.mark.parametrize("p", NORMS)
def test_iterative_fallback_alone_flips(mlp, monkeypatch, p):
    # Make every linearised trial fail (s = 1e-3 never reaches the boundary):
    # all points then go through the DeepFool-style fallback + segment search.
    import sklearn_crosslip.attacks.boundary as bnd

    est, X = mlp
    D_ref = adversarial_perturbation(est, X, norm=p, box=(0, 1))
    monkeypatch.setattr(bnd, "_LADDER", np.array([1e-3]))
    D = adversarial_perturbation(est, X, norm=p, box=(0, 1))
    ok = ~np.isnan(D).any(1)
    assert ok.mean() > 0.9
    _check_flips_and_box(est, X[ok], D[ok], (0, 1))
    # the segment search ends just past the boundary: shrinking flips back
    back = est.predict(X[ok] + (1 - 1e-4) * D[ok]) == est.predict(X[ok])
    assert back.mean() > 0.95
    both = ok & ~np.isnan(D_ref).any(1)
    ratio = np.linalg.norm(D[both], ord=p, axis=1) / np.linalg.norm(D_ref[both], ord=p, axis=1)
    assert np.median(ratio) < 1.5  # a usable, if looser, upper bound


def test_n_jobs_gives_the_same_result(mlp, monkeypatch):
    import sklearn_crosslip.attacks.boundary as bnd

    est, X = mlp
    monkeypatch.setattr(bnd, "_CHUNK_DOUBLES", 4 * 10 * 20)  # 20 points per chunk
    D1 = adversarial_perturbation(est, X, refine_steps=1)
    D2 = adversarial_perturbation(est, X, refine_steps=1, n_jobs=2)
    np.testing.assert_array_equal(D1, D2)


def test_front_door_method_and_bad_input(mlp):
    est, X = mlp
    D = est.adversarial_perturbation(X[:5], box=(0, 1))
    _check_flips_and_box(est, X[:5], D, (0, 1))
    pred = est.predict(X[:5])
    for kwargs, msg in [
        ({"norm": 3}, "norm must be"),
        ({"norm": "l2"}, "norm must be"),
        ({"box": (1, 0)}, "lo < hi"),
        ({"box": (0.5, 1)}, "outside"),
        ({"box": (0, 1, 2)}, "pair"),
        ({"target": 7}, "not a known class"),
        ({"target": pred}, "differ from the predicted class"),
        ({"target": np.array([0, 1])}, "shape"),
        ({"refine_steps": -1}, "refine_steps"),
        ({"refine_steps": 1.5}, "refine_steps"),
        ({"boundary_search": "yes"}, "boundary_search"),
        ({"n_jobs": 0}, "n_jobs"),
    ]:
        with pytest.raises(ValueError, match=msg):
            adversarial_perturbation(est, X[:5], **kwargs)
    bad = X[:5].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        adversarial_perturbation(est, bad)


# ------------------------------------------------------------ real estimators
def _real_estimators():
    X, y = load_digits()
    out = []
    from sklearn_crosslip import MLPCrossLipClassifier

    out.append(("mlp", MLPCrossLipClassifier(hidden_units=32, max_iter=60, random_state=0)))
    try:
        from sklearn_crosslip import KernelCrossLipClassifier
    except ImportError:  # pragma: no cover - only while kernel.py is missing
        KernelCrossLipClassifier = None
    if KernelCrossLipClassifier is not None:
        out.append(("kernel", KernelCrossLipClassifier(max_iter=60)))
    fitted = []
    for name, est in out:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short fits: convergence is not the point here
            fitted.append((name, est.fit(X[:250], y[:250])))
    return fitted, X[1000:1040]


@pytest.fixture(scope="module")
def real():
    return _real_estimators()


@pytest.mark.parametrize("p", NORMS)
def test_real_estimators_flip_and_respect_box(real, p):
    fitted, X = real
    for name, est in fitted:
        D = est.adversarial_perturbation(X, norm=p, box=(0, 1), refine_steps=1)
        ok = ~np.isnan(D).any(1)
        assert ok.mean() > 0.9, name
        _check_flips_and_box(est, X[ok], D[ok], (0, 1))


@pytest.mark.parametrize("box", [None, (0.0, 1.0)])
def test_certified_radius_below_attack_norm(real, box):
    # Lower bound (Theorem 2.1) <= upper bound (attack), on both estimators.
    fitted, X = real
    names = {name for name, _ in fitted}
    if "kernel" not in names:
        pytest.skip("KernelCrossLipClassifier is not available yet")
    for name, est in fitted:
        D = est.adversarial_perturbation(X, box=box, refine_steps=2)
        ok = ~np.isnan(D).any(1)
        rad = est.certified_radius(X, box=box)
        assert np.all(rad >= 0), name
        assert np.all(rad[ok] <= np.linalg.norm(D[ok], axis=1)), name
        assert np.all(rad > 0), name  # the comparison is not vacuous
