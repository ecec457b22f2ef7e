"""Numba kernels for the Gaussian-kernel cross-Lipschitz bounds (Proposition 2.1).

Pure ``@njit(cache=True)`` functions, no fastmath (they feed a certificate),
parallel over points with ``prange``. See :mod:`sklearn_crosslip.bounds.kernel_bounds`
for the mathematics and the rounding argument; the comments here only point
at the quantities.
"""

import math

import numpy as np
from numba import njit, prange

__all__ = ["prop21_sums", "triangle_terms", "weighted_abs_sums"]

_EPS = 2.220446049250313e-16


@njit(cache=True, parallel=True)
def triangle_terms(d2, derr, R, gamma, box_tlo, box_thi, out):
    """``phi_r = max_{t in [t_lo, t_hi]} t exp(-gamma t^2)`` for every point and training point.

    ``t_lo = max(0, d_r - R, box_tlo_r)`` and ``t_hi = min(d_r + R, box_thi_r)``
    bound ``||y - x_r||`` over ``B(x, R) cap box``; ``t exp(-gamma t^2)`` is
    unimodal with its peak ``1 / sqrt(2 gamma e)`` at ``t* = 1 / sqrt(2 gamma)``.
    ``d_r`` is enclosed with the absolute error ``derr`` of the squared
    distance; every value is rounded up.

    Parameters
    ----------
    d2 : ndarray of shape (m, n)
        Computed squared distances ``||x_i - x_r||^2`` (clipped at 0).
    derr : ndarray of shape (m,)
        Absolute error bound on every entry of row ``i`` of ``d2``.
    R : ndarray of shape (m,)
    gamma : float
    box_tlo, box_thi : ndarray of shape (n,)
        Distance range from ``x_r`` to the box (0 and inf without a box).
    out : ndarray of shape (m, n)
        Output ``phi``.
    """
    m, n = d2.shape
    tstar = 1.0 / math.sqrt(2.0 * gamma)
    peak = tstar * math.exp(-0.5)
    for i in prange(m):
        Ri = R[i]
        e = derr[i]
        for r in range(n):
            v = d2[i, r]
            dlo = math.sqrt(max(v - e, 0.0)) * (1.0 - 4 * _EPS)
            dhi = math.sqrt(v + e) * (1.0 + 4 * _EPS)
            tlo = max((dlo - Ri) * (1.0 - 4 * _EPS), 0.0, box_tlo[r])
            thi = min((dhi + Ri) * (1.0 + 4 * _EPS), box_thi[r])
            if thi <= tstar:
                t = thi
            elif tlo >= tstar:
                t = tlo
            else:
                t = tstar
            gt2 = gamma * t * t
            if t == tstar:
                val = peak
            else:
                val = t * math.exp(-gt2)
            # exp argument and product rounding; the peak branch is flat to 2nd order
            out[i, r] = val * (1.0 + (4.0 * gt2 + 64.0) * _EPS)


@njit(cache=True, parallel=True)
def weighted_abs_sums(phi, A, c, jlist, mask, out):
    """``out[i, jj] = sum_{r: mask} |A[j, r] - A[c_i, r]| phi[i, r]`` (rounded up).

    Parameters
    ----------
    phi : ndarray of shape (m, n)
    A : ndarray of shape (K, n)
        Dual coefficients.
    c : ndarray of shape (m,)
    jlist : ndarray of shape (m, J)
        Active classes per point, padded with -1.
    mask : ndarray of shape (m, n) of uint8 or shape (0, 0)
        If non-empty, only entries with ``mask[i, r] == 0`` are summed
        (the complement of the Proposition 2.1 subset).
    out : ndarray of shape (m, J)
    """
    m, n = phi.shape
    J = jlist.shape[1]
    use_mask = mask.shape[0] > 0
    infl = 1.0 + (n + 8.0) * _EPS
    for i in prange(m):
        ci = c[i]
        for jj in range(J):
            j = jlist[i, jj]
            if j < 0:
                out[i, jj] = 0.0
                continue
            s = 0.0
            for r in range(n):
                if use_mask and mask[i, r] != 0:
                    continue
                s += abs(A[j, r] - A[ci, r]) * phi[i, r]
            out[i, jj] = s * infl


