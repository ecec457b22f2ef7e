"""On-the-fly data augmentation for image classifiers (paper Section 5, "Data augmentation").

The paper trains its networks in three settings: plain, with data augmentation
and with adversarial training. For digits we use small random affine
distortions that keep the class: a translation of up to ``max_shift`` pixels, a
rotation of up to ``max_rotation`` degrees, a scaling of up to ``max_scale``
and a shear of up to ``max_shear`` radians, sampled independently per image and
applied with bilinear interpolation (pixels outside the image are 0, the
background of MNIST). Images stay in [0, 1]. Horizontal flips are not used:
they change the meaning of digits.
"""

import numpy as np

from ._augmentation_numba import warp_affine_bilinear

__all__ = ["random_affine_images", "AffineAugmenter"]


def random_affine_images(
    X,
    image_shape,
    rng,
    *,
    max_shift=2.0,
    max_rotation=15.0,
    max_scale=0.1,
    max_shear=0.0,
):
    """Apply an independent random affine distortion to each flattened image.

    Parameters
    ----------
    X : ndarray of shape (n_samples, rows * cols)
        Flattened gray-scale images.
    image_shape : tuple (rows, cols)
        Shape of one image.
    rng : numpy.random.Generator or RandomState
        Source of randomness (the caller owns it, so results are reproducible).
    max_shift : float, default=2.0
        Largest translation in pixels along each axis.
    max_rotation : float, default=15.0
        Largest rotation angle in degrees.
    max_scale : float, default=0.1
        Largest relative zoom in or out.
    max_shear : float, default=0.0
        Largest shear angle in radians.

    Returns
    -------
    X_aug : ndarray of shape (n_samples, rows * cols)
        Distorted images, float64, clipped to the value range of ``X``.
    """
    X = np.asarray(X, dtype=np.float64)
    rows, cols = (int(v) for v in image_shape)
    if X.ndim != 2 or X.shape[1] != rows * cols:
        raise ValueError(
            f"X must have shape (n_samples, {rows * cols}) for image_shape={image_shape}; "
            f"got {X.shape}."
        )
    n = X.shape[0]
    if n == 0:
        return X.copy()
    uniform = rng.uniform
    angle = np.deg2rad(uniform(-max_rotation, max_rotation, size=n))
    scale = 1.0 + uniform(-max_scale, max_scale, size=n)
    shear = uniform(-max_shear, max_shear, size=n) if max_shear > 0 else np.zeros(n)
    shift = uniform(-max_shift, max_shift, size=(n, 2))

    # Output pixel (i, j) samples the input at centre + A^{-1} (p - centre - shift),
    # A = rotation @ shear @ scale, bilinear, 0 outside the image (numba, all cores;
    # the same values as scipy.ndimage.map_coordinates(order=1, mode="constant"))
    out = np.empty((n, rows, cols), dtype=np.float64)
    warp_affine_bilinear(np.ascontiguousarray(X.reshape(n, rows, cols)), np.cos(angle),
                         np.sin(angle), scale, np.tan(shear), np.ascontiguousarray(shift), out)
    lo, hi = X.min(), X.max()
    return np.clip(out.reshape(n, rows * cols), min(lo, 0.0), hi)


class AffineAugmenter:
    """Callable that distorts a mini-batch of flattened images at random.

    Parameters
    ----------
    image_shape : tuple (rows, cols), default=(28, 28)
        Shape of one image (MNIST by default).
    max_shift, max_rotation, max_scale, max_shear : float
        See :func:`random_affine_images`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crosslip.augmentation import AffineAugmenter
    >>> aug = AffineAugmenter()
    >>> Xb = aug(np.zeros((4, 784)), np.random.default_rng(0))
    >>> Xb.shape
    (4, 784)
    """

    def __init__(self, image_shape=(28, 28), max_shift=2.0, max_rotation=15.0, max_scale=0.1,
                 max_shear=0.0):
        self.image_shape = image_shape
        self.max_shift = max_shift
        self.max_rotation = max_rotation
        self.max_scale = max_scale
        self.max_shear = max_shear

    def __call__(self, X, rng):
        """Return a randomly distorted copy of the batch ``X`` using ``rng``."""
        return random_affine_images(
            X, self.image_shape, rng, max_shift=self.max_shift, max_rotation=self.max_rotation,
            max_scale=self.max_scale, max_shear=self.max_shear,
        )

    def __repr__(self):
        return (f"AffineAugmenter(image_shape={self.image_shape}, max_shift={self.max_shift}, "
                f"max_rotation={self.max_rotation}, max_scale={self.max_scale}, "
                f"max_shear={self.max_shear})")
