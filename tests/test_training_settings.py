"""The paper's three training settings on MLPCrossLipClassifier (Section 5)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sklearn_crosslip import MLPCrossLipClassifier


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    n = 120
    y = rng.randint(0, 3, size=n)
    X = np.zeros((n, 8, 8))
    for i, c in enumerate(y):  # three blob positions, class = position
        X[i, 1 + 2 * c:4 + 2 * c, 2:6] = 1.0
    X = np.clip(X + rng.uniform(0, 0.2, size=X.shape), 0, 1).reshape(n, 64)
    return X, y


def _fit(X, y, **kw):
    params = dict(hidden_units=16, solver="adam", max_iter=3, batch_size=40, random_state=0,
                  regularizer="none")
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPCrossLipClassifier(**params).fit(X, y)


class _Recorder:
    """Augmentation callable that records the batches it sees."""

    def __init__(self):
        self.calls = 0

    def __call__(self, X, rng):
        self.calls += 1
        return np.clip(X + rng.normal(0, 0.01, size=X.shape), 0, 1)


def test_augmentation_changes_training_and_is_deterministic(images):
    X, y = images
    plain = _fit(X, y)
    a1 = _fit(X, y, augmentation="affine")
    a2 = _fit(X, y, augmentation="affine")
    np.testing.assert_array_equal(a1.coefs_[0], a2.coefs_[0])
    assert not np.allclose(a1.coefs_[0], plain.coefs_[0])


def test_augmentation_callable_called_per_batch(images):
    X, y = images
    rec = _Recorder()
    _fit(X, y, augmentation=rec)
    assert rec.calls == 3 * 3  # 3 epochs x 3 batches of 40


def test_adversarial_training_uses_adversarial_points(images, monkeypatch):
    X, y = images
    seen = []
    orig = MLPCrossLipClassifier.adversarial_perturbation

    def spy(self, Xb, **kw):
        delta = orig(self, Xb, **kw)
        seen.append((Xb.shape[0], kw.get("box"), delta))
        return delta

    monkeypatch.setattr(MLPCrossLipClassifier, "adversarial_perturbation", spy)
    est = _fit(X, y, adversarial_fraction=0.5, input_box=(0.0, 1.0))
    assert len(seen) == 9 and all(n == 20 for n, _, _ in seen)
    assert all(box == (0.0, 1.0) for _, box, _ in seen)
    found = np.concatenate([np.isfinite(d).all(axis=1) for _, _, d in seen])
    assert found.mean() > 0.5  # real adversarial changes were mixed in
    assert hasattr(est, "coefs_")


def test_settings_need_stochastic_solver_and_valid_values(images):
    X, y = images
    with pytest.raises(ValueError, match="stochastic solver"):
        MLPCrossLipClassifier(hidden_units=4, augmentation="affine").fit(X, y)
    with pytest.raises(ValueError, match="stochastic solver"):
        MLPCrossLipClassifier(hidden_units=4, adversarial_fraction=0.5).fit(X, y)
    with pytest.raises(ValueError, match="'augmentation' parameter"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", augmentation="flip").fit(X, y)
    with pytest.raises(ValueError, match="adversarial_fraction"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", adversarial_fraction=1.5).fit(X, y)
    with pytest.raises(ValueError, match="square"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", augmentation="affine").fit(
            X[:, :60], y)
    with pytest.raises(ValueError, match="outside input_box"):
        MLPCrossLipClassifier(hidden_units=4, solver="adam", adversarial_fraction=0.5,
                              input_box=(0.0, 0.5)).fit(X, y)


def test_step_learning_rate_schedule():
    """'step' divides the step size by 10 after 72 % and by 100 after 88 % of the updates."""
    from sklearn_crosslip.mlp import _step_factor

    assert [_step_factor("step", t, 100) for t in (0, 71, 72, 87, 88, 99)] == \
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    assert _step_factor("constant", 99, 100) == 1.0
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, size=(60, 6))
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    kw = dict(hidden_units=8, solver="sgd", batch_size=60, max_iter=10, tol=0.0,
              learning_rate_init=0.5, regularizer="none", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        const = MLPCrossLipClassifier(**kw).fit(X, y)
        step = MLPCrossLipClassifier(learning_rate="step", **kw).fit(X, y)
    # one update per epoch: updates 0..7 are before 72 % of 10, so the first 8 epochs agree
    assert const.loss_curve_[:8] == step.loss_curve_[:8]
    assert const.loss_curve_[9] != step.loss_curve_[9]
    with pytest.raises(ValueError, match="learning_rate"):
        MLPCrossLipClassifier(learning_rate="cosine").fit(X, y)


def test_linearized_training_change_solves_the_authors_problem(images):
    """Runner-up class, a fraction u in [0, 1) of the linearised margin, minimal L2, in the box."""
    from sklearn_crosslip.attacks import linearized_training_change, min_norm_box_halfspace

    X, y = images
    est = _fit(X, y, max_iter=5)
    F = est._logits(X)
    order = np.argsort(F, axis=1)
    c, j = order[:, -1], order[:, -2]
    rows = np.arange(X.shape[0])
    grads = est._input_gradients(X)
    G = grads[rows, j] - grads[rows, c]
    np.testing.assert_allclose(est._input_gradient_difference(X, c, j), G, rtol=1e-10,
                               atol=1e-12)
    delta = linearized_training_change(est, X, np.random.default_rng(5), 0.0, 1.0)
    u = np.random.default_rng(5).uniform(size=X.shape[0])  # the same fractions
    b = u * (F[rows, c] - F[rows, j])
    ref, feasible = min_norm_box_halfspace(G, b, X, 0.0, 1.0, p=2)
    ref[~feasible] = 0.0
    np.testing.assert_allclose(delta, ref, atol=1e-12)
    assert np.all(X + delta >= 0.0) and np.all(X + delta <= 1.0)
    moved = np.linalg.norm(delta, axis=1) > 0
    assert moved.mean() > 0.9
    # the linearised runner-up margin closes by the fraction u, not more
    np.testing.assert_allclose(np.einsum("id,id->i", G, delta)[moved], b[moved], rtol=1e-6)
    # without _input_gradient_difference (other model families) the same changes
    class _NoPair:
        def __init__(self, est):
            self._logits, self._input_gradients = est._logits, est._input_gradients

    other = linearized_training_change(_NoPair(est), X, np.random.default_rng(5), 0.0, 1.0)
    np.testing.assert_allclose(other, delta, atol=1e-10)


def test_adversarial_attack_linearized_trains_on_changed_points(images, monkeypatch):
    import sklearn_crosslip.attacks.training as training

    X, y = images
    seen = []
    orig = training.linearized_training_change

    def spy(est, Xb, rng, lo, hi):
        delta = orig(est, Xb, rng, lo, hi)
        seen.append((Xb.shape[0], lo, hi, delta))
        return delta

    monkeypatch.setattr(training, "linearized_training_change", spy)
    boundary = _fit(X, y, adversarial_fraction=0.5, input_box=(0.0, 1.0))
    lin = _fit(X, y, adversarial_fraction=0.5, input_box=(0.0, 1.0),
               adversarial_attack="linearized")
    lin2 = _fit(X, y, adversarial_fraction=0.5, input_box=(0.0, 1.0),
                adversarial_attack="linearized")
    assert len(seen) == 2 * 9 and all(n == 20 for n, *_ in seen)
    assert np.all(seen[0][1] == 0.0) and np.all(seen[0][2] == 1.0)
    assert np.mean([np.linalg.norm(d, axis=1).mean() for *_, d in seen]) > 0
    np.testing.assert_array_equal(lin.coefs_[0], lin2.coefs_[0])
    assert not np.allclose(lin.coefs_[0], boundary.coefs_[0])
    with pytest.raises(ValueError, match="adversarial_attack"):
        _fit(X, y, adversarial_fraction=0.5, adversarial_attack="pgd")


# ------------------------------------------------------------- weight averaging
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("decay", [0.5, 0.999])
def test_ema_is_the_average_of_the_trajectory(images, solver, decay):
    # One full batch per epoch, constant step: the first k updates do not depend on
    # max_iter, so fits with max_iter = 1, 2, 3 give the trajectory p1, p2, p3 and the
    # initialisation gives p0; the EMA fit must return their documented average.
    X, y = images
    kw = dict(solver=solver, batch_size=X.shape[0], regularizer="weight_decay", lam=1e-3,
              learning_rate_init=0.05)
    traj = [MLPCrossLipClassifier._initialize(64, 16, 3, np.random.RandomState(0))]
    for k in (1, 2, 3):
        est = _fit(X, y, max_iter=k, **kw)
        traj.append([est.coefs_[0], est.intercepts_[0], est.coefs_[1], est.intercepts_[1]])
    avg = [np.array(p, dtype=np.float64) for p in traj[0]]
    for t in (1, 2, 3):
        d = min(decay, t / (9.0 + t))
        avg = [d * a + (1 - d) * p for a, p in zip(avg, traj[t])]
    ema = _fit(X, y, max_iter=3, ema_decay=decay, **kw)
    got = [ema.coefs_[0], ema.intercepts_[0], ema.coefs_[1], ema.intercepts_[1]]
    for g, a, last in zip(got, avg, traj[3]):
        np.testing.assert_allclose(g, a, rtol=0, atol=1e-12)
        assert not np.allclose(g, last)  # the average, not the last iterate
    # the loss curve is that of the current weights: the same as without averaging
    np.testing.assert_allclose(ema.loss_curve_, est.loss_curve_, rtol=1e-12)


def test_ema_kernel_matches_numpy_serial_and_parallel():
    from sklearn_crosslip._mlp_numba import PARALLEL_MIN_SIZE_STREAMING, ema_update_inplace

    rng = np.random.default_rng(0)
    for n in (1000, PARALLEL_MIN_SIZE_STREAMING + 17):
        e, p = rng.normal(size=n), rng.normal(size=n)
        want = 0.9 * e + 0.1 * p
        ema_update_inplace(e, p, 0.9)
        np.testing.assert_allclose(e, want, rtol=1e-15, atol=1e-15)


def test_ema_bad_values(images):
    X, y = images
    for bad in (0.0, 1.0, -0.5, 1.5, float("nan"), "0.9"):
        with pytest.raises(ValueError, match="ema_decay"):
            MLPCrossLipClassifier(solver="adam", ema_decay=bad).fit(X, y)
    with pytest.raises(ValueError, match="ema_decay.*lbfgs"):
        MLPCrossLipClassifier(solver="lbfgs", ema_decay=0.99).fit(X, y)
