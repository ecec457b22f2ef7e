"""Floating-point helpers and argument checks shared by the bound modules.

Every bound in this package is an *upper* bound on a Lipschitz constant and
every radius a *lower* bound on a distance, so each rounding step is pushed to
the safe side with the classical a-priori error bounds (Higham, *Accuracy and
Stability of Numerical Algorithms*, ch. 3): a dot product or sum of ``n``
terms computed in any order (blocked BLAS and FMA included) has absolute
error at most ``gamma_n * sum |terms|`` with ``gamma_n = n u / (1 - n u)`` and
``u = 2**-53``. We use ``EPS = 2u`` (numpy's machine epsilon) in place of
``u`` throughout, which doubles every margin.
"""

import hashlib
import numbers
import threading
from collections import OrderedDict

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # 2**-52 = 2u: twice the unit roundoff
TINY = 1e-280  # absolute slack covering underflow to zero of tiny products


def gamma(n):
    """A-priori relative error bound ``n eps / (1 - n eps)`` for ``n`` roundings.

    Parameters
    ----------
    n : int or float
        Number of floating-point operations in the chain.

    Returns
    -------
    float
    """
    n = float(n)
    return n * EPS / (1.0 - n * EPS)


_spec_lock = threading.Lock()
_spec_cache = {}


def _content_key(W):
    W = np.ascontiguousarray(W)
    h = hashlib.blake2b(W.view(np.uint8), digest_size=16).digest()
    return (W.shape, W.dtype.str, h)


def spectral_norm_upper(W):
    """Upper bound on the largest singular value ``||W||_2``.

    LAPACK's SVD is backward stable: the computed singular values are exact
    for ``W + E`` with ``||E||_2 <= p(m, n) u ||W||_2`` and a modest polynomial
    ``p``, hence (Weyl) ``|sigma_hat - sigma| <= p(m, n) u ||W||_2``. We
    inflate by ``(m + n)**2 eps``, far above any such ``p`` used in practice,
    and cap by the Frobenius norm (itself an upper bound, also inflated).

    Parameters
    ----------
    W : ndarray of shape (m, n)

    Returns
    -------
    float
    """
    W = np.asarray(W, dtype=np.float64)
    if W.size == 0:
        return 0.0
    key = _content_key(W)  # cached per weight content: the SVD dominates small calls
    with _spec_lock:
        hit = _spec_cache.get(key)
    if hit is not None:
        return hit
    m, n = W.shape
    s = float(np.linalg.norm(W, 2))
    fro = float(np.sqrt(np.sum(W * W))) * (1.0 + gamma(W.size + 4))
    infl = s * (1.0 + gamma((m + n) ** 2 + 8)) + TINY
    val = min(infl, fro + TINY)
    with _spec_lock:
        if len(_spec_cache) > 16:
            _spec_cache.clear()
        _spec_cache[key] = val
    return val


def prepare_active(active, c, m, K):
    """Validate ``c``/``active`` and return the boolean (m, K) mask without column ``c``.

    Parameters
    ----------
    active : ndarray of shape (m, K) of bool or None
        ``None`` means every class other than ``c``.
    c : array-like of shape (m,) of int
        Predicted class index per sample.
    m, K : int
        Number of samples and of classes.

    Returns
    -------
    c : ndarray of shape (m,) of intp
    active : ndarray of shape (m, K) of bool
    """
    c = np.asarray(c)
    if c.shape != (m,) or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"c must be an integer array of shape ({m},); got {c.shape}, {c.dtype}.")
    c = c.astype(np.intp)
    if m and (c.min() < 0 or c.max() >= K):
        raise ValueError(f"c must hold class indices in [0, {K}).")
    if active is None:
        act = np.ones((m, K), dtype=bool)
    else:
        act = np.array(active, dtype=bool, copy=True)
        if act.shape != (m, K):
            raise ValueError(f"active must have shape ({m}, {K}); got {act.shape}.")
    act[np.arange(m), c] = False
    return c, act


def check_radii(R, m):
    """Return ``R`` as a float64 array of shape (m,), checking ``R >= 0`` and finite."""
    R = np.asarray(R, dtype=np.float64)
    if R.ndim == 0:
        R = np.full(m, float(R))
    if R.shape != (m,):
        raise ValueError(f"R must have shape ({m},); got {R.shape}.")
    if not np.all(np.isfinite(R)) or np.any(R < 0):
        raise ValueError("R must be finite and non-negative.")
    return R


