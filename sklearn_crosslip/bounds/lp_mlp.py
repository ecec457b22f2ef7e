"""Cross-Lipschitz bounds of the softplus network for the L1 and L-infinity balls.

Theorem 2.1 for a ball ``B_p(x, R)`` needs an upper bound on the dual norm
``||grad f_c(y) - grad f_j(y)||_q`` (``1/p + 1/q = 1``) over the ball; here
``p = inf`` (``q = 1``) and ``p = 1`` (``q = inf``). Notation as in
:mod:`sklearn_crosslip.bounds.mlp_bounds`: ``f(x) = W2^T s(W1^T x + b1) + b2``,
``u_r = W1[:, r]``, ``z_r(y) = <u_r, y> + b1_r``, ``v = w_c - w_j`` (columns of
``W2``), ``s'(t) = sigmoid(a t)`` (positive, increasing, below 1). Then

    grad f_c(y) - grad f_j(y) = W1 (v o s'(z(y))).

**Derivative intervals.** For ``y`` in ``B_p(x, R)``, ``|z_r(y) - z_r(x)| =
|<u_r, y - x>| <= R ||u_r||_q`` (Hoelder), so ``s'(z_r(y))`` lies in
``[l_r, h_r] = [s'(z_r - R ||u_r||_q), s'(z_r + R ||u_r||_q)]``. With a box
``[lo, hi]`` and ``p = inf`` the set ``B_inf(x, R) cap box`` is the box
``[x - dn, x + up]`` with ``up = min(hi - x, R)``, ``dn = min(x - lo, R)``, on
which ``<u_r, h>`` ranges exactly over
``[-(sum_l u_rl^+ dn_l + u_rl^- up_l), sum_l u_rl^+ up_l + u_rl^- dn_l]``
(``u^+ = max(u, 0)``, ``u^- = max(-u, 0)``); for ``p = 1`` the ball interval
is intersected with the range over the whole box (both enclose ``z_r(y)``).

**Local bound** (``method="local"``). Write ``t_r = s'(z_r(y))`` with ``t`` in the
box ``[l, h]``, midpoint ``mu = (l + h) / 2`` and half-width ``rho = (h - l) / 2``.
Coordinate ``i`` of the gradient difference is the linear form
``sum_r W1_ir v_r t_r``; its largest absolute value over the box of ``t`` is
exactly

    B_i = |sum_r W1_ir v_r mu_r| + sum_r |W1_ir| |v_r| rho_r

(an affine function ``a + <b, delta>``, ``|delta_r| <= rho_r``, has
``max |.| = |a| + sum |b_r| rho_r``). Hence

* ``q = 1``: ``max_y ||.||_1 <= sum_i B_i`` (each coordinate maximised separately),
* ``q = inf``: ``max_y ||.||_inf <= max_i B_i`` (equality over the box of ``t``).

For all (point, class) entries this is two GEMMs, ``(v o mu) W1^T`` and
``(|v| o rho) |W1|^T``. At ``R = 0`` (``rho = 0``) it is the exact dual norm of
the gradient difference.

**Midpoint plus L2 part.** The second sum above has no cancellation between
hidden units. Writing ``t = mu + delta`` (``|delta_r| <= rho_r``),
``W1 (v o t) = W1 (v o mu) + W1 (v o delta)`` and, as in Proposition 2.2,
``||W1 (v o delta)||_2^2 = sum_{r,m} v_r v_m delta_r delta_m G_rm <=
(|v| o rho)^T |G| (|v| o rho)`` (``G = W1^T W1``), which keeps the cancellation
inside ``G``. With ``||w||_1 <= sqrt(d) ||w||_2`` and ``||w||_inf <= ||w||_2``:

    ||.||_q <= ||W1 (v o mu)||_q + c_q sqrt((|v| o rho)^T |G| (|v| o rho)),

``c_1 = sqrt(d)``, ``c_inf = 1`` (one more GEMM with ``|G|``).

Both are valid for both norms; ``method="local"`` computes the one that wins
in practice, which saves a large GEMM per evaluation: the midpoint + L2 form
for ``p = inf`` (``q = 1``, where summing the per-coordinate half-widths loses
the cancellation over ``d`` coordinates; on the MNIST network of the
benchmark it was smaller for every entry, by a median factor 2.5) and the
per-coordinate bound for ``p = 1`` (``q = inf``, a single coordinate; smaller
for every entry there, median factor 2.6).

**Cheap bound** (``method="local_fast"``, and the first filter of
``"local"``). ``|sum_r W1_ir v_r t_r| <= sum_r |W1_ir| |v_r| h_r``, so
``||.||_1 <= sum_r ||u_r||_1 |v_r| h_r`` and ``||.||_inf <= sum_r ||u_r||_inf |v_r| h_r``:
O(U) per entry.

**Global constant.** ``0 < s' < 1``, so the local bound with ``[l, h] = [0, 1]``
holds everywhere: per coordinate ``max(sum_r (W1_ir v_r)^+, sum_r (W1_ir v_r)^-)``,
summed (``q = 1``) or maximised (``q = inf``) over ``i``. The products split by
signs, ``sum_r (W1_ir v_r)^+ = (W1^+ v^+ + W1^- v^-)_i`` (and symmetrically), so
all class pairs take four GEMMs with non-negative terms. Every local value is
also capped by it (a minimum of upper bounds is an upper bound).

**Rounding (float64).** The ``s'`` enclosures are those of the L2 bound (the
pre-activation error ``gamma_{d+1} (||x|| ||u_r|| + |b1_r|)`` pushed outwards, the
monotone ``s'`` evaluated at the pushed ends). ``mu`` and ``rho`` are computed so
that ``[mu_hat - rho_hat, mu_hat + rho_hat]`` contains ``[l, h]``, and ``rho`` is
widened by ``2 eps |v| h`` for the rounding of ``v`` and of ``v mu``. The
computed ``(v mu) W1^T`` has componentwise error at most
``gamma_U sum_r |W1_ir| |v_r mu_r| <= gamma_U ||W1_i,:||_2 ||v o mu||_2``
(Cauchy-Schwarz), added per coordinate (summed or maximised); the
non-negative products and sums are inflated by ``gamma`` of their lengths;
the quadratic form takes the error of the computed ``|G|``,
``gamma_d ||u_r|| ||u_m||``, as in :mod:`~sklearn_crosslip.bounds.mlp_bounds`.
See :mod:`sklearn_crosslip.bounds._common`.
"""

