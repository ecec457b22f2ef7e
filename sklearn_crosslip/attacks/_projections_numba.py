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
p = 1: quickselect on ``a`` with the accumulated value ``sum a_i room_i``
deciding which side holds the threshold (expected O(d)); after
``_MAX_SELECT`` partition rounds the remaining candidates are sorted.
The hot loops are branch-free (selects and compaction by index increments):
random signs of ``g`` and zero rooms would otherwise defeat branch prediction.

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
def _gather_room(gi, xi, loi, hii):
    # room_i, written with selects of values loaded unconditionally: random
    # signs defeat branch prediction (conditional loads are ~3x slower here).
    up = hii - xi
    dn = xi - loi
    r = up if gi > 0.0 else dn
    r = r if gi != 0.0 else 0.0
    return max(r, 0.0)


@njit(cache=True)
def _solve_one_piecewise(g, b, x, lo, hi, p_inf, clamp, delta, wv, vv):
    """p = 2 (``p_inf=False``) or p = inf (``p_inf=True``) for one row.

    ``wv``, ``vv`` are scratch arrays of length d holding, for the still-free
    coordinates (compacted in place), the slope ``w_i`` (``a_i^2`` for p = 2,
    ``a_i`` for p = inf) and the saturation value ``v_i = a_i room_i``. The
    break point test ``tau_i <= t`` reads ``v_i <= t w_i``: no divisions.
    Returns ``(feasible, M)``.
    """
    d = g.shape[0]
    nf = 0
    M = 0.0
    S = 0.0
    for i in range(d):
        r = _gather_room(g[i], x[i], lo[i], hi[i])
        a = abs(g[i])
        v = a * r  # 0 exactly when the coordinate cannot help, inf if unbounded
        w = a if p_inf else a * a
        wv[nf] = w
        vv[nf] = v
        use = v > 0.0
        nf += np.int64(use)
        M += v
        S += w * use
    if b <= 0.0:
        for i in range(d):
            delta[i] = 0.0
        return True, M
    if not (b <= M):
        if clamp:
            _corner(g, x, lo, hi, delta)
        else:
            for i in range(d):
                delta[i] = np.nan
        return False, M

    # Newton on phi(t) = C + t * S (valid on the current linear piece); the
    # coordinates whose break point is passed are saturated for good.
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
            w = wv[q]
            v = vv[q]
            keep = v > t_new * w
            C += 0.0 if keep else v
            S_new += w * keep
            wv[k] = w
            vv[k] = v
            k += np.int64(keep)
        if k == nf:
            t = t_new  # no break point passed: exact root on this piece
            break
        nf = k
        S = S_new
        it += 1
        if it >= _MAX_NEWTON:
            # Worst-case guard: sort the remaining break points and sweep.
            keys = np.empty(nf)
            for q in range(nf):
                keys[q] = vv[q] / wv[q]
            order = np.argsort(keys)
            t = np.inf
            for q in range(nf):
                j = order[q]
                if C + S * keys[j] >= b:
                    t = (b - C) / S
                    break
                C += vv[j]
                S -= wv[j]
                if not (S > 0.0):
                    break
            break

    if t == np.inf:
        _corner(g, x, lo, hi, delta)
        return True, M
    for i in range(d):
        gi = g[i]
        r = _gather_room(gi, x[i], lo[i], hi[i])
        m = min(t if p_inf else t * abs(gi), r)  # r = 0 when g_i = 0
        delta[i] = np.copysign(m, gi)
    return True, M


