"""Numba kernels for the Gaussian-kernel cross-Lipschitz bounds (Proposition 2.1).

Pure ``@njit(cache=True)`` functions, no fastmath (they feed a certificate),
parallel over points with ``prange``. See :mod:`sklearn_crosslip.bounds.kernel_bounds`
for the mathematics and the rounding argument; the comments here only point
at the quantities.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["prop21_sums", "triangle_terms", "weighted_abs_sums", "sum_abs_coef_times", "exp_vec"]

_EPS = 2.220446049250313e-16


LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125  # 20 significant bits: k * LN2_HI is exact for |k| < 2**33
LN2_LO = 1.42860682030941723212e-06
_ROUND = 6755399441055744.0  # 1.5 * 2**52: (x + _ROUND) - _ROUND rounds x to an integer


@intrinsic
def _i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (LLVM bitcast)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@njit(cache=True, inline="always")
def exp_vec(x):
    """``exp(x)`` written so that LLVM can vectorise loops calling it.

    Cody-Waite reduction ``x = k ln 2 + r`` (``|r| <= 0.35``; ``x - k LN2_HI`` is
    exact), Taylor polynomial of degree 13 (truncation below ``1e-17``
    relative), scaling by ``2^k`` built from its bits. Relative error below
    ``64 u`` for ``-708 < x <= 700`` (tested against ``math.exp``, observed
    about ``1 u``); returns 0 for ``x <= -708`` (the true value is below
    ``3.4e-308``; callers add an absolute slack for this underflow).
    """
    y = x if x > -708.0 else -708.0
    y = y if y < 700.0 else 700.0
    k = (y * LOG2E + _ROUND) - _ROUND
    r = (y - k * LN2_HI) - k * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    v = p * _i64_as_f64((np.int64(k) + 1023) << 52)
    return v if x > -708.0 else 0.0


@njit(cache=True, parallel=True, error_model="numpy")
def triangle_terms(d2, derr, R, gamma, box_tlo, box_thi, phi, psi):
    """Per training point maxima over the ball of the triangle and Hessian terms.

    With ``t = ||y - x_r||`` ranging over ``[t_lo, t_hi]``, ``t_lo = max(0, d_r - R,
    box_tlo_r)`` and ``t_hi = min(d_r + R, box_thi_r)`` (``y in B(x, R) cap box``):

    * ``phi_r = max t exp(-gamma t^2)``: unimodal, peak ``1 / sqrt(2 gamma e)``
      at ``t* = 1 / sqrt(2 gamma)`` (``||grad k_r(y)|| = 2 gamma phi``), so the
      maximum is at ``t*`` clipped into the interval;
    * ``psi_r = max exp(-gamma t^2) max(1, |2 gamma t^2 - 1|)``, so that
      ``||hess k_r(y)||_2 = 2 gamma psi`` (eigenvalues ``-2 gamma k_r`` and
      ``k_r (4 gamma^2 t^2 - 2 gamma)``). ``psi`` decreases on
      ``[0, 1 / sqrt(gamma)]``, increases up to ``t2 = sqrt(1.5 / gamma)`` and
      decreases after, so its maximum is at ``t_lo`` or at ``t2`` clipped.

    ``d_r`` is enclosed with the absolute error ``derr`` of the squared
    distance; every value is rounded up (relative ``(8 gamma t^2 + 192) eps``
    for the exponential's argument and evaluation, ``+1e-300`` for its
    underflow). Branch-free, so the loop over ``r`` vectorises.

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
    phi, psi : ndarray of shape (m, n)
        Outputs.
    """
    m, n = d2.shape
    tstar = 1.0 / math.sqrt(2.0 * gamma)
    t2 = math.sqrt(1.5 / gamma)
    lo_f = 1.0 - 4 * _EPS
    hi_f = 1.0 + 4 * _EPS
    for i in prange(m):
        Ri = R[i]
        e = derr[i]
        for r in range(n):
            v = d2[i, r]
            vl = v - e
            vl = vl if vl > 0.0 else 0.0
            dlo = math.sqrt(vl) * lo_f
            dhi = math.sqrt(v + e) * hi_f
            tlo = (dlo - Ri) * lo_f
            tlo = tlo if tlo > 0.0 else 0.0
            bl = box_tlo[r]
            tlo = tlo if tlo > bl else bl
            thi = (dhi + Ri) * hi_f
            bh = box_thi[r]
            thi = thi if thi < bh else bh
            t = tstar if tstar < thi else thi
            t = t if t > tlo else tlo
            g = gamma * t * t
            phi[i, r] = t * exp_vec(-g) * (1.0 + (8.0 * g + 192.0) * _EPS) + 1e-300
            g0 = gamma * tlo * tlo
            f0 = 2.0 * g0 - 1.0
            f0 = f0 if f0 > 1.0 else (1.0 if f0 > -1.0 else -f0)
            p0 = exp_vec(-g0) * f0
            tp = t2 if t2 < thi else thi
            tp = tp if tp > tlo else tlo
            g1 = gamma * tp * tp
            f1 = 2.0 * g1 - 1.0
            f1 = f1 if f1 > 1.0 else (1.0 if f1 > -1.0 else -f1)
            p1 = exp_vec(-g1) * f1
            gm = g0 if g0 > g1 else g1
            pm = p0 if p0 > p1 else p1
            psi[i, r] = pm * (1.0 + (8.0 * gm + 192.0) * _EPS) + 1e-300


@njit(cache=True, parallel=True, error_model="numpy")
def weighted_abs_sums(phi, psi, A, c, jlist, mask, out1, out2):
    """``out1[i, jj] = sum_r |A[j, r] - A[c_i, r]| phi[i, r]`` and the same with ``psi``.

    Sums of non-negative terms, rounded up by ``(n + 8) eps``.

    Parameters
    ----------
    phi, psi : ndarray of shape (m, n)
    A : ndarray of shape (K, n)
        Dual coefficients.
    c : ndarray of shape (m,)
    jlist : ndarray of shape (m, J)
        Active classes per point, padded with -1.
    mask : ndarray of shape (m, n) of uint8 or shape (0, 0)
        If non-empty, only entries with ``mask[i, r] == 0`` are summed
        (the complement of the Proposition 2.1 subset).
    out1, out2 : ndarray of shape (m, J)
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
                out1[i, jj] = 0.0
                out2[i, jj] = 0.0
                continue
            s1 = 0.0
            s2 = 0.0
            for r in range(n):
                w = abs(A[j, r] - A[ci, r])
                if use_mask:
                    w = w if mask[i, r] == 0 else 0.0
                s1 += w * phi[i, r]
                s2 += w * psi[i, r]
            out1[i, jj] = s1 * infl
            out2[i, jj] = s2 * infl


