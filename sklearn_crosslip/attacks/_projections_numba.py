"""Numba kernels for the box-constrained minimal-norm half-space problem (eq. 8).

Every kernel solves, for one or many rows,

    min ||delta||_p   s.t.  <g, delta> >= b,   lo <= x + delta <= hi,

with ``x`` inside the box. Write ``a_i = |g_i|``, ``s_i = sign(g_i)`` and
``room_i = hi_i - x_i`` if ``g_i > 0``, ``x_i - lo_i`` if ``g_i < 0`` (the
distance to the box face in the helpful direction; coordinates with ``g_i = 0``
or ``room_i = 0`` can only cost norm and stay at 0). The largest achievable
value of ``<g, delta>`` is ``M = sum_i a_i room_i``; the problem is infeasible
iff ``b > M``, and ``delta = 0`` is optimal iff ``b <= 0``.

Dual one-parameter problems (Proposition 4.1 of Hein & Andriushchenko, 2017)
------------------------------------------------------------------------------
p = 2
    The Lagrangian ``1/2 ||delta||^2 - t (<g, delta> - b)`` with multiplier
    ``t >= 0`` is minimised over the box coordinate-wise by
    ``delta_i(t) = clip(t g_i, lo_i - x_i, hi_i - x_i) = s_i min(t a_i, room_i)``.
    The dual function is concave in the single variable ``t`` and its
    derivative is ``b - phi(t)`` with ``phi(t) = <g, delta(t)>
    = sum_{tau_i <= t} a_i room_i + t sum_{tau_i > t} a_i^2``,
    ``tau_i = room_i / a_i``: a continuous, nondecreasing, concave,
    piecewise-linear function with break points ``tau_i``. The optimum is
    ``delta(t*)`` with ``phi(t*) = b`` (KKT: stationarity holds by
    construction, ``<g, delta> = b`` is complementary slackness for ``t* > 0``).
p = inf
    For a fixed budget ``eps = ||delta||_inf`` the largest ``<g, delta>`` is
    reached by ``delta_i(eps) = s_i min(eps, room_i)``, so the problem is the
    one-parameter equation ``psi(eps) = sum_{room_i <= eps} a_i room_i +
    eps sum_{room_i > eps} a_i = b``: the same structure as ``phi`` with break
    points ``tau_i = room_i`` and slopes ``a_i`` instead of ``a_i^2``.
p = 1
    The dual is ``max_{lam >= 0} lam b - sum_i room_i (lam a_i - 1)_+``; its
    optimality condition says that coordinates with ``a_i > 1/lam`` are used
    up to ``room_i``, those with ``a_i < 1/lam`` stay at 0 and those with
    ``a_i = 1/lam`` are partially used. This is the greedy rule "spend the
    budget on the largest ``|g_i|`` first": a weighted selection problem for
    the threshold ``gamma = 1/lam`` on ``a``.

Algorithms (all O(d log d) in the worst case, O(d) in practice)
----------------------------------------------------------------
p = 2 and inf: Newton's method on ``phi(t) = b`` from ``t = 0`` (as in
Cominetti, Mascarenhas & Silva (2014) for the continuous quadratic knapsack).
Because ``phi`` is concave and piecewise linear, Newton iterates increase
monotonically, never overshoot the root, pass at least one break point per
step and land exactly on the root once no break point is passed. Coordinates
whose break point has been passed are saturated for good and compacted out of
the working set, so each step only touches the still-free coordinates. After
``_MAX_NEWTON`` steps the remaining break points are sorted and swept, which
bounds the worst case by O(d log d).
p = 1: three-way quickselect on ``a`` with the accumulated value ``sum a_i
room_i`` deciding which side holds the threshold (expected O(d)); after
``_MAX_SELECT`` partition rounds the remaining candidates are sorted.

Conventions: ``lo``/``hi`` are float64 arrays of shape (d,) (``-inf``/``inf``
for an unbounded side). With ``clamp=True`` an infeasible row returns the
"corner" ``delta_i = s_i room_i`` that attains ``M`` (used by the attacks);
otherwise it is filled with NaN. Each row also reports ``M`` (``inf`` when some
used coordinate is unbounded).
"""

import numpy as np
from numba import njit, prange

_MAX_NEWTON = 64
_MAX_SELECT = 64
_BLOCK = 32  # problems per parallel work item (amortises scratch allocation)


