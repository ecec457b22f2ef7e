"""Cross-Lipschitz bounds of Gaussian-kernel expansions for the L1 and L-infinity balls.

Theorem 2.1 for ``B_p(x, R)`` needs an upper bound on the dual norm ``||g(y)||_q``
(``1/p + 1/q = 1``) of ``g = grad f_c - grad f_j`` over the ball; here ``p = inf``
(``q = 1``) and ``p = 1`` (``q = inf``). Notation of
:mod:`sklearn_crosslip.bounds.kernel_bounds`: ``k_r(y) = exp(-gamma ||y - x_r||^2)``,
``beta = alpha_c - alpha_j`` and

    g(y) = -2 gamma sum_r beta_r k_r(y) (y - x_r).

**Coordinate moves.** In ``B_p(x, R) cap [lo, hi]`` (``p`` in {1, inf}) each
coordinate satisfies ``y_l in [x_l - dn_l, x_l + up_l]`` with
``up_l = min(R, hi_l - x_l)``, ``dn_l = min(R, x_l - lo_l)``. For ``p = inf`` the set
is exactly that box.

**Distance ranges** (``delta_r = x - x_r``, ``h = y - x``). For ``p = inf``:
``||y - x_r||^2 = ||delta_r||^2 + 2 <delta_r, h> + ||h||^2``, so
``||delta_r||^2 - 2 R ||delta_r||_1 <= ||y - x_r||^2 <= ||delta_r||^2 + 2 R ||delta_r||_1
+ d R^2`` (Hoelder; the lower end also follows coordinatewise from
``(|a| - R)_+^2 >= a^2 - 2 R |a|``). For ``p = 1``: Hoelder gives the lower end
``||delta_r||^2 - 2 R ||delta_r||_inf`` and ``B_1 subset B_2`` gives
``(||delta_r|| - R)_+^2`` (the larger is used), and ``||y - x_r||^2 <= ||delta_r||^2 +
2 R ||delta_r||_inf + R^2`` (``||h||_2 <= ||h||_1``). Both are intersected with the
distance range of ``x_r`` to the box. On the influential set ``T`` (below) and for
``p = inf`` the range is computed exactly over the box ``prod_l [x_l - dn_l, x_l + up_l]``:
``min = sum_l dist(x_rl, [x_l - dn_l, x_l + up_l])^2``, ``max = sum_l
max(|x_l - dn_l - x_rl|, |x_l + up_l - x_rl|)^2``. Hence ``k_r(y)`` lies in
``[kmin_r, kmax_r] = [exp(-gamma max), exp(-gamma min)]``.

**Coordinate interval bound** (CIB). Coordinate ``l`` of ``sum_{r in T} beta_r k_r(y)
(y_l - x_rl)``: ``y_l - x_rl`` lies in ``[e_l - dn_l, e_l + up_l]`` (``e = delta_r``)
and ``k_r(y)`` in ``[kmin_r, kmax_r]``; the product of an interval with a positive
interval is enclosed by its end products (``max = e_hi kmax`` if ``e_hi > 0``
else ``e_hi kmin``, and symmetrically), ``beta_r`` scales (and for negative
``beta_r`` swaps) the ends, and the sum over ``r`` gives ``[A_l, B_l]``. Then
``|coordinate l| <= max(B_l, -A_l)``, and

* ``q = 1``: ``||g(y)||_1 <= 2 gamma sum_l max(B_l, -A_l)``,
* ``q = inf``: ``||g(y)||_inf <= 2 gamma max_l max(B_l, -A_l)``.

At ``R = 0`` (``T`` = all points) this is the exact dual norm of ``g(x)``.

**Triangle bound for the rest.** ``||sum_{r not in T} beta_r k_r(y) (y - x_r)||_q
<= sum_{r not in T} |beta_r| w_r`` with ``w_r >= sup_y k_r(y) ||y - x_r||_q``:
``w_r = kmax_r (||delta_r||_q + s_q)`` with ``s_1 = sum_l max(up_l, dn_l)``
and ``s_inf = max_l max(up_l, dn_l)``; for ``q = inf`` also ``||.||_inf <= ||.||_2``
gives ``w_r <= phi_r = max t exp(-gamma t^2)`` over the L2 distance range (the
triangle term of the L2 bounds, valid as ``B_1(x, R) subset B_2(x, R)``), and
the minimum is used.

``method="local"``: ``T`` = all training points (O(n d) per point, class and
radius). ``method="local_fast"``: ``T`` = the ``FAST_SUBSET_SIZE`` points with the
largest ``max_j |beta_r| w_r``, plus the triangle bound for the rest. Every value
is the minimum of this, the triangle bound over all points and the global constant.

**Global constant.** ``sup_u ||u||_q exp(-gamma ||u||^2)`` is
``1 / sqrt(2 gamma e)`` for ``q = inf`` (``||u||_inf <= ||u||_2``, equality on the
axes) and ``sqrt(d) / sqrt(2 gamma e)`` for ``q = 1`` (``||u||_1 <= sqrt(d) ||u||_2``,
equality on the diagonals), so the constants are the L2 constant
``||beta||_1 sqrt(2 gamma / e)`` times 1 and ``sqrt(d)``.

**Rounding (float64).** Squared distances carry the absolute error ``derr`` of
:mod:`~sklearn_crosslip.bounds.kernel_bounds`; ``||delta_r||_q`` is inflated by
``gamma_{d+8}`` (and stored in float32 rounded up in the cache); the exact box
ranges are widened by ``gamma_{d+32} (||x|| + ||x_r|| + sqrt(d) R)^2`` (each computed
``y_l - x_rl`` end has error below ``3 u`` times ``|x_l| + |x_rl| + R``);
``exp`` is pushed up for ``kmax`` and down for ``kmin`` (relative
``(8 gamma t + 192) eps``). The rounding errors of the CIB sums are at most
``gamma_{N+d+32}`` times the sum of the magnitudes of their terms, which the
triangle sum over all points bounds, and that is added. Results are rounded up.
"""