@njit(cache=True, parallel=True)
def sum_abs_coef_times(A, kv, w, out):
    """``out[i, k] = sum_r |A[k, r]| kv[i, r] w[i, r]`` (rounded up), all terms >= 0.

    Parameters
    ----------
    A : ndarray of shape (K, n)
    kv, w : ndarray of shape (m, n)
    out : ndarray of shape (m, K)
    """
    m, n = kv.shape
    K = A.shape[0]
    infl = 1.0 + (n + 8.0) * _EPS
    for i in prange(m):
        for k in range(K):
            s = 0.0
            for r in range(n):
                s += abs(A[k, r]) * kv[i, r] * w[i, r]
            out[i, k] = s * infl


_LANES = 256  # training points per block of rows (the vectorised dimension)


@njit(cache=True, error_model="numpy")
def _lanes(a0, nb, b, Dcol, d2v, KH, KL, lkH, lkL, Ri, gamma, ea, eS2, one_exp, Tp, Tm, S2v):
    """Bracket terms ``T^+_{ab}``, ``T^-_{ab}`` for ``a in [a0, a0 + nb)`` and one ``b``.

    ``Dcol[l] = D_{a0 + l, b}``. Vectorised over ``a`` (no calls, selects only).
    With ``one_exp`` the exponentials factor as ``e_hi = K_a K_b t`` and
    ``e_lo = K'_a K'_b / t`` with ``t = exp(2 gamma R S)``,
    ``K_a = exp(-gamma d_a^2 - gamma R^2)`` (upper) and ``K'_a`` (lower); the
    caller guarantees no overflow or underflow of these products. Pairs whose
    midpoint lies in the ball (``S < 2R``, so ``M = S / 2``) are flagged in the
    return value and must then be recomputed by :func:`_lanes_mid`.
    """
    vb = d2v[b]
    g2R = 2.0 * gamma * Ri
    gR2 = 2.0 * gamma * Ri * Ri
    R2 = Ri * Ri
    hg = 0.5 * gamma
    fourR2 = 4.0 * R2
    if one_exp:
        KHb = KH[b]
        KLb = KL[b]
        for l in range(nb):
            va = d2v[a0 + l]
            D = Dcol[l]
            ah = 0.5 * (va + vb - D)
            S2 = 2.0 * (va + vb) - D + eS2
            S2 = S2 if S2 > 0.0 else 0.0
            S2v[l] = S2
            S = math.sqrt(S2)
            RS = Ri * S
            Ihi = ah + ea + RS + R2
            Ilo = ah - ea - RS + R2
            t = exp_vec(g2R * S)
            ehi = KH[a0 + l] * KHb * t
            elo = KL[a0 + l] * KLb / t
            Tp[l] = Ihi * ehi if Ihi >= 0.0 else Ihi * elo
            Tm[l] = Ilo * elo if Ilo >= 0.0 else Ilo * ehi
        n_mid = 0
        for l in range(nb):
            n_mid += 1 if S2v[l] < fourR2 else 0
        return n_mid
    lHb = lkH[b]
    lLb = lkL[b]
    for l in range(nb):
        va = d2v[a0 + l]
        D = Dcol[l]
        ah = 0.5 * (va + vb - D)
        S2 = 2.0 * (va + vb) - D + eS2
        S2 = S2 if S2 > 0.0 else 0.0
        S = math.sqrt(S2)
        RS = Ri * S
        mid = S2 < fourR2
        Ihi = ah + ea + RS + R2
        Ilo = (ah - ea) - (0.25 * S2 if mid else RS - R2)
        lH = lkH[a0 + l] + lHb
        ehi = exp_vec(lH + hg * S2 if mid else lH - gR2 + g2R * S)
        elo = exp_vec(lkL[a0 + l] + lLb - gR2 - g2R * S)
        Tp[l] = Ihi * ehi if Ihi >= 0.0 else Ihi * elo
        Tm[l] = Ilo * elo if Ilo >= 0.0 else Ilo * ehi
    return 0


