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