import math

import numpy as np

from ._common import EPS, TINY, RowCache, gamma as gam
from ._kernel_numba import triangle_terms, weighted_abs_sums
from ._lp_kernel_numba import coordinate_interval_sums, lq_distances, signed_interval_sums
from .kernel_bounds import (
    _active_lists,
    _box_distance_ranges,
    _digest,
    _gradients_with_errors,
    _row_sqnorms,
    _sq_dists_block,
    global_cross_lipschitz as _global_l2,
)

__all__ = ["local_cross_lipschitz", "global_cross_lipschitz", "clear_cache"]

_BLOCK = 256  # points per block
LQ_CACHE_BYTES = 512 * 2**20  # cached ||x - x_r||_q rows (float32)
_F32_UP = 1.0 + 2.0**-20  # v * _F32_UP rounded to float32 is still >= v

_lq_cache = RowCache()


def clear_cache():
    """Release the cached ``||x - x_r||_q`` rows (see :func:`local_cross_lipschitz`)."""
    _lq_cache.clear()


def global_cross_lipschitz(dual_coef, gamma, p, n_features=None):
    """Global constants ``sup_y ||grad f_c(y) - grad f_j(y)||_q`` for ``p`` in {1, inf}.

    Parameters
    ----------
    dual_coef : ndarray of shape (n_classes, n_train)
    gamma : float
    p : {1.0, inf}
        The p of the ball (``q`` is its dual).
    n_features : int or None
        Input dimension; without it the ``p = inf`` constant is ``inf``.

    Returns
    -------
    L : ndarray of shape (n_classes, n_classes)
        Rounded up; zero diagonal.
    """
    L = _global_l2(dual_coef, gamma)
    if p == 1.0:
        return L  # ||u||_inf <= ||u||_2
    if p != np.inf:
        raise ValueError(f"p must be 1 or inf here; got {p!r}.")
    if n_features is None:
        L = np.full_like(L, np.inf)
    else:
        L = L * (math.sqrt(int(n_features)) * (1.0 + 4 * EPS))
    np.fill_diagonal(L, 0.0)
    return L