@njit(cache=True, error_model="numpy")
def _lanes_mid(a0, nb, b, Dcol, d2v, lkH, lkL, Ri, gamma, ea, eS2, Tp, Tm, S2v):
    """Exact ``M = S / 2`` terms for the flagged lanes of :func:`_lanes` (scalar, rare)."""
    vb = d2v[b]
    g2R = 2.0 * gamma * Ri
    gR2 = 2.0 * gamma * Ri * Ri
    fourR2 = 4.0 * Ri * Ri
    for l in range(nb):
        S2 = S2v[l]
        if S2 < fourR2:
            va = d2v[a0 + l]
            S = math.sqrt(S2)
            ah = 0.5 * (va + vb - Dcol[l])
            Ihi = ah + ea + Ri * S + Ri * Ri
            Ilo = ah - ea - 0.25 * S2
            ehi = exp_vec(lkH[a0 + l] + lkH[b] + 0.5 * gamma * S2)
            elo = exp_vec(lkL[a0 + l] + lkL[b] - gR2 - g2R * S)
            Tp[l] = Ihi * ehi if Ihi >= 0.0 else Ihi * elo
            Tm[l] = Ilo * elo if Ilo >= 0.0 else Ilo * ehi


@njit(cache=True, error_model="numpy")
def _accumulate(nb, bb, pos_b, pos_a, Tp, Tm, wgt, acc):
    """``acc[l] += wgt[l] * beta_b * T^{sign(beta_a beta_b)}_{ab}`` over the lanes."""
    for l in range(nb):
        z = Tp[l] if pos_a[l] == pos_b else Tm[l]
        acc[l] += wgt[l] * (bb * z)