@njit(cache=True)
def _room(gi, xi, loi, hii):
    # Distance to the box face in the direction of sign(g_i), never negative.
    if gi > 0.0:
        r = hii - xi
    else:
        r = xi - loi
    if r > 0.0:
        return r
    return 0.0


@njit(cache=True)
def _corner(g, x, lo, hi, delta):
    # delta_i = s_i room_i: the maximiser of <g, delta> over the box.
    for i in range(g.shape[0]):
        gi = g[i]
        if gi == 0.0:
            delta[i] = 0.0
        else:
            r = _room(gi, x[i], lo[i], hi[i])
            delta[i] = r if gi > 0.0 else -r


@njit(cache=True)
def _solve_one_piecewise(g, b, x, lo, hi, p_inf, clamp, delta, tau, w, cv, idx):
    """p = 2 (``p_inf=False``) or p = inf (``p_inf=True``) for one row.

    Returns ``(feasible, M)``.
    """
    d = g.shape[0]
    if b <= 0.0:
        for i in range(d):
            delta[i] = 0.0
        M = 0.0
        for i in range(d):
            if g[i] != 0.0:
                M += abs(g[i]) * _room(g[i], x[i], lo[i], hi[i])
        return True, M
    nf = 0
    M = 0.0
    S = 0.0
    for i in range(d):
        gi = g[i]
        if gi == 0.0:
            continue
        r = _room(gi, x[i], lo[i], hi[i])
        if r == 0.0:
            continue
        a = abs(gi)
        if p_inf:
            tau[i] = r
            w[i] = a
        else:
            tau[i] = r / a  # may be +inf: then the coordinate never saturates
            w[i] = a * a
        cv[i] = a * r  # +inf when unbounded; only used once saturated
        M += a * r
        S += w[i]
        idx[nf] = i
        nf += 1
    if not (b <= M):
        if clamp:
            _corner(g, x, lo, hi, delta)
        else:
            for i in range(d):
                delta[i] = np.nan
        return False, M

    # Newton on phi(t) = C + t * S (valid on the current linear piece).
    C = 0.0
    t = np.inf
    it = 0
    while True:
        if not (S > 0.0):
            t = np.inf  # every coordinate saturated: b == M, corner solution
            break
        t_new = (b - C) / S
        k = 0
        S_new = 0.0
        for q in range(nf):
            i = idx[q]
            if tau[i] <= t_new:
                C += cv[i]
            else:
                idx[k] = i
                k += 1
                S_new += w[i]
        if k == nf:
            t = t_new  # no break point passed: exact root of this piece
            break
        nf = k
        S = S_new
        it += 1
        if it >= _MAX_NEWTON:
            # Worst-case guard: sort the remaining break points and sweep.
            keys = np.empty(nf)
            for q in range(nf):
                keys[q] = tau[idx[q]]
            order = np.argsort(keys)
            t = np.inf
            for q in range(nf):
                i = idx[order[q]]
                if C + S * tau[i] >= b:
                    t = (b - C) / S
                    break
                C += cv[i]
                S -= w[i]
                if not (S > 0.0):
                    break
            break

    for i in range(d):
        gi = g[i]
        if gi == 0.0:
            delta[i] = 0.0
            continue
        r = _room(gi, x[i], lo[i], hi[i])
        if p_inf:
            m = t
        else:
            m = t * abs(gi)
        if m > r:
            m = r
        delta[i] = m if gi > 0.0 else -m
    return True, M


