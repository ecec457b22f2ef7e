"""Certificates of the real estimators (trained on small data) against strong attacks."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from sklearn_crosslip.bounds._testing import strongest_attack


def _data(seed, n=150, d=12, K=3):
    X, y = make_classification(n_samples=n + 20, n_features=d, n_informative=min(d, 6),
                               n_redundant=0, n_classes=K, n_clusters_per_class=1,
                               random_state=seed)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    return X[:n], y[:n], X[n:]


def _mlp(seed, d):
    from sklearn_crosslip.mlp import MLPCrossLipClassifier

    X, y, Xt = _data(seed, d=d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPCrossLipClassifier(hidden_units=16, max_iter=60, random_state=seed).fit(X, y)
    return est, Xt


def _kernel(seed, d):
    kernel = pytest.importorskip("sklearn_crosslip.kernel")
    X, y, Xt = _data(seed, n=80, d=d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = kernel.KernelCrossLipClassifier(max_iter=50).fit(X, y)
    return est, Xt


FAMILIES = [("mlp", _mlp), ("kernel", _kernel)]


@pytest.mark.parametrize("family,make", FAMILIES)
@pytest.mark.parametrize("seed,d", [(0, 5), (1, 20), (2, 40)])
def test_real_estimators_sound(family, make, seed, d):
    est, Xt = make(seed, d)
    X = Xt[:4]
    rng = np.random.default_rng(seed)
    for bound, box in [("local", None), ("local_fast", None), ("local", (0.0, 1.0))]:
        r = est.certified_radius(X, bound=bound, box=box)
        lo, hi = (np.zeros(d), np.ones(d)) if box else (None, None)
        for i in range(len(X)):
            if r[i] == 0:
                continue
            hit, gap = strongest_attack(est, X[i], r[i] * (1 - 1e-9), rng=rng, lo=lo, hi=hi,
                                        n_restarts=3, n_steps=30, n_random=150)
            assert hit is None, (bound, box, i, r[i], gap)


@pytest.mark.parametrize("family,make", FAMILIES)
def test_real_estimators_orderings_and_details(family, make):
    est, Xt = make(3, 10)
    X = Xt[:10]
    rg = est.certified_radius(X, bound="global")
    rl, det = est.certified_radius(X, bound="local", return_details=True)
    rf = est.certified_radius(X, bound="local_fast")
    rb = est.certified_radius(X, bound="local", box=(0, 1))
    assert np.all(rl >= rg) and np.all(rf >= rg) and np.all(rb >= rl)
    np.testing.assert_array_equal(det["predicted_class"], est.predict(X))
    # at R = 0 the local bound is the exact gradient difference
    c = np.argmax(est._logits(X), axis=1)
    L0 = est._local_cross_lipschitz(X, c, np.zeros(len(X)))
    G = est._input_gradients(X)
    ex = np.linalg.norm(G[np.arange(len(X)), c][:, None, :] - G, axis=2)
    mask = np.ones_like(ex, bool)
    mask[np.arange(len(X)), c] = False
    np.testing.assert_allclose(L0[mask], ex[mask], rtol=1e-8)