def _row_stats(model_key, X_fit, fnorm, A, gamma, Xb, d2, derr, qinf):
    """Per point, cached by content: ``||x - x_r||_q`` and the gradient differences at ``x``.

    Returns ``nq`` (mb, n), ``||x_i - x_r||_q`` rounded up, and ``Dq`` (mb, K, K),
    upper bounds on ``||grad f_a(x_i) - grad f_b(x_i)||_q``: the computed norm
    rounded up plus ``c_q (eta_a + eta_b)`` with the L2 error bounds ``eta`` of the
    computed gradients (``c_inf = 1``, ``c_1 = sqrt(d)``).
    """
    mb = Xb.shape[0]
    n, d = X_fit.shape
    K = A.shape[0]
    key_model = (model_key, bool(qinf))
    keys = [_digest(Xb[i]) for i in range(mb)]
    nq = np.empty((mb, n))
    Dq = np.empty((mb, K, K))
    miss = _lq_cache.fill(key_model, keys, (nq, Dq))
    if miss:
        miss = np.asarray(miss)
        Xm = np.ascontiguousarray(Xb[miss])
        V = np.empty((miss.size, n))
        lq_distances(Xm, X_fit, bool(qinf), V)
        V *= 1.0 + gam(d + 8)
        V32 = (V * _F32_UP).astype(np.float32)
        nq[miss] = V32
        d2m = d2[miss]
        km = np.exp(-gamma * d2m)
        krel = np.expm1(gamma * (derr[miss] + 4 * EPS * d2m.max(axis=1))) + 8 * EPS
        dhi = np.sqrt(d2m + derr[miss][:, None]) * (1.0 + 4 * EPS)
        G, eta = _gradients_with_errors(X_fit, fnorm, A, gamma, Xm, km, krel, dhi)
        del km, dhi
        D = np.empty((miss.size, K, K))
        for a in range(K):
            diff = np.abs(G - G[:, a:a + 1, :])
            D[:, a, :] = diff.max(axis=2) if qinf else diff.sum(axis=2)
        cq = 1.0 if qinf else math.sqrt(d) * (1.0 + 4 * EPS)
        D = D * (1.0 + gam(d + 8)) + cq * (eta[:, :, None] + eta[:, None, :]) * (1.0 + 8 * EPS)
        Dq[miss] = D
        _lq_cache.store(key_model, [(keys[i], (V32[t], D[t])) for t, i in enumerate(miss)],
                        cap=max(256, LQ_CACHE_BYTES // (4 * n + 8 * K * K)))
    return nq, Dq


def _exp_up(arg):
    """Upper bound on ``exp(-arg)`` for computed ``arg >= 0``."""
    return np.exp(-arg) * (1.0 + (8.0 * arg + 192.0) * EPS) + 1e-300


def local_cross_lipschitz(X_fit, A, gamma, X, c, R, act, lo, hi, method, X_fit_sqnorm, p,
                          return_parts=False):
    """Upper bounds on ``max_{y in B_p(x, R) cap box} ||grad f_c(y) - grad f_j(y)||_q``.

    Called by :func:`sklearn_crosslip.bounds.kernel_bounds.local_cross_lipschitz`
    (which validates the arguments) for ``p`` in {1, inf}; see the module
    docstring. The ``||x - x_r||_q`` rows are cached by content across the
    calls of one certification (at most ``LQ_CACHE_BYTES``; :func:`clear_cache`
    or :func:`sklearn_crosslip.bounds.kernel_bounds.clear_cache` frees them).

    Parameters
    ----------
    X_fit : ndarray of shape (n, d)
    A : ndarray of shape (K, n)
    gamma : float
    X : ndarray of shape (m, d)
    c : ndarray of shape (m,) of intp
    R : ndarray of shape (m,)
    act : ndarray of shape (m, K) of bool
        Entries to compute (column ``c`` cleared).
    lo, hi : ndarray of shape (d,) or None
    method : {"local", "local_fast"}
    X_fit_sqnorm : ndarray of shape (n,) or None
    p : {1.0, inf}
    return_parts : bool, default=False
        Also return ``{"coord": ..., "triangle": ..., "global": ...}`` (each
        (m, K), NaN where not computed): the CIB over ``T`` plus the triangle
        bound for the rest, the triangle bound over all points, the global
        constant.

    Returns
    -------
    L : ndarray of shape (m, K)
    parts : dict
        Only with ``return_parts=True``.
    """
    n, d = X_fit.shape
    m, K = act.shape
    out = np.full((m, K), np.inf)
    out[np.arange(m), c] = 0.0
    parts = {k: np.full((m, K), np.nan) for k in ("coord", "meanvalue", "triangle", "global")}
    pts = np.flatnonzero(act.any(axis=1))
    if pts.size == 0:
        return (out, parts) if return_parts else out
    qinf = p == 1.0
    fsq = _row_sqnorms(X_fit) if X_fit_sqnorm is None else np.asarray(X_fit_sqnorm, float)
    fnorm_max = math.sqrt(float(fsq.max(initial=0.0)))
    fnorm = np.sqrt(fsq) * (1.0 + 4 * EPS)
    Lglob = global_cross_lipschitz(A, gamma, p, d)
    box_tlo, box_thi = _box_distance_ranges(X_fit, lo, hi)
    model_key = (X_fit.shape, _digest(X_fit), _digest(A), gamma)
    two_g = 2.0 * gamma * (1.0 + 2 * EPS)
    g_sum = gam(n + d + 32)
    sqd = math.sqrt(d) * (1.0 + 4 * EPS)
    with np.errstate(over="ignore", invalid="ignore"):
        tlo2 = box_tlo * box_tlo * (1.0 - 4 * EPS)
        thi2 = np.where(np.isfinite(box_thi), box_thi * box_thi * (1.0 + 4 * EPS), np.inf)

    for b0 in range(0, pts.size, _BLOCK):
        pi = pts[b0:b0 + _BLOCK]
        mb = pi.size
        Xb = np.ascontiguousarray(X[pi])
        cb = c[pi]
        Rb = R[pi]
        jlist = _active_lists(act[pi])
        d2, derr = _sq_dists_block(Xb, X_fit, fsq, fnorm_max)
        nq, Dq = _row_stats(model_key, X_fit, fnorm, A, gamma, Xb, d2, derr, qinf)
        Rc = Rb[:, None]
        if lo is None:
            up = np.broadcast_to(Rc, (mb, d)).copy()
            dn = up.copy()
        else:
            # (hi - x) rounded up: the enclosing set can only grow
            up = np.minimum(Rc, (hi[None, :] - Xb) * (1.0 + 2 * EPS))
            dn = np.minimum(Rc, (Xb - lo[None, :]) * (1.0 + 2 * EPS))
        shift = np.maximum(up, dn)
        s_q = shift.max(axis=1) if qinf else shift.sum(axis=1) * (1.0 + gam(d + 8))
        R2 = (Rb * (1.0 + 2 * EPS))[:, None]
        dl = np.maximum(d2 - derr[:, None], 0.0)
        dh = d2 + derr[:, None]
        # Hoelder: ||y - x_r||^2 >= ||delta_r||^2 - 2 R ||delta_r||_q (both norms)
        d2lo = np.maximum(dl - 2.0 * R2 * nq * (1.0 + 4 * EPS), 0.0) * (1.0 - 4 * EPS)
        if qinf:  # p = 1
            t = np.maximum(np.sqrt(dl) * (1.0 - 4 * EPS) - R2, 0.0)
            np.maximum(d2lo, t * t * (1.0 - 4 * EPS), out=d2lo)
            d2hi = (dh + 2.0 * R2 * nq + R2 * R2) * (1.0 + 8 * EPS)
        else:  # p = inf
            d2hi = (dh + 2.0 * R2 * nq + d * R2 * R2) * (1.0 + 8 * EPS)
        np.maximum(d2lo, tlo2[None, :], out=d2lo)
        np.minimum(d2hi, thi2[None, :], out=d2hi)
        kmax = _exp_up(gamma * d2lo)
        kmin = np.maximum(np.exp(-gamma * d2hi * (1.0 + 4 * EPS)) * (1.0 - 64 * EPS), 0.0)
        # sup_y k_r(y) ||y - x_r||_q <= kmax_r (||delta_r||_q + s_q)
        w = kmax * ((nq + s_q[:, None]) * (1.0 + 4 * EPS))
        if qinf:
            phi = np.empty((mb, n))
            psi = np.empty((mb, n))
            triangle_terms(d2, derr, Rb, gamma, box_tlo, box_thi, phi, psi)
            np.minimum(w, phi, out=w)
            del phi, psi
        # |k_r(y) - k_r(x)| <= dk_r, with k_r(x) enclosed through the error of d2
        kx_lo = np.exp(-gamma * dh * (1.0 + 4 * EPS)) * (1.0 - 64 * EPS)
        kx_hi = _exp_up(gamma * dl * (1.0 - 4 * EPS))
        dk = np.maximum(np.maximum(kmax - kx_lo, kx_hi - kmin), 0.0) * (1.0 + 4 * EPS)
        dk *= nq
        del kx_lo, kx_hi
        J = jlist.shape[1]
        empty_mask = np.zeros((0, 0), dtype=np.uint8)
        tri = np.empty((mb, J))
        scr = np.empty((mb, J))
        weighted_abs_sums(w, w, A, cb, jlist, empty_mask, tri, scr)
        bk = np.empty((mb, J))  # sum_r |beta_r| kmax_r
        bdk = np.empty((mb, J))  # sum_r |beta_r| dk_r ||delta_r||_q
        weighted_abs_sums(kmax, dk, A, cb, jlist, empty_mask, bk, bdk)
        s_lo = np.empty((mb, J))
        s_hi = np.empty((mb, J))
        signed_interval_sums(kmin, kmax, A, cb, jlist, empty_mask, s_lo, s_hi)
        del w, dk
        smax = (np.maximum(np.abs(s_lo), np.abs(s_hi)) + gam(n + 8) * bk) * (1.0 + 4 * EPS)
        ar = np.arange(mb)[:, None]
        gx = Dq[ar, cb[:, None], np.maximum(jlist, 0)]
        # mean-value form: ||g(x)||_q + 2 gamma (sum |beta| dk ||delta||_q + s_q max |S|)
        mv = gx + two_g * (bdk + s_q[:, None] * smax) * (1.0 + 8 * EPS)
        best = np.minimum(mv, tri * two_g * (1.0 + 4 * EPS))
        coord = np.full((mb, J), np.nan)
        if method == "local":
            mag_sum = np.empty((mb, J))
            mag = kmax * ((nq + s_q[:, None]) * (1.0 + 4 * EPS))
            weighted_abs_sums(mag, mag, A, cb, jlist, empty_mask, mag_sum, scr)
            del mag
            sel = np.ascontiguousarray(
                np.broadcast_to(np.arange(n, dtype=np.int64), (mb, n)))
            nsel = np.full(mb, n, dtype=np.int64)
            xs = (np.sqrt(_row_sqnorms(Xb)) + sqd * Rb) * (1.0 + 4 * EPS)
            cib = np.empty((mb, J))
            zero = np.zeros((mb, J))
            coordinate_interval_sums(
                Xb, X_fit, sel, nsel, up, dn, d2lo, d2hi, not qinf, xs, fnorm, gam(d + 32),
                gamma, A, cb, jlist, zero, zero, qinf, cib,
            )
            # rounding of the CIB sums: gamma_{n+d+32} times the sum of their magnitudes
            coord = (cib * (1.0 + gam(d + 8)) + g_sum * mag_sum) * two_g * (1.0 + 8 * EPS)
            coord += TINY
            best = np.minimum(best, coord)
        del kmax, kmin
        rows = np.repeat(np.arange(mb), J)
        jl = jlist.ravel()
        ok = jl >= 0
        rows, jl = rows[ok], jl[ok]
        glob = Lglob[cb[rows], jl]
        out[pi[rows], jl] = np.minimum(best.ravel()[ok], glob)
        if return_parts:
            parts["coord"][pi[rows], jl] = coord.ravel()[ok]
            parts["meanvalue"][pi[rows], jl] = mv.ravel()[ok]
            parts["triangle"][pi[rows], jl] = (tri * two_g * (1.0 + 4 * EPS)).ravel()[ok]
            parts["global"][pi[rows], jl] = glob
    return (out, parts) if return_parts else out