@njit(cache=True)
def _solve_one_l1(g, b, x, lo, hi, clamp, delta, a, v, idx):
    """p = 1 for one row (greedy on |g_i| via weighted quickselect).

    Returns ``(feasible, M)``.
    """
    d = g.shape[0]
    for i in range(d):
        delta[i] = 0.0
    n = 0
    M = 0.0
    for i in range(d):
        gi = g[i]
        if gi == 0.0:
            continue
        r = _room(gi, x[i], lo[i], hi[i])
        if r == 0.0:
            continue
        a[i] = abs(gi)
        v[i] = a[i] * r
        M += v[i]
        idx[n] = i
        n += 1
    if b <= 0.0:
        return True, M
    if not (b <= M):
        if clamp:
            _corner(g, x, lo, hi, delta)
        else:
            for i in range(d):
                delta[i] = np.nan
        return False, M

    # Candidates idx[s:e]; A = value of coordinates known to be fully used.
    A = 0.0
    s = 0
    e = n
    gamma = 0.0
    A_gt = 0.0
    rounds = 0
    found = False
    while e > s:
        if rounds >= _MAX_SELECT:
            break
        rounds += 1
        # median-of-three pivot
        p0 = a[idx[s]]
        p1 = a[idx[(s + e - 1) // 2]]
        p2 = a[idx[e - 1]]
        if p0 > p1:
            p0, p1 = p1, p0
        if p1 > p2:
            p1 = p2
        piv = p0 if p0 > p1 else p1
        # three-way partition of idx[s:e] into [> piv | == piv | < piv]
        lt = s
        i = s
        gt = e
        while i < gt:
            ai = a[idx[i]]
            if ai > piv:
                tmp = idx[lt]
                idx[lt] = idx[i]
                idx[i] = tmp
                lt += 1
                i += 1
            elif ai < piv:
                gt -= 1
                tmp = idx[gt]
                idx[gt] = idx[i]
                idx[i] = tmp
            else:
                i += 1
        Vgt = 0.0
        for q in range(s, lt):
            Vgt += v[idx[q]]
        if A + Vgt >= b and lt > s:
            e = lt  # threshold among the larger |g_i|
            continue
        Veq = 0.0
        for q in range(lt, gt):
            Veq += v[idx[q]]
        if A + Vgt + Veq >= b:
            gamma = piv
            A_gt = A + Vgt
            found = True
            break
        A += Vgt + Veq
        s = gt  # everything >= piv is fully used; look among the smaller
    if not found:
        # Worst-case guard (or e == s by rounding): sort what is left, descending.
        m = e - s
        keys = np.empty(m)
        for q in range(m):
            keys[q] = -a[idx[s + q]]
        order = np.argsort(keys)
        gamma = a[idx[s + order[m - 1]]] if m > 0 else 0.0
        A_gt = A
        for q in range(m):
            i = idx[s + order[q]]
            if A_gt + v[i] >= b:
                gamma = a[i]
                break
            A_gt += v[i]
        # coordinates with a == gamma but already added to A_gt would be double
        # counted below, so recompute A_gt strictly above gamma
        A_gt = 0.0
        for q in range(n):
            i = idx[q]
            if a[i] > gamma:
                A_gt += v[i]

    # Output: a_i > gamma used fully, a_i == gamma filled in index order.
    rem = b - A_gt
    for i in range(d):
        gi = g[i]
        if gi == 0.0:
            continue
        ai = abs(gi)
        if ai > gamma:
            r = _room(gi, x[i], lo[i], hi[i])
            delta[i] = r if gi > 0.0 else -r
    for i in range(d):
        gi = g[i]
        if gi == 0.0 or rem <= 0.0:
            continue
        ai = abs(gi)
        if ai == gamma:
            r = _room(gi, x[i], lo[i], hi[i])
            val = ai * r
            if val > rem:
                m = rem / ai
                rem = 0.0
            else:
                m = r
                rem -= val
            delta[i] = m if gi > 0.0 else -m
    return True, M


@njit(cache=True, parallel=True)
def solve_batch(G, B, X, lo, hi, p_code, clamp, delta, feasible, max_value):
    """Solve eq. (8)-type problems row by row, in parallel over blocks of rows.

    Parameters
    ----------
    G, X : float64 arrays (m, d), C-contiguous.
    B : float64 array (m,).
    lo, hi : float64 arrays (d,), ``-inf``/``inf`` allowed.
    p_code : int, 1, 2 or 0 (= inf).
    clamp : bool, return the corner solution for infeasible rows instead of NaN.
    delta : float64 array (m, d), output.
    feasible : bool array (m,), output.
    max_value : float64 array (m,), output: ``M`` per row.
    """
    m, d = G.shape
    n_blocks = (m + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        tau = np.empty(d)
        w = np.empty(d)
        cv = np.empty(d)
        idx = np.empty(d, dtype=np.int64)
        start = blk * _BLOCK
        stop = min(start + _BLOCK, m)
        for r in range(start, stop):
            if p_code == 1:
                ok, M = _solve_one_l1(G[r], B[r], X[r], lo, hi, clamp, delta[r], tau, w, idx)
            else:
                ok, M = _solve_one_piecewise(
                    G[r], B[r], X[r], lo, hi, p_code == 0, clamp, delta[r], tau, w, cv, idx
                )
            feasible[r] = ok
            max_value[r] = M
