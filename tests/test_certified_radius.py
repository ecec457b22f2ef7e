"""Theorem 2.1 certificates: soundness against strong attacks, orderings, API, scale-out."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_crosslip import certified_accuracy
from sklearn_crosslip.bounds import theorem21
from sklearn_crosslip.bounds._testing import FakeKernel, FakeMLP, strongest_attack


def _mlp(seed, d):
    return FakeMLP.random(d, 3 * d, 4, seed, scale=2.0, alpha=10.0)


def _kernel(seed, d):
    return FakeKernel.random(30, d, 3, seed, gamma=2.0 / d, scale=1.0)


def _points(seed, d, m):
    return np.random.default_rng(1000 + seed).uniform(0.1, 0.9, size=(m, d))


MODELS = [("mlp", _mlp), ("kernel", _kernel)]


@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("seed,d", [(0, 5), (1, 12), (2, 30), (3, 50)])
@pytest.mark.parametrize("bound", ["local", "local_fast"])
def test_attacks_never_succeed_inside_radius(family, make, seed, d, bound):
    est = make(seed, d)
    X = _points(seed, d, 4)
    r = est.certified_radius(X, bound=bound)
    rng = np.random.default_rng(seed)
    assert np.all(r > 0)
    for i in range(len(X)):
        hit, gap = strongest_attack(est, X[i], r[i] * (1 - 1e-9), rng=rng, n_restarts=4,
                                    n_steps=40, n_random=200)
        assert hit is None, (i, r[i], gap)


@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("seed", [0, 1])
def test_attacks_never_succeed_inside_boxed_radius(family, make, seed):
    d = 8
    est = make(seed, d)
    X = _points(seed, d, 4)
    lo, hi = np.zeros(d), np.ones(d)
    r = est.certified_radius(X, box=(0, 1))
    rng = np.random.default_rng(seed)
    for i in range(len(X)):
        hit, gap = strongest_attack(est, X[i], r[i] * (1 - 1e-9), rng=rng, lo=lo, hi=hi,
                                    n_restarts=4, n_steps=40, n_random=200)
        assert hit is None, (i, r[i], gap)


@pytest.mark.parametrize("family,make", MODELS)
def test_attack_is_strong_enough_to_fail(family, make):
    # the soundness test can fail: an inflated "certificate" is refuted by the attack
    d = 6
    est = make(0, d)
    X = _points(0, d, 6)
    r = est.certified_radius(X)
    rng = np.random.default_rng(0)
    found = 0
    for i in range(len(X)):
        hit, _ = strongest_attack(est, X[i], 5 * r[i], rng=rng, n_restarts=4, n_steps=40,
                                  n_random=200)
        found += hit is not None
    assert found >= 4


@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_orderings_local_global_box(family, make, seed):
    d = 10
    est = make(seed, d)
    X = _points(seed, d, 12)
    rg = est.certified_radius(X, bound="global")
    rl = est.certified_radius(X, bound="local")
    rf = est.certified_radius(X, bound="local_fast")
    rb = est.certified_radius(X, bound="local", box=(0, 1))
    rbf = est.certified_radius(X, bound="local_fast", box=(0, 1))
    rbg = est.certified_radius(X, bound="global", box=(0, 1))
    assert np.all(rl >= rg) and np.all(rf >= rg)
    assert np.all(rb >= rl) and np.all(rbf >= rf)
    np.testing.assert_array_equal(rbg, rg)
    assert np.mean(rl) > np.mean(rg)  # the local bound does help on these models


@pytest.mark.parametrize("family,make", MODELS)
def test_search_reaches_crossing(family, make):
    # the returned radius is within rtol of the crossing: g(r (1 + 2 rtol)) < r (1 + 2 rtol)
    d = 8
    est = make(4, d)
    X = _points(4, d, 6)
    r, det = est.certified_radius(X, return_details=True)
    F = est._logits(X)
    c = np.argmax(F, axis=1)
    for i in range(len(X)):
        R = r[i] * (1 + 3 * theorem21.RTOL)
        L = est._local_cross_lipschitz(X[i:i + 1], c[i:i + 1], np.array([R]))[0]
        g = min((F[i, c[i]] - F[i, j]) / L[j] for j in range(F.shape[1]) if j != c[i])
        assert g < R
        assert det["R"][i] >= r[i] or np.isinf(det["R"][i])


def test_labels_zero_wrong_predictions_and_details():
    d = 6
    est = _mlp(0, d)
    X = _points(0, d, 10)
    pred = est.predict(X)
    y = pred.copy()
    y[:3] = (y[:3] + 1) % 4
    r0 = est.certified_radius(X)
    r, det = est.certified_radius(X, y, return_details=True)
    assert np.all(r[:3] == 0) and np.all(r[3:] == r0[3:])
    assert set(det) >= {"R", "binding_class", "binding_class_index", "predicted_class",
                        "n_evaluations"}
    np.testing.assert_array_equal(det["predicted_class"], pred)
    assert np.all(det["binding_class"] != det["predicted_class"])
    assert np.all(det["n_evaluations"] >= 1)
    acc = certified_accuracy(est, X, y, [0.0, np.median(r0[3:]), 1e9])
    assert acc[0] == pytest.approx(0.7) and acc[2] == 0.0


def test_uncertifiable_ties_get_zero():
    # identical output columns: the decision is a tie everywhere
    d = 4
    est = _mlp(0, d)
    W2 = est.coefs_[1].copy()
    W2[:, 1] = W2[:, 0]
    b2 = est.intercepts_[1].copy()
    b2[1] = b2[0] = 10.0
    tie = FakeMLP(est.coefs_[0], est.intercepts_[0], W2, b2, 10.0)
    X = _points(0, d, 5)
    for bound in ["global", "local"]:
        assert np.all(tie.certified_radius(X, bound=bound) == 0)


@pytest.mark.parametrize("family,make", MODELS)
def test_n_jobs_blocks_give_same_radii(family, make):
    d = 7
    est = make(1, d)
    X = _points(1, d, 150)
    r1 = est.certified_radius(X)
    r2 = est.certified_radius(X, n_jobs=2)
    np.testing.assert_allclose(r1, r2, rtol=2 * theorem21.RTOL)


def test_dask_backend_identical_radii():
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    d = 7
    ests = [_mlp(2, d), _kernel(2, d)]
    X = _points(2, d, 150)
    ref = [e.certified_radius(X, n_jobs=2, box=(0, 1)) for e in ests]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            got = [e.certified_radius(X, n_jobs=2, box=(0, 1)) for e in ests]
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


def test_bad_input():
    d = 5
    est = _mlp(0, d)
    X = _points(0, d, 3)
    with pytest.raises(ValueError, match="bound"):
        est.certified_radius(X, bound="tight")
    with pytest.raises(ValueError, match="outside"):
        est.certified_radius(X + 2.0, box=(0, 1))
    with pytest.raises(ValueError, match="box"):
        est.certified_radius(X, box=(1, 0))
    with pytest.raises(ValueError):
        est.certified_radius(np.full((2, d), np.nan))
    with pytest.raises(ValueError):
        est.certified_radius(X[:, :3])
    with pytest.raises(ValueError, match="y must"):
        est.certified_radius(X, np.zeros(5))
    with pytest.raises(ValueError, match="n_jobs"):
        est.certified_radius(X, n_jobs=0)
    with pytest.raises(NotFittedError):
        FakeMLP().certified_radius(X)
    with pytest.raises(NotFittedError):
        FakeKernel().certified_radius(X)
    with pytest.raises(ValueError, match="rtol"):
        theorem21.certified_radius(est, X, rtol=0.0)


def test_empty_input():
    est = _kernel(0, 4)
    r, det = theorem21.certified_radius(est, np.zeros((0, 4)), return_details=True)
    assert r.shape == (0,) and det["R"].shape == (0,)


def test_optional_fused_logits_and_error_is_used():
    d = 6
    est = _mlp(5, d)
    X = _points(5, d, 20)
    r0 = est.certified_radius(X)
    calls = []

    class Fused(FakeMLP):
        def _logits_and_error(self, X):
            calls.append(len(X))
            return self._logits(X), self._logits_error(X)

    fused = Fused(*[getattr(est, k) for k in ("W1", "b1", "W2", "b2", "softplus_alpha")])
    np.testing.assert_array_equal(fused.certified_radius(X), r0)
    assert calls == [20]