import threading

import numpy as np

from ._common import EPS, TINY, _content_key, gamma
from .mlp_bounds import _as_params, _z_intervals, dual_column_norms, point_blocks

__all__ = ["local_cross_lipschitz", "global_cross_lipschitz"]

_glob_lock = threading.Lock()
_glob_cache = {}


def _abs_gram(W1):
    """``|W1^T W1|`` (computed), cached per weight content."""
    key = ("gram", _content_key(W1))
    with _glob_lock:
        hit = _glob_cache.get(key)
    if hit is None:
        hit = np.abs(W1.T @ W1)
        with _glob_lock:
            if len(_glob_cache) > 16:
                _glob_cache.clear()
            _glob_cache[key] = hit
    return hit


def _reduce(B, p):
    """Dual norm (``q = 1`` for ``p = inf``, ``q = inf`` for ``p = 1``) of non-negative rows."""
    return B.sum(axis=1) if p == np.inf else B.max(axis=1)


def global_cross_lipschitz(W1, W2, p):
    """Global constants ``sup_y ||grad f_c(y) - grad f_j(y)||_q`` for ``p`` in {1, inf}.

    Parameters
    ----------
    W1 : ndarray of shape (n_features, n_hidden)
        Input weights.
    W2 : ndarray of shape (n_hidden, n_classes)
        Output weights.
    p : {1.0, inf}
        The p of the ball (``q`` is its dual).

    Returns
    -------
    L : ndarray of shape (n_classes, n_classes)
        Symmetric, zero diagonal, rounded up.
    """
    W1, _, W2 = _as_params(W1, None, W2)
    if p not in (1.0, np.inf):
        raise ValueError(f"p must be 1 or inf here; got {p!r}.")
    key = (_content_key(W1), _content_key(W2), p)
    with _glob_lock:
        hit = _glob_cache.get(key)
    if hit is not None:
        return hit.copy()
    d, U = W1.shape
    K = W2.shape[1]
    a, b = np.triu_indices(K, 1)
    V = W2.T[b] - W2.T[a]  # (pairs, U), relative rounding u
    Vp, Vn = np.maximum(V, 0.0), np.maximum(-V, 0.0)
    Wp, Wn = np.maximum(W1, 0.0), np.maximum(-W1, 0.0)
    # sum_r (W1_ir v_r)^+ = W1+ v+ + W1- v-, sum_r (W1_ir v_r)^- = W1+ v- + W1- v+
    pos = Vp @ Wp.T + Vn @ Wn.T
    neg = Vn @ Wp.T + Vp @ Wn.T
    B = np.maximum(pos, neg) * (1.0 + gamma(2 * U + 8))
    val = _reduce(B, p) * (1.0 + gamma(d + 8)) + TINY
    L = np.zeros((K, K))
    L[a, b] = val
    L[b, a] = val
    with _glob_lock:
        if len(_glob_cache) > 16:
            _glob_cache.clear()
        _glob_cache[key] = L
    return L.copy()