@njit(cache=True, parallel=True, error_model="numpy")
def prop21_sums(d2, derr, Dfit, Derr, Dmax, sel, nsel, use_all, R, gamma, A, c, jlist,
                out_sum, out_err):
    """Proposition 2.1 sums over the pairs of a subset of training points.

    For point ``i``, subset ``T`` (all training points if ``use_all``, else
    ``sel[i, :nsel[i]]``, sorted) and class ``j = jlist[i, jj]`` computes
    ``out_sum[i, jj]``: an approximation of

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
        Subset of training indices per point (first ``nsel[i]`` used, sorted);
        ignored with ``use_all``.
    nsel : ndarray of shape (m,)
    use_all : bool
        Use every training point (``T = {0, ..., n - 1}``).
    R : ndarray of shape (m,)
    gamma : float
    A : ndarray of shape (K, n)
    c : ndarray of shape (m,)
    jlist : ndarray of shape (m, J)
        Classes to evaluate, padded with -1.
    out_sum, out_err : ndarray of shape (m, J)
    """
    m, n = d2.shape
    J = jlist.shape[1]
    for i in prange(m):
        N = n if use_all else nsel[i]
        ci = c[i]
        Ri = R[i]
        e = derr[i]
        g2R = 2.0 * gamma * Ri
        lkH = np.empty(N)  # log of an upper bound on k_r = exp(-gamma d_r^2)
        lkL = np.empty(N)  # log of a lower bound
        d2v = np.empty(N)
        idx = np.empty(N, dtype=np.int64)
        bet = np.zeros((J, N))
        bp = np.zeros((J, N))
        bm = np.zeros((J, N))
        dmax2 = 0.0
        for a in range(N):
            r = a if use_all else sel[i, a]
            idx[a] = r
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
        if use_all:
            Dsub = Dfit
        else:
            Dsub = np.empty((N, N))
            for a in range(N):
                for b in range(N):
                    Dsub[a, b] = Dfit[idx[a], idx[b]]
        # uniform enclosure widths for a and S^2 (input errors + rounding of the formulas)
        ea = e + 0.5 * Derr + 2 * _EPS * (2.0 * dmax2 + Dmax)
        eS2 = 4.0 * e + Derr + 4 * _EPS * (4.0 * dmax2 + Dmax)
        slack = math.sqrt(eS2) + math.sqrt(ea)
        w = np.empty(N)  # |T_rs| <= w_r w_s (scales the rounding-error term)
        wt = np.empty(N)  # d_r + R (scales the underflow slack)
        for a in range(N):
            dh = math.sqrt(d2v[a] + e) + slack
            wt[a] = dh + Ri
            w[a] = (dh + Ri) * math.exp(lkH[a] + g2R * dh + 1.0)
        # largest exponent magnitude that appears (its rounding scales the relative error)
        dm = math.sqrt(dmax2 + e) + slack
        Amax = 4.0 * gamma * (dm + Ri) * (dm + Ri) + 4.0
        # one exponential per pair when the factored form cannot over/underflow
        lmin = 0.0
        for a in range(N):
            lmin = min(lmin, lkL[a])
        one_exp = (lmin - gamma * Ri * Ri > -300.0) and (2.0 * g2R * dm < 600.0)
        KH = np.empty(N)
        KL = np.empty(N)
        for a in range(N):
            KH[a] = math.exp(lkH[a] - gamma * Ri * Ri)
            KL[a] = math.exp(lkL[a] - gamma * Ri * Ri)
        pos = np.zeros((J, N))  # 1.0 where beta > 0
        for jj in range(J):
            for a in range(N):
                pos[jj, a] = 1.0 if bet[jj, a] > 0 else 0.0
        L = _LANES
        Tp = np.empty(L)
        Tm = np.empty(L)
        S2v = np.empty(L)
        Dcol = np.empty(L)
        ones = np.ones(L)
        wdiag = np.empty(L)
        accI = np.zeros((J, L))
        accO = np.zeros((J, L))
        acc = np.zeros(J)
        for a0 in range(0, N, L):
            nb = min(L, N - a0)
            accI[:, :] = 0.0
            accO[:, :] = 0.0
            for b in range(a0, N):
                # D_{a, b} for the lanes: row b of the symmetric matrix
                if use_all:
                    for l in range(nb):
                        Dcol[l] = Dfit[b, a0 + l]
                else:
                    for l in range(nb):
                        Dcol[l] = Dsub[b, a0 + l]
                n_mid = _lanes(a0, nb, b, Dcol, d2v, KH, KL, lkH, lkL, Ri, gamma, ea, eS2,
                               one_exp, Tp, Tm, S2v)
                if n_mid > 0:
                    _lanes_mid(a0, nb, b, Dcol, d2v, lkH, lkL, Ri, gamma, ea, eS2, Tp, Tm, S2v)
                inside = b < a0 + nb
                if inside:
                    # pairs within the block: weight 2 for a < b, 1 for a == b, 0 for a > b
                    for l in range(nb):
                        wdiag[l] = 2.0 if a0 + l < b else (1.0 if a0 + l == b else 0.0)
                for jj in range(J):
                    bb = bet[jj, b]
                    if bb == 0.0:
                        continue
                    if inside:
                        _accumulate(nb, bb, pos[jj, b], pos[jj, a0:a0 + nb], Tp, Tm, wdiag,
                                    accI[jj])
                    else:
                        _accumulate(nb, bb, pos[jj, b], pos[jj, a0:a0 + nb], Tp, Tm, ones,
                                    accO[jj])
            for jj in range(J):
                s = 0.0
                for l in range(nb):
                    s += bet[jj, a0 + l] * (accI[jj, l] + 2.0 * accO[jj, l])
                acc[jj] += s
        # rounding of the N^2 terms (each relative <= (16 + 2 Amax) u of w_r w_s, plus
        # the exponentials: <= 64 u each, the factored form adds 4 roundings) and of
        # the two-level summation (N terms per lane, then N lanes)
        Cerr = (2.0 * N + 256.0 + 8.0 * Amax) * _EPS
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
