"""Input checks shared by the estimators, the certificate and the attacks."""

import numbers

import numpy as np

__all__ = ["check_box", "check_n_jobs_param"]


def check_box(box, n_features, X=None, *, name="box"):
    """Validate an input-domain box and return it as two float64 arrays.

    Parameters
    ----------
    box : None or tuple (lo, hi)
        Lower and upper bounds of the input domain. Each of ``lo`` and ``hi``
        is a scalar or an array of shape (n_features,). ``None`` means no
        domain constraint.
    n_features : int
        Number of input features ``d``.
    X : array-like of shape (n_samples, n_features), default=None
        If given, every row must lie inside the box.
    name : str, default="box"
        Name used in error messages.

    Returns
    -------
    lo, hi : ndarray of shape (n_features,) or None
        The bounds as float64 arrays (``-inf``/``inf`` allowed), or
        ``(None, None)`` when ``box`` is None.

    Raises
    ------
    ValueError
        If the box is malformed, if ``lo >= hi`` anywhere, if a bound is NaN,
        or if a row of ``X`` lies outside the box.
    """
    if box is None:
        return None, None
    if not isinstance(box, (tuple, list)) or len(box) != 2:
        raise ValueError(
            f"{name} must be None or a pair (lo, hi) of scalars or arrays of "
            f"shape ({n_features},); got {box!r}."
        )
    lo = np.asarray(box[0], dtype=np.float64)
    hi = np.asarray(box[1], dtype=np.float64)
    out = []
    for side, arr in (("lower", lo), ("upper", hi)):
        if arr.ndim == 0:
            arr = np.full(n_features, float(arr))
        if arr.shape != (n_features,):
            raise ValueError(
                f"The {side} bound of {name} must be a scalar or have shape "
                f"({n_features},); got shape {arr.shape}."
            )
        if np.isnan(arr).any():
            raise ValueError(f"The {side} bound of {name} contains NaN.")
        out.append(arr)
    lo, hi = out
    if np.any(lo >= hi):
        k = int(np.argmax(lo >= hi))
        raise ValueError(
            f"{name} must satisfy lo < hi in every feature; feature {k} has "
            f"lo={lo[k]!r} >= hi={hi[k]!r}."
        )
    if X is not None:
        X = np.asarray(X)
        outside = (X < lo) | (X > hi)
        if outside.any():
            i, k = np.argwhere(outside)[0]
            raise ValueError(
                f"X lies outside {name}: sample {i}, feature {k} has value "
                f"{X[i, k]!r}, outside [{lo[k]!r}, {hi[k]!r}]. Pass a box that "
                "contains the inputs (e.g. box=(0, 1) for images scaled to [0, 1]) "
                "or box=None."
            )
    return lo, hi


def check_n_jobs_param(n_jobs):
    """Return a valid joblib ``n_jobs`` value or raise ``ValueError``."""
    if n_jobs is None:
        return None
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None or a non-zero integer; got {n_jobs!r}.")
    return int(n_jobs)
