"""Numba kernels for the L1 / L-infinity cross-Lipschitz bounds of kernel models.

Pure ``@njit(cache=True)`` functions, no fastmath (they feed a certificate),
parallel over points with ``prange``. The mathematics and the rounding
argument are in :mod:`sklearn_crosslip.bounds.lp_kernel`; comments here only
point at the quantities.
"""

import numpy as np
from numba import njit, prange

from ._kernel_numba import exp_vec

__all__ = ["lq_distances", "signed_interval_sums", "coordinate_interval_sums"]

_EPS = 2.220446049250313e-16


@njit(cache=True, parallel=True, error_model="numpy")
def lq_distances(X, Xf, qinf, out):
    """``out[i, r] = ||X[i] - Xf[r]||_q`` as computed (``q = inf`` if ``qinf`` else 1).

    Not rounded up here (the caller inflates by ``gamma_{d+8}``).

    Parameters
    ----------
    X : ndarray of shape (m, d)
    Xf : ndarray of shape (n, d)
    qinf : bool
    out : ndarray of shape (m, n)
    """
    m, d = X.shape
    n = Xf.shape[0]
    for i in prange(m):
        for r in range(n):
            s = 0.0
            if qinf:
                for l in range(d):
                    a = abs(X[i, l] - Xf[r, l])
                    s = a if a > s else s
            else:
                for l in range(d):
                    s += abs(X[i, l] - Xf[r, l])
            out[i, r] = s


@njit(cache=True, parallel=True, error_model="numpy")
def signed_interval_sums(kmin, kmax, A, c, jlist, mask, out_lo, out_hi):
    """Enclosure of ``S = sum_r beta_r k_r`` over ``k_r in [kmin_r, kmax_r]`` (``r`` not masked).

    ``out_hi[i, jj] = sum_r max(beta_r kmin_r, beta_r kmax_r)`` and ``out_lo``
    the sum of the minima (``beta = A[j] - A[c_i]``), without rounding slack.

    Parameters
    ----------
    kmin, kmax : ndarray of shape (m, n)
    A : ndarray of shape (K, n)
    c : ndarray of shape (m,)
    jlist : ndarray of shape (m, J)
    mask : ndarray of shape (m, n) of uint8 or shape (0, 0)
        If non-empty, entries with ``mask[i, r] != 0`` are skipped.
    out_lo, out_hi : ndarray of shape (m, J)
    """
    m, n = kmin.shape
    J = jlist.shape[1]
    use_mask = mask.shape[0] > 0
    for i in prange(m):
        ci = c[i]
        for jj in range(J):
            j = jlist[i, jj]
            lo = 0.0
            hi = 0.0
            if j >= 0:
                for r in range(n):
                    b = A[j, r] - A[ci, r]
                    if use_mask:
                        b = b if mask[i, r] == 0 else 0.0
                    u = b * kmax[i, r]
                    v = b * kmin[i, r]
                    hi += u if u > v else v
                    lo += v if u > v else u
            out_lo[i, jj] = lo
            out_hi[i, jj] = hi