@njit(cache=True, parallel=True)
def prop21_sums(d2, derr, Dfit, Derr, Dmax, sel, nsel, R, gamma, A, c, jlist, out_sum, out_err):
    """Proposition 2.1 sums over the pairs of a subset of training points.

    For point ``i``, subset ``T = sel[i, :nsel[i]]`` (sorted) and class
    ``j = jlist[i, jj]`` computes ``out_sum[i, jj]``: an approximation of

        sum_{r, s in T} beta_r beta_s T^{sign(beta_r beta_s)}_{rs}

    with ``beta = A[j] - A[c_i]``, ``T^+ = max(I_hi, 0) e_hi + min(I_hi, 0) e_lo``
    and ``T^- = max(I_lo, 0) e_lo + min(I_lo, 0) e_hi`` evaluated at rigorous
    enclosures of ``a = <x - x_r, x - x_s>`` and ``S = ||2x - x_r - x_s||``, and
    ``out_err[i, jj]``: a bound on the floating-point error of that sum (so
    ``out_sum + out_err`` is an upper bound on the squared Proposition 2.1
    value divided by ``(2 gamma)^2``).

    Pair geometry from distances only: ``a = (d_r^2 + d_s^2 - D_rs) / 2`` and
    ``S^2 = 2 d_r^2 + 2 d_s^2 - D_rs`` with ``D_rs = ||x_r - x_s||^2``. The
    bracket terms do not depend on ``j``: one pass over the pairs (``r <= s``,
    symmetry) serves every class. With ``beta_r >= 0`` the row ``r`` contributes
    ``beta_r sum_s (beta_s^+ T^+_rs - beta_s^- T^-_rs)``, with ``beta_r < 0``
    ``beta_r sum_s (beta_s^+ T^-_rs - beta_s^- T^+_rs)``.

    Parameters
    ----------
    d2 : ndarray of shape (m, n)
        Computed squared distances to the training points.
    derr : ndarray of shape (m,)
        Absolute error bound on the entries of row ``i`` of ``d2``.
    Dfit : ndarray of shape (n, n)
        Computed squared distances between training points.
    Derr : float
        Absolute error bound on every entry of ``Dfit``.
    Dmax : float
        ``max(Dfit)`` (scales the rounding slack).
    sel : ndarray of shape (m, N) of int64
        Subset of training indices per point (first ``nsel[i]`` used, sorted).
    nsel : ndarray of shape (m,)
    R : ndarray of shape (m,)
    gamma : float
    A : ndarray of shape (K, n)
    c : ndarray of shape (m,)
    jlist : ndarray of shape (m, J)
        Classes to evaluate, padded with -1.
    out_sum, out_err : ndarray of shape (m, J)
    """
    m = d2.shape[0]
    Nmax = sel.shape[1]
    J = jlist.shape[1]
    for i in prange(m):
        N = nsel[i]
        ci = c[i]
        Ri = R[i]
        e = derr[i]
        g2R = 2.0 * gamma * Ri
        gR2 = 2.0 * gamma * Ri * Ri
        # per-subset-point quantities
        lkH = np.empty(N)  # log of an upper bound on k_r = exp(-gamma d_r^2)
        lkL = np.empty(N)  # log of a lower bound
        d2v = np.empty(N)
        w = np.empty(N)  # |T_rs| <= w_r w_s (for the error term)
        wt = np.empty(N)  # (d_r + R) for the underflow slack
        bet = np.zeros((J, N))
        bp = np.zeros((J, N))
        bm = np.zeros((J, N))
        dmax2 = 0.0
        for a in range(N):
            r = sel[i, a]
            v = d2[i, r]
            d2v[a] = v
            dmax2 = max(dmax2, v)
            lkH[a] = -gamma * max(v - e, 0.0)
            lkL[a] = -gamma * (v + e)
            for jj in range(J):
                j = jlist[i, jj]
                if j < 0:
                    continue
                b = A[j, r] - A[ci, r]
                bet[jj, a] = b
                if b > 0:
                    bp[jj, a] = b
                else:
                    bm[jj, a] = -b
        # uniform enclosure widths for a and S^2 (input errors + rounding of the formulas)
        ea = e + 0.5 * Derr + 2 * _EPS * (2.0 * dmax2 + Dmax)
        eS2 = 4.0 * e + Derr + 4 * _EPS * (4.0 * dmax2 + Dmax)
        slack = math.sqrt(eS2) + math.sqrt(ea)
        for a in range(N):
            dh = math.sqrt(d2v[a] + e) + slack
            wt[a] = dh + Ri
            w[a] = (dh + Ri) * math.exp(lkH[a] + g2R * dh + 1.0)
        # largest exponent magnitude that appears (its rounding scales the relative error)
        dm = math.sqrt(dmax2 + e) + slack
        Amax = 4.0 * gamma * (dm + Ri) * (dm + Ri) + 4.0
        Tp = np.empty(N)
        Tm = np.empty(N)
        acc = np.zeros(J)
        for a in range(N):
            ra = sel[i, a]
            va = d2v[a]
            for b in range(a, N):
                vb = d2v[b]
                D = Dfit[ra, sel[i, b]]
                ah = 0.5 * (va + vb - D)
                ahi = ah + ea
                alo = ah - ea
                S = math.sqrt(max(2.0 * (va + vb) - D + eS2, 0.0))
                lH = lkH[a] + lkH[b]
                lL = lkL[a] + lkL[b]
                RS = Ri * S
                Ihi = ahi + RS + Ri * Ri
                if S >= 2.0 * Ri:
                    # M = R
                    ehi = math.exp(lH - gR2 + g2R * S)
                    Ilo = alo - RS + Ri * Ri
                else:
                    # M = S / 2: the ball contains the midpoint of x_r and x_s
                    ehi = math.exp(lH + 0.5 * gamma * S * S)
                    Ilo = alo - 0.25 * S * S
                elo = math.exp(lL - gR2 - g2R * S)
                if Ihi >= 0.0:
                    Tp[b] = Ihi * ehi
                else:
                    Tp[b] = Ihi * elo
                if Ilo >= 0.0:
                    Tm[b] = Ilo * elo
                else:
                    Tm[b] = Ilo * ehi
            for jj in range(J):
                if jlist[i, jj] < 0:
                    continue
                ba = bet[jj, a]
                if ba == 0.0:
                    continue
                s = 0.0
                if ba > 0:
                    for b in range(a + 1, N):
                        s += bp[jj, b] * Tp[b] - bm[jj, b] * Tm[b]
                    acc[jj] += ba * (2.0 * s + ba * Tp[a])
                else:
                    for b in range(a + 1, N):
                        s += bp[jj, b] * Tm[b] - bm[jj, b] * Tp[b]
                    acc[jj] += ba * (2.0 * s - bm[jj, a] * Tp[a])
        Cerr = (2.0 * N + 64.0 + 8.0 * Amax) * _EPS
        for jj in range(J):
            if jlist[i, jj] < 0:
                out_sum[i, jj] = 0.0
                out_err[i, jj] = 0.0
                continue
            sw = 0.0
            st = 0.0
            for a in range(N):
                ab = abs(bet[jj, a])
                sw += ab * w[a]
                st += ab * wt[a]
            out_sum[i, jj] = acc[jj]
            out_err[i, jj] = (Cerr * sw * sw + 1e-300 * st * st) * (1.0 + 1e-6)
            acc[jj] = 0.0