def local_cross_lipschitz(W1, b1, W2, a, X, c, R, act, lo=None, hi=None,
                          method="local", p=np.inf, return_parts=False):
    """Upper bounds on ``max_{y in B_p(x, R) cap box} ||grad f_c(y) - grad f_j(y)||_q``.

    Called by :func:`sklearn_crosslip.bounds.mlp_bounds.local_cross_lipschitz`
    (which validates the arguments) for ``p`` in {1, inf}; see the module
    docstring for the bounds.

    Parameters
    ----------
    W1, b1, W2 : ndarray
        Network weights, shapes (d, U), (U,), (U, K).
    a : float
        Softplus slope.
    X : ndarray of shape (m, d)
        Centres of the balls.
    c : ndarray of shape (m,) of intp
        Predicted class per point.
    R : ndarray of shape (m,)
        Ball radii.
    act : ndarray of shape (m, K) of bool
        Entries to compute (column ``c`` already cleared).
    lo, hi : ndarray of shape (d,) or None
        Input box.
    method : {"local", "local_fast"}
    p : {1.0, inf}
    return_parts : bool
        Also return ``{"coord": ..., "cheap": ..., "global": ...}`` (each
        (m, K), NaN where not computed; ``"coord"`` only for ``"local"``).

    Returns
    -------
    L : ndarray of shape (m, K)
        Upper bounds (rounded up) for active entries; ``0`` in column ``c``,
        ``inf`` for inactive entries.
    parts : dict
        Only with ``return_parts=True``.
    """
    d, U = W1.shape
    m, K = act.shape
    out = np.full((m, K), np.inf)
    out[np.arange(m), c] = 0.0
    parts = {k: np.full((m, K), np.nan) for k in ("coord", "cheap", "global")}
    rows, cols = np.nonzero(act)
    if rows.size == 0:
        return (out, parts) if return_parts else out
    Lglob = global_cross_lipschitz(W1, W2, p)
    qn = dual_column_norms(W1, p)  # ||u_r||_q, rounded up
    ci = c[rows]
    cheap = np.empty(rows.size)
    coord = np.full(rows.size, np.inf)
    if method == "local":
        W1abs_T = np.ascontiguousarray(np.abs(W1).T) if p == 1.0 else None
        W1_T = np.ascontiguousarray(W1.T)
        rown = np.sqrt(np.einsum("du,du->d", W1, W1)) * (1.0 + gamma(U + 4))  # ||W1_i,:||_2
        rown_red = float(rown.sum() * (1.0 + gamma(d + 4)) if p == np.inf else rown.max())
        Gabs = _abs_gram(W1) if p == np.inf else None
        unorm = np.sqrt(np.einsum("du,du->u", W1, W1)) * (1.0 + gamma(d + 4))
        g_quad = gamma(2 * U + 8)
        g_gram = gamma(d + 8)
        # ||w||_1 <= sqrt(d) ||w||_2 (q = 1), ||w||_inf <= ||w||_2 (q = inf)
        cd = np.sqrt(d) * (1.0 + 4 * EPS) if p == np.inf else 1.0
    g_u = gamma(U + 16)
    for e, pts, loc in point_blocks(rows):
        sp, sm, _ = _z_intervals(W1, b1, a, X[pts], R[pts], lo, hi, p)
        vd = W2.T[cols[e]] - W2.T[ci[e]]  # (E, U): v up to the relative rounding u
        av = np.abs(vd)
        SP = sp[loc]
        # cheap bound sum_r ||u_r||_q |v_r| h_r (non-negative terms; v rounding: 2 eps)
        cheap[e] = (av * SP) @ qn * ((1.0 + g_u) * (1.0 + 8 * EPS))
        if method != "local":
            continue
        SM = sm[loc]
        mu = 0.5 * (SP + SM)
        # [mu - rho, mu + rho] contains [l, h] despite the rounding of mu and h - l
        rho = 0.5 * (SP - SM) + 2 * EPS * SP
        M = vd * mu
        # rounding of v (v_true = v_hat (1 + delta)) and of v * mu, both <= eps |v| h / 2
        H = (av * rho + 2 * EPS * av * SP) * (1.0 + 4 * EPS)
        C = M @ W1_T  # (E, d)
        np.abs(C, out=C)
        mn = np.sqrt(np.einsum("eu,eu->e", M, M)) * (1.0 + g_u)
        # per coordinate: |C_hat - C| <= gamma_U ||W1_i,:|| ||M||
        c_err = g_u * rown_red * mn
        if p == np.inf:
            # midpoint + L2 part: ||W1 (v o delta)||_2^2 <= (|v| rho)^T |G| (|v| rho)
            mid = _reduce(C, p) * (1.0 + gamma(d + 8)) + c_err  # >= ||W1 (v o mu)||_1
            quad = np.einsum("eu,eu->e", H @ Gabs, H) * (1.0 + g_quad)
            quad += g_gram * (H @ unorm) ** 2 * (1.0 + g_quad)
            coord[e] = (mid + cd * np.sqrt(quad) * (1.0 + 4 * EPS)) * (1.0 + 8 * EPS) + TINY
        else:
            # per coordinate |W1 (v o mu)|_i + (|W1| (|v| rho))_i
            C += (H @ W1abs_T) * (1.0 + 2 * g_u)  # non-negative terms
            coord[e] = (_reduce(C, p) * (1.0 + gamma(d + 8)) + c_err) * (1.0 + 8 * EPS) + TINY
    glob = Lglob[ci, cols]
    out[rows, cols] = np.minimum(np.minimum(cheap, coord), glob)
    if return_parts:
        parts["cheap"][rows, cols] = cheap
        parts["global"][rows, cols] = glob
        if method == "local":
            parts["coord"][rows, cols] = coord
    return (out, parts) if return_parts else out