@njit(cache=True, parallel=True, error_model="numpy")
def coordinate_interval_sums(X, Xf, sel, nsel, up, dn, d2lo, d2hi, exact, xs, fn, gs,
                             gamma, A, c, jlist, s_lo, s_hi, qinf, out):
    """Per-coordinate interval bound on ``sum_r beta_r k_r(y) (y - x_r)`` (the CIB).

    Coordinate ``l`` is ``sum_{r in T} beta_r k_r(y) e_rl + h_l S(y)`` with
    ``e = x_i - x_r``, ``h = y - x_i`` and ``S(y) = sum_r beta_r k_r(y)``, where
    ``h_l`` lies in ``[-dn_l, up_l]``, ``k_r(y)`` in ``[exp(-gamma d2hi),
    exp(-gamma d2lo)]`` and ``S(y)`` in the sum over ``T`` of the enclosures of
    ``beta_r k_r`` plus ``[s_lo, s_hi]`` (the points outside ``T``). With
    ``exact`` the squared distance range over the box
    ``prod_l [x_l - dn_l, x_l + up_l]`` (``B_inf(x, R) cap box``) is computed
    exactly, widened by ``gs (xs_i + fn_r)^2`` for its rounding, and
    intersected with ``[d2lo, d2hi]``. The first sum is enclosed term by term
    (``beta_r e_rl`` times the interval of ``k_r``), the product ``h_l S`` by
    its four corner products; coordinate ``l`` is then at most
    ``max(upper_l, -lower_l)`` in absolute value. ``out[i, jj]`` is the sum
    (``q = 1``) or the maximum (``qinf``) over ``l``, before rounding slack.

    Parameters
    ----------
    X : ndarray of shape (m, d)
    Xf : ndarray of shape (n, d)
    sel : ndarray of shape (m, N) of int64
    nsel : ndarray of shape (m,) of int64
    up, dn : ndarray of shape (m, d)
        Largest move up / down of each coordinate inside the ball (and box).
    d2lo, d2hi : ndarray of shape (m, n)
        Safe lower / upper bounds on ``||y - x_r||^2`` over the ball.
    exact : bool
    xs : ndarray of shape (m,)
        ``||x_i|| + ||(max(up_l, dn_l))_l||`` (upper bound).
    fn : ndarray of shape (n,)
        ``||x_r||`` (upper bound).
    gs : float
        Relative rounding factor of the exact squared distances.
    gamma : float
    A : ndarray of shape (K, n)
    c : ndarray of shape (m,)
    jlist : ndarray of shape (m, J)
        Active classes, padded with -1.
    s_lo, s_hi : ndarray of shape (m, J)
        Enclosure of the part of ``S`` from the points outside ``T``.
    qinf : bool
    out : ndarray of shape (m, J)
    """
    m, d = X.shape
    J = jlist.shape[1]
    for i in prange(m):
        ci = c[i]
        Ap = np.zeros((J, d))
        Am = np.zeros((J, d))
        Sp = np.zeros(J)
        Sm = np.zeros(J)
        ev = np.empty(d)
        beta = np.empty(J)
        for t in range(nsel[i]):
            r = sel[i, t]
            nz = False
            for jj in range(J):
                j = jlist[i, jj]
                b = A[j, r] - A[ci, r] if j >= 0 else 0.0
                beta[jj] = b
                nz = nz or b != 0.0
            if not nz:
                continue
            lo2 = d2lo[i, r]
            hi2 = d2hi[i, r]
            if exact:
                smin = 0.0
                smax = 0.0
                for l in range(d):
                    e = X[i, l] - Xf[r, l]
                    ev[l] = e
                    h = e + up[i, l]
                    w = e - dn[i, l]
                    a = w if w > 0.0 else (-h if h < 0.0 else 0.0)
                    smin += a * a
                    bb = h if h > -w else -w
                    smax += bb * bb
                s = xs[i] + fn[r]
                s = gs * s * s
                v = smin - s
                lo2 = v if v > lo2 else lo2
                v = smax + s
                hi2 = v if v < hi2 else hi2
            else:
                for l in range(d):
                    ev[l] = X[i, l] - Xf[r, l]
            lo2 = lo2 if lo2 > 0.0 else 0.0
            g = gamma * lo2
            kmx = exp_vec(-g) * (1.0 + (8.0 * g + 192.0) * _EPS) + 1e-300
            g = gamma * hi2
            kmn = exp_vec(-g) * (1.0 - (8.0 * g + 192.0) * _EPS)
            kmn = kmn if kmn > 0.0 else 0.0
            for jj in range(J):
                b = beta[jj]
                if b == 0.0:
                    continue
                bx = b * kmx
                bn = b * kmn
                Sp[jj] += bx if bx > bn else bn
                Sm[jj] += bn if bx > bn else bx
                for l in range(d):
                    e = ev[l]
                    u = bx * e
                    v = bn * e
                    Ap[jj, l] += u if u > v else v
                    Am[jj, l] += v if u > v else u
        for jj in range(J):
            if jlist[i, jj] < 0:
                out[i, jj] = 0.0
                continue
            shi = Sp[jj] + s_hi[i, jj]
            slo = Sm[jj] + s_lo[i, jj]
            s = 0.0
            for l in range(d):
                # corners of h_l S over [-dn_l, up_l] x [slo, shi]
                u1 = up[i, l] * shi
                u2 = up[i, l] * slo
                u3 = -dn[i, l] * shi
                u4 = -dn[i, l] * slo
                pmax = max(max(u1, u2), max(u3, u4))
                pmin = min(min(u1, u2), min(u3, u4))
                v = Ap[jj, l] + pmax
                w = -(Am[jj, l] + pmin)
                v = v if v > w else w
                if qinf:
                    s = v if v > s else s
                else:
                    s += v
            out[i, jj] = s
