"""Numba kernel of the random affine image distortions (:mod:`.augmentation`).

One pure ``@njit`` function warps a stack of gray-scale images by per-image
inverse affine maps with bilinear interpolation, in parallel over images. It
reproduces ``scipy.ndimage.map_coordinates(order=1, mode="constant", cval=0,
prefilter=False)`` on the same sampling coordinates: a sample whose coordinate
lies outside ``[0, rows - 1] x [0, cols - 1]`` is 0, one inside is the bilinear
interpolation of its (at most) four neighbouring pixels. Written out per pixel
it avoids the ``(3, n, rows, cols)`` coordinate array of the NumPy version and
runs on every core (about 40x faster on MNIST batches).
"""

import numpy as np
from numba import njit, prange

__all__ = ["warp_affine_bilinear"]


@njit(cache=True, parallel=True)
def warp_affine_bilinear(images, cos, sin, scale, shear_tan, shift, out):
    """Warp ``images`` (n, rows, cols) into ``out`` by per-image inverse affine maps.

    Output pixel ``(i, j)`` of image ``k`` samples the input at
    ``c + A_k^{-1} (p - c - shift_k)`` with ``c`` the image centre and
    ``A_k = rotation(angle) @ shear @ scale``: with ``d = p - c - shift_k``,
    ``r_i = (cos d_i + sin d_j) / s``, ``r_j = (-sin d_i + cos d_j) / s - tan(shear) r_i``.
    """
    n, rows, cols = images.shape
    ci = (rows - 1) / 2.0
    cj = (cols - 1) / 2.0
    for k in prange(n):
        c, s_, inv = cos[k], sin[k], 1.0 / scale[k]
        sh = shear_tan[k]
        for i in range(rows):
            di = i - ci - shift[k, 0]
            for j in range(cols):
                dj = j - cj - shift[k, 1]
                ri = (c * di + s_ * dj) * inv
                rj = (-s_ * di + c * dj) * inv - sh * ri
                y = ri + ci
                x = rj + cj
                if y < 0.0 or y > rows - 1 or x < 0.0 or x > cols - 1:
                    out[k, i, j] = 0.0
                    continue
                y0 = min(int(np.floor(y)), rows - 1)
                x0 = min(int(np.floor(x)), cols - 1)
                wy = y - y0
                wx = x - x0
                y1 = min(y0 + 1, rows - 1)
                x1 = min(x0 + 1, cols - 1)
                top = (1.0 - wx) * images[k, y0, x0] + wx * images[k, y0, x1]
                bot = (1.0 - wx) * images[k, y1, x0] + wx * images[k, y1, x1]
                out[k, i, j] = (1.0 - wy) * top + wy * bot
