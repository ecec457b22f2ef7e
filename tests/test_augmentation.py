import numpy as np
import pytest

from sklearn_crosslip.augmentation import AffineAugmenter, random_affine_images


class _Max:
    """Fake generator that always returns the upper end of the interval."""

    def uniform(self, low, high, size=None):
        return np.full(size, high, dtype=np.float64)


def _images(n=5, seed=0):
    rng = np.random.RandomState(seed)
    X = np.zeros((n, 28, 28))
    X[:, 8:20, 10:18] = rng.uniform(0.2, 1.0, size=(n, 12, 8))
    return X.reshape(n, -1)


def test_identity_when_all_ranges_zero():
    X = _images()
    out = random_affine_images(X, (28, 28), np.random.default_rng(0), max_shift=0,
                               max_rotation=0, max_scale=0)
    np.testing.assert_allclose(out, X, atol=1e-12)


def test_integer_shift_moves_content():
    X = _images()
    out = random_affine_images(X, (28, 28), _Max(), max_shift=2, max_rotation=0, max_scale=0)
    a, b = X.reshape(-1, 28, 28), out.reshape(-1, 28, 28)
    np.testing.assert_allclose(b[:, 2:, 2:], a[:, :-2, :-2], atol=1e-12)


def test_rotation_by_90_degrees_matches_rot90():
    X = _images()
    out = random_affine_images(X, (28, 28), _Max(), max_shift=0, max_rotation=90, max_scale=0)
    a, b = X.reshape(-1, 28, 28), out.reshape(-1, 28, 28)
    rotated = np.stack([np.rot90(im, k=1) for im in a])
    rotated_other = np.stack([np.rot90(im, k=-1) for im in a])
    err = min(np.abs(b - rotated).max(), np.abs(b - rotated_other).max())
    assert err < 1e-9


def test_deterministic_range_and_label_preserving_mass():
    X = _images(20)
    aug = AffineAugmenter()
    o1 = aug(X, np.random.default_rng(3))
    o2 = aug(X, np.random.default_rng(3))
    np.testing.assert_array_equal(o1, o2)
    assert not np.allclose(o1, X)
    assert o1.min() >= 0.0 and o1.max() <= X.max()
    # small distortions keep most of the ink inside the image
    ratio = o1.sum(1) / X.sum(1)
    assert np.all((ratio > 0.7) & (ratio < 1.35))


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        random_affine_images(np.zeros((3, 10)), (28, 28), np.random.default_rng(0))