def check_method(method):
    """Validate the local-bound ``method`` name."""
    if method not in ("local", "local_fast"):
        raise ValueError(f"method must be 'local' or 'local_fast'; got {method!r}.")
    return method


def check_box_arrays(lo, hi, d):
    """Return ``(lo, hi)`` as float64 (d,) arrays or ``(None, None)``."""
    if lo is None and hi is None:
        return None, None
    if lo is None or hi is None:
        raise ValueError("lo and hi must both be given or both be None.")
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (d,))
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (d,))
    if np.isnan(lo).any() or np.isnan(hi).any() or np.any(lo > hi):
        raise ValueError("Invalid box: need lo <= hi and no NaN.")
    return lo, hi


_NORM_NAMES = {"l1": 1.0, "l2": 2.0, "linf": np.inf, "inf": np.inf}


def check_norm(norm):
    """Return the ball's p-norm as ``1.0``, ``2.0`` or ``np.inf``, or raise ``ValueError``.

    Accepts the numbers 1, 2 and ``np.inf`` (any real type equal to them) and
    the strings ``"l1"``, ``"l2"``, ``"linf"`` and ``"inf"`` (case-insensitive).

    Parameters
    ----------
    norm : {1, 2, np.inf, "l1", "l2", "linf", "inf"}
        The ``p`` of the ball ``B_p(x, R)``.

    Returns
    -------
    p : float
        ``1.0``, ``2.0`` or ``inf``.
    """
    if isinstance(norm, str):
        p = _NORM_NAMES.get(norm.strip().lower())
        if p is not None:
            return p
        raise ValueError(
            f"norm must be 1, 2, np.inf or one of 'l1', 'l2', 'linf'; got {norm!r}."
        )
    if isinstance(norm, numbers.Real) and not isinstance(norm, (bool, np.bool_)):
        p = float(norm)
        if np.isnan(p):
            raise ValueError("norm must be 1, 2 or np.inf; got NaN.")
        if p in (1.0, 2.0, np.inf):
            return p
        if p < 1:
            raise ValueError(
                f"norm must be 1, 2 or np.inf; got {norm!r} (p < 1 does not define a "
                "norm, the certificate needs a norm and its dual)."
            )
        raise ValueError(
            f"norm must be 1, 2 or np.inf; got {norm!r} (other p-norms are not implemented)."
        )
    raise ValueError(f"norm must be 1, 2, np.inf or one of 'l1', 'l2', 'linf'; got {norm!r}.")


def dual_exponent(p):
    """Dual exponent ``q`` with ``1/p + 1/q = 1`` for ``p`` in ``{1, 2, inf}``."""
    return {1.0: np.inf, 2.0: 2.0}.get(p, 1.0)


class RowCache:
    """Thread-safe LRU cache of per-point rows of one model, keyed by the point's content.

    The certificate evaluates the bounds of the same points at many radii; rows
    that do not depend on the radius (gradients at ``x``, distances from ``x``)
    are cached here. Only the last model's rows are kept: a lookup with another
    model key empties the cache.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._model = None
        self._rows = OrderedDict()

    def clear(self):
        """Forget every row."""
        with self._lock:
            self._model = None
            self._rows = OrderedDict()

    def fill(self, model_key, keys, outs):
        """Copy the cached rows of ``keys`` into ``outs``; return the indices of the misses.

        ``outs`` are arrays with one entry per key and one per part of a cached
        row; ``model_key`` becomes the current model.
        """
        miss = []
        with self._lock:
            if self._model != model_key:
                self._model = model_key
                self._rows = OrderedDict()
            for i, k in enumerate(keys):
                hit = self._rows.get(k)
                if hit is None:
                    miss.append(i)
                    continue
                self._rows.move_to_end(k)
                for out, part in zip(outs, hit):
                    out[i] = part
        return miss

    def store(self, model_key, items, cap):
        """Insert ``(key, row)`` pairs if ``model_key`` is still current; keep ``cap`` rows."""
        with self._lock:
            if self._model != model_key:
                return
            for k, row in items:
                self._rows[k] = row
            while len(self._rows) > cap:
                self._rows.popitem(last=False)
