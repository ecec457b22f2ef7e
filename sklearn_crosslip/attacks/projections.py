"""Box-constrained minimal-norm solutions of a linear inequality (eq. 8).

The linearised adversarial problem of Section 4 of Hein & Andriushchenko
(2017) is, for one point and one competing class,

    min ||delta||_p  s.t.  <g, delta> >= b,  lo <= x + delta <= hi.

:func:`min_norm_box_halfspace` solves it exactly for ``p`` in ``{1, 2, inf}``
and many problems at once (Proposition 4.1). The one-parameter dual problems
and the algorithms are documented in
:mod:`sklearn_crosslip.attacks._projections_numba`.
"""

import numbers

import numpy as np

from ._projections_numba import solve_batch

__all__ = ["min_norm_box_halfspace"]


def _check_norm(p, name="p"):
    """Return the kernel code (1, 2 or 0 for inf) of a norm or raise ValueError."""
    if isinstance(p, str):
        if p.lower() == "inf":
            return 0
    elif isinstance(p, numbers.Real) and not isinstance(p, bool):
        if p == 1:
            return 1
        if p == 2:
            return 2
        if p == np.inf:
            return 0
    raise ValueError(f"{name} must be one of 1, 2, np.inf or 'inf'; got {p!r}.")


def _bound_array(v, d, default, name):
    if v is None:
        return np.full(d, default)
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(d, float(arr))
    if arr.shape != (d,):
        raise ValueError(
            f"{name} must be None, a scalar or have shape ({d},); got shape {arr.shape}."
        )
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN.")
    return np.ascontiguousarray(arr)


def _solve(G, B, X, lo, hi, p_code, clamp):
    """Kernel call on validated C-contiguous float64 arrays (no checks)."""
    m, d = G.shape
    delta = np.empty((m, d))
    feasible = np.empty(m, dtype=np.bool_)
    max_value = np.empty(m)
    if m:
        solve_batch(G, B, X, lo, hi, p_code, clamp, delta, feasible, max_value)
    return delta, feasible, max_value


def min_norm_box_halfspace(g, b, x, lo=None, hi=None, p=2):
    """Smallest ``delta`` in p-norm with ``<g, delta> >= b`` and ``x + delta`` in a box.

    Solves, independently for every row ``i``,

    .. math::

        \\min_{\\delta} \\|\\delta\\|_p \\quad \\text{s.t.} \\quad
        \\langle g_i, \\delta \\rangle \\ge b_i, \\quad
        lo \\le x_i + \\delta \\le hi,

    the linearised adversarial problem (8) of Hein & Andriushchenko (2017),
    exactly and in O(d log d) time per row in the worst case (Proposition
    4.1; O(d) in practice), in parallel over rows.

    * ``p = 2``: ``delta_j = clip(t g_j, lo_j - x_j, hi_j - x_j)`` where the
      dual variable ``t >= 0`` solves the piecewise-linear equation
      ``<g, delta(t)> = b`` (piecewise linear in ``t``; solved by Newton's
      method on its break points; the solution is unique).
    * ``p = inf``: ``delta_j = clip(eps sign(g_j), lo_j - x_j, hi_j - x_j)``
      with the smallest ``eps`` reaching ``b``.
    * ``p = 1``: the budget is spent on the largest ``|g_j|`` first, each
      coordinate up to the box (a minimiser; with ties in ``|g_j|`` it is not
      unique, but its norm is the optimal value).

    Parameters
    ----------
    g : array-like of shape (n_problems, n_features) or (n_features,)
        Constraint normals.
    b : float or array-like of shape (n_problems,)
        Right-hand sides. ``b <= 0`` gives ``delta = 0``.
    x : array-like of the same shape as ``g``
        Base points; every row must lie inside ``[lo, hi]``.
    lo, hi : None, float or array-like of shape (n_features,), default=None
        Box bounds (``None`` for an unbounded side; ``-inf``/``inf`` entries
        are allowed). ``lo <= hi`` is required.
    p : {1, 2, np.inf, 'inf'}, default=2
        The norm.

    Returns
    -------
    delta : ndarray of the same shape as ``g``
        The minimisers. Rows of infeasible problems are NaN.
    feasible : ndarray of shape (n_problems,) of bool, or bool
        False where ``b`` exceeds the largest value of ``<g, delta>`` over the
        box (the problem has no solution).

    Notes
    -----
    The constraint ``<g, delta> >= b`` holds up to floating-point rounding
    (a few ulps of ``sum_j |g_j delta_j|``) when ``b`` is attained exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crosslip.attacks import min_norm_box_halfspace
    >>> delta, ok = min_norm_box_halfspace([1.0, 1.0], 1.0, [0.0, 0.9], 0, 1, p=2)
    >>> np.round(delta, 3), bool(ok)
    (array([0.9, 0.1]), True)
    """
    p_code = _check_norm(p)
    g = np.asarray(g, dtype=np.float64)
    single = g.ndim == 1
    G = np.atleast_2d(g)
    if G.ndim != 2:
        raise ValueError(f"g must be 1-d or 2-d; got {g.ndim} dimensions.")
    m, d = G.shape
    X = np.asarray(x, dtype=np.float64)
    X = X.reshape(1, -1) if X.ndim == 1 else X
    if X.shape != G.shape:
        raise ValueError(f"x must have the same shape as g {g.shape}; got {np.shape(x)}.")
    B = np.asarray(b, dtype=np.float64)
    if B.ndim == 0:
        B = np.full(m, float(B))
    if B.shape != (m,):
        raise ValueError(f"b must be a scalar or have shape ({m},); got shape {B.shape}.")
    for name, arr in (("g", G), ("b", B), ("x", X)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
    lo_arr = _bound_array(lo, d, -np.inf, "lo")
    hi_arr = _bound_array(hi, d, np.inf, "hi")
    if np.any(lo_arr > hi_arr):
        k = int(np.argmax(lo_arr > hi_arr))
        raise ValueError(f"lo must be <= hi; feature {k} has lo={lo_arr[k]!r} > hi={hi_arr[k]!r}.")
    outside = (X < lo_arr) | (X > hi_arr)
    if outside.any():
        i, k = np.argwhere(outside)[0]
        raise ValueError(
            f"x must lie inside the box: row {i}, feature {k} has value {X[i, k]!r} "
            f"outside [{lo_arr[k]!r}, {hi_arr[k]!r}]."
        )
    delta, feasible, _ = _solve(
        np.ascontiguousarray(G), np.ascontiguousarray(B), np.ascontiguousarray(X),
        lo_arr, hi_arr, p_code, False,
    )
    if single:
        return delta[0], bool(feasible[0])
    return delta, feasible