@njit(cache=True)
def _solve_one_l1(g, b, x, lo, hi, clamp, delta, a1, v1, a2, v2):
    """p = 1 for one row (greedy on |g_i| via weighted quickselect).

    ``a1, v1, a2, v2`` are scratch arrays of length d holding ``a_i`` and
    ``v_i = a_i room_i`` of the candidate coordinates. Each selection round is
    a branch-free out-of-place partition around a median-of-three pivot.
    Returns ``(feasible, M)``.
    """
    d = g.shape[0]
    n = 0
    M = 0.0
    for i in range(d):
        gi = g[i]
        r = _gather_room(gi, x[i], lo[i], hi[i])
        a = abs(gi)
        v = a * r
        a1[n] = a
        v1[n] = v
        n += np.int64(v > 0.0)
        M += v
    for i in range(d):
        delta[i] = 0.0
    if b <= 0.0:
        return True, M
    if not (b <= M):
        if clamp:
            _corner(g, x, lo, hi, delta)
        else:
            for i in range(d):
                delta[i] = np.nan
        return False, M

    # Candidates sa[:n]; A = value of the coordinates known to be fully used
    # (all with |g_i| above every candidate). Invariant: A < b.
    sa, sv, oa, ov = a1, v1, a2, v2
    A = 0.0
    gamma = 0.0
    A_gt = 0.0
    rounds = 0
    found = False
    while n > 0 and rounds < _MAX_SELECT:
        rounds += 1
        p0 = sa[0]
        p1 = sa[n // 2]
        p2 = sa[n - 1]
        piv = max(min(p0, p1), min(max(p0, p1), p2))  # median of three
        kh = 0
        kl = 0
        Vgt = 0.0
        Veq = 0.0
        for q in range(n):
            a = sa[q]
            v = sv[q]
            gt = a > piv
            lt = a < piv
            Vgt += v if gt else 0.0
            Veq += v if a == piv else 0.0
            sa[kh] = a  # in place: kh <= q
            sv[kh] = v
            kh += np.int64(gt)
            oa[kl] = a
            ov[kl] = v
            kl += np.int64(lt)
        if A + Vgt >= b:
            n = kh  # the threshold is among the larger |g_i|
        elif A + Vgt + Veq >= b:
            gamma = piv
            A_gt = A + Vgt
            found = True
            break
        else:
            A += Vgt + Veq  # everything >= piv is fully used
            sa, sv, oa, ov = oa, ov, sa, sv
            n = kl
    if not found:
        # Worst-case guard (or n == 0 by rounding): sort what is left, descending.
        keys = np.empty(n)
        for q in range(n):
            keys[q] = -sa[q]
        order = np.argsort(keys)
        gamma = sa[order[n - 1]] if n > 0 else 0.0
        acc = A
        for q in range(n):
            j = order[q]
            if acc + sv[j] >= b:
                gamma = sa[j]
                break
            acc += sv[j]
        A_gt = 0.0  # value strictly above gamma (ties with gamma are filled below)
        for i in range(d):
            a = abs(g[i])
            if a > gamma:
                A_gt += a * _gather_room(g[i], x[i], lo[i], hi[i])

    # Output: |g_i| > gamma used fully, |g_i| == gamma filled in index order.
    for i in range(d):
        gi = g[i]
        r = _gather_room(gi, x[i], lo[i], hi[i])
        m = r if abs(gi) > gamma else 0.0
        delta[i] = np.copysign(m, gi)
    rem = b - A_gt
    if rem > 0.0:
        for i in range(d):
            gi = g[i]
            ai = abs(gi)
            if ai != gamma or ai == 0.0:
                continue
            r = _gather_room(gi, x[i], lo[i], hi[i])
            val = ai * r
            if val > rem:
                m = rem / ai
                rem = 0.0
            else:
                m = r
                rem -= val
            delta[i] = np.copysign(m, gi)
            if rem <= 0.0:
                break
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
        s1 = np.empty(d)
        s2 = np.empty(d)
        s3 = np.empty(d)
        s4 = np.empty(d)
        start = blk * _BLOCK
        stop = min(start + _BLOCK, m)
        for r in range(start, stop):
            if p_code == 1:
                ok, M = _solve_one_l1(G[r], B[r], X[r], lo, hi, clamp, delta[r], s1, s2, s3, s4)
            else:
                ok, M = _solve_one_piecewise(
                    G[r], B[r], X[r], lo, hi, p_code == 0, clamp, delta[r], s1, s2
                )
            feasible[r] = ok
            max_value[r] = M
