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


def _reference_warp(X, rows, cols, angle, scale, shear, shift):
    """The NumPy/SciPy form of the warp: coordinates, then ndimage.map_coordinates."""
    from scipy import ndimage

    n = X.shape[0]
    ci, cj = (rows - 1) / 2.0, (cols - 1) / 2.0
    ii, jj = np.meshgrid(np.arange(rows, dtype=float), np.arange(cols, dtype=float),
                         indexing="ij")
    di = ii[None] - ci - shift[:, 0, None, None]
    dj = jj[None] - cj - shift[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    s = scale[:, None, None]
    ri = (cos * di + sin * dj) / s
    rj = (-sin * di + cos * dj) / s - np.tan(shear)[:, None, None] * ri
    coords = np.stack([np.broadcast_to(np.arange(n, dtype=float)[:, None, None], (n, rows, cols)),
                       ri + ci, rj + cj])
    return ndimage.map_coordinates(X.reshape(n, rows, cols), coords, order=1, mode="constant",
                                   cval=0.0, prefilter=False).reshape(n, -1)


@pytest.mark.parametrize("shape", [(28, 28), (9, 13)])
def test_numba_warp_matches_scipy_map_coordinates(shape):
    # random images with ink up to the border, strong distortions (shear included):
    # the kernel must give ndimage's bilinear, zero-outside values everywhere
    rows, cols = shape
    rng = np.random.RandomState(1)
    n = 300
    X = rng.uniform(size=(n, rows * cols))
    angle = np.deg2rad(rng.uniform(-40, 40, n))
    scale = 1.0 + rng.uniform(-0.3, 0.3, n)
    shear = rng.uniform(-0.4, 0.4, n)
    shift = rng.uniform(-4, 4, (n, 2))

    class _Replay:
        def __init__(self):
            self.draws = [np.rad2deg(angle), scale - 1.0, shear, shift]

        def uniform(self, low, high, size=None):
            return self.draws.pop(0)

    out = random_affine_images(X, shape, _Replay(), max_shift=4, max_rotation=40, max_scale=0.3,
                               max_shear=0.4)
    ref = np.clip(_reference_warp(X, rows, cols, angle, scale, shear, shift), 0.0, X.max())
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    assert np.mean(out == 0.0) > 0.01  # some samples fell outside the image
