"""Cross-Lipschitz bounds for the one-hidden-layer softplus network (Section 2.3).

Model: ``f(x) = W2^T s(W1^T x + b1) + b2`` with ``s(t) = log(1 + exp(a t)) / a``,
so ``s'(t) = sigmoid(a t)`` is positive and increasing. Write ``u_r = W1[:, r]``,
``z_r(x) = <u_r, x> + b1_r``, ``v = W2[:, j] - W2[:, c]`` and ``G = W1^T W1``.
Then (eq. 4, with biases)

    ||grad f_j(y) - grad f_c(y)||^2 = sum_{r,m} v_r v_m G_rm s'(z_r(y)) s'(z_m(y)).

**Proposition 2.2 with biases.** On ``B(x, R)``,
``z_r(y) in [z_r - R ||u_r||, z_r + R ||u_r||] =: [z_r^-, z_r^+]``. With
``beta_rm = v_r v_m G_rm``, each term is at most
``max(beta_rm, 0) s'(z_r^+) s'(z_m^+) + min(beta_rm, 0) s'(z_r^-) s'(z_m^-)``.

**Fast evaluation.** With ``sigma = sign(v)``, ``S = diag(sigma) G diag(sigma)``,
``S+ = max(S, 0)``, ``S- = max(-S, 0)``, ``p = |v| * s'(z^+)`` and
``q = |v| * s'(z^-)`` the bound squared is ``p^T S+ p - q^T S- q``. Since
``S+ = (|G| + S) / 2``, ``S- = (|G| - S) / 2`` (``|S| = |G|`` entrywise) and
``p^T S p = ||W1 (sigma * p)||^2``, this equals

    (1/2) [ (p - q)^T |G| (p + q) + ||W1 (sigma * p)||^2 + ||W1 (sigma * q)||^2 ],

a sum of non-negative terms (``p >= q``) whose matrices do not depend on the
class pair: all (point, class) entries go through three large GEMMs (one
``U x U``, two ``U x d``) instead of one pair of ``U x U`` products per class
pair, which keeps BLAS efficient. The value is the same as the paper's
expression; only the evaluation order differs.

**Box.** If the inputs are restricted to ``[lo, hi]``, ``<u_r, y - x>`` is also at
most ``sum_l max(u_rl (hi_l - x_l), u_rl (lo_l - x_l))`` (and symmetrically at
least minus the analogous sum); intersecting with the ball interval can only
shrink ``[z^-, z^+]``, hence the bound (the maximum in Theorem 2.1 is then taken
over ``B(x, R) cap box``, end of Section 2.1).

**Two more valid bounds, and the minimum.** ``||W1 diag(s'(z(y))) v|| <=
||W1||_2 ||v * s'(z^+)||_2`` (O(U) per pair) and the global constant of Section 5,
``||v||_2 ||W1||_2`` (``s`` is 1-Lipschitz). Proposition 2.2 is not always below
them (its positive part alone can exceed them), so every returned value is the
minimum of the three: a minimum of valid upper bounds is valid.

**Rounding (float64).** ``z`` carries the dot-product error bound
``gamma_{d+1} (||x|| ||u_r|| + |b1_r|)`` and is pushed outwards before the
monotone ``s'``; ``p - q`` and ``p + q`` are enclosed from above (relative
``64 eps`` for the rounding of ``v``, ``s'`` and the products); the non-negative
form ``(p - q)^T |G| (p + q)`` is inflated by ``gamma_{2U+8}`` and the error of
``|G_hat|``, ``|G_hat - G| <= gamma_d ||u_r|| ||u_m||``, adds
``gamma_d (sum_r (p - q)_r ||u_r||) (sum_r (p + q)_r ||u_r||)``; the vector
``W1 (sigma * p)`` has componentwise error ``gamma_U sum_r |W1_lr| p_r``, whose
norm is at most ``gamma_U ||W1||_F ||p||``, added to its norm. The square root
is rounded up. See :mod:`sklearn_crosslip.bounds._common`.
"""

import numpy as np
from scipy.special import expit

from ._common import (
    EPS,
    TINY,
    check_box_arrays,
    check_method,
    check_norm,
    check_radii,
    gamma,
    prepare_active,
    spectral_norm_upper,
)

__all__ = ["local_cross_lipschitz", "global_cross_lipschitz", "class_difference_norms"]

_BIG = 1e300  # stands in for infinite box sides (0 * _BIG == 0, no NaN)
_ENTRY_BLOCK = 4096  # (point, class) entries per GEMM block (bounds memory at ~ 4 * block * U)


def _as_params(W1, b1, W2):
    W1 = np.ascontiguousarray(W1, dtype=np.float64)
    W2 = np.ascontiguousarray(W2, dtype=np.float64)
    if W1.ndim != 2 or W2.ndim != 2 or W1.shape[1] != W2.shape[0]:
        raise ValueError(
            f"Expected W1 of shape (d, U) and W2 of shape (U, K); got {W1.shape} and {W2.shape}."
        )
    if b1 is not None:
        b1 = np.ascontiguousarray(b1, dtype=np.float64)
        if b1.shape != (W1.shape[1],):
            raise ValueError(f"b1 must have shape ({W1.shape[1]},); got {b1.shape}.")
    return W1, b1, W2


def class_difference_norms(W2):
    """Upper bounds on ``||W2[:, c] - W2[:, j]||_2`` for all class pairs.

    Parameters
    ----------
    W2 : ndarray of shape (U, K)

    Returns
    -------
    norms : ndarray of shape (K, K)
        Symmetric, zero diagonal, rounded up.
    """
    W2 = np.asarray(W2, dtype=np.float64)
    U, K = W2.shape
    out = np.zeros((K, K))
    for a in range(K):
        diff = W2[:, a + 1:] - W2[:, a:a + 1]
        out[a, a + 1:] = np.sqrt(np.einsum("uk,uk->k", diff, diff))
    out = out + out.T
    return out * (1.0 + gamma(U + 8))


def global_cross_lipschitz(W1, W2, norm=2):
    """Global cross-Lipschitz constants ``||w_c - w_j||_2 ||W1||_2`` (Section 5).

    ``|g(x) - g(y)| <= ||w_c - w_j||_2 ||s(W1^T x + b1) - s(W1^T y + b1)||_2
    <= ||w_c - w_j||_2 ||W1||_2 ||x - y||_2`` for ``g = f_c - f_j`` because the
    softplus is 1-Lipschitz (``0 < s' < 1``); biases do not matter. For
    ``norm`` 1 or inf see :func:`sklearn_crosslip.bounds.lp_mlp.global_cross_lipschitz`.

    Parameters
    ----------
    W1 : ndarray of shape (n_features, n_hidden)
        Input weights (``coefs_[0]``).
    W2 : ndarray of shape (n_hidden, n_classes)
        Output weights (``coefs_[1]``).
    norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
        The p of the ball; the constant bounds the dual q-norm of the gradient
        difference.

    Returns
    -------
    L : ndarray of shape (n_classes, n_classes)
        ``L[c, j] >= sup_y ||grad f_c(y) - grad f_j(y)||_q``, rounded up; zero
        diagonal.
    """
    p = check_norm(norm)
    if p != 2:
        from . import lp_mlp

        return lp_mlp.global_cross_lipschitz(W1, W2, p)
    W1, _, W2 = _as_params(W1, None, W2)
    s1 = spectral_norm_upper(W1)
    return class_difference_norms(W2) * s1 * (1.0 + 4 * EPS)


def dual_column_norms(W1, p):
    """Upper bounds on ``||u_r||_q`` (``q`` dual to ``p``) for the columns ``u_r`` of ``W1``."""
    d = W1.shape[0]
    if p == 2:
        return np.sqrt(np.einsum("du,du->u", W1, W1)) * (1.0 + gamma(d + 4))
    if p == np.inf:  # q = 1: a sum of d non-negative terms
        return np.abs(W1).sum(axis=0) * (1.0 + gamma(d + 4))
    return np.abs(W1).max(axis=0)  # p = 1, q = inf: exact


def point_blocks(rows):
    """Blocks ``(slice of entries, points, entry -> point index)`` of whole points.

    ``rows`` are the point indices of the active entries, sorted (``np.nonzero``
    is row-major); each block holds at most ``_ENTRY_BLOCK`` entries (or one
    point), so that the per-point arrays stay small.
    """
    bounds = np.flatnonzero(np.diff(rows)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [rows.size]])
    pb = 0
    while pb < starts.size:
        pe = pb
        while pe < starts.size and ends[pe] - starts[pb] <= _ENTRY_BLOCK:
            pe += 1
        pe = max(pe, pb + 1)
        e = slice(starts[pb], ends[pe - 1])
        pb = pe
        pts, loc = np.unique(rows[e], return_inverse=True)
        yield e, pts, loc


def _z_intervals(W1, b1, a, X, R, lo, hi, p=2.0):
    """Safe enclosures ``s'(z^+)``, ``s'(z^-)`` of the hidden derivatives on the ball (and box).

    The ball is ``B_p(x, R)``: ``|<u_r, h>| <= R ||u_r||_q`` (Hoelder). For
    ``p = inf`` with a box, ``B_inf(x, R) cap box`` is itself a box and the
    range of ``<u_r, h>`` over it is computed exactly; otherwise the ball
    interval is intersected with the range over the whole box.
    """
    d, U = W1.shape
    unorm = np.sqrt(np.einsum("du,du->u", W1, W1)) * (1.0 + gamma(d + 4))
    qnorm = unorm if p == 2 else dual_column_norms(W1, p)
    xnorm = np.sqrt(np.einsum("md,md->m", X, X)) * (1.0 + gamma(d + 4))
    Z = X @ W1
    Z += b1
    # |fl(z) - z| <= gamma_{d+1} (|x|^T |u_r| + |b1_r|) <= gamma_{d+1} (||x|| ||u_r|| + |b1_r|)
    ez = np.multiply.outer(xnorm, unorm)
    ez += np.abs(b1)
    ez *= gamma(d + 4)
    rad = np.multiply.outer(R * (1.0 + 4 * EPS), qnorm)
    if lo is not None:
        # max / -min of <u_r, h> over h in [lo - x, hi - x] (every product >= 0);
        # for p = inf over [max(lo - x, -R), min(hi - x, R)] = B_inf(x, R) cap box
        cap = R[:, None] if p == np.inf else _BIG
        up_side = np.minimum(hi[None, :] - X, cap)
        dn_side = np.minimum(X - lo[None, :], cap)
        Wp = np.maximum(W1, 0.0)
        Wn = np.minimum(W1, 0.0)
        UP = up_side @ Wp - dn_side @ Wn
        DN = dn_side @ Wp - up_side @ Wn
        infl = 1.0 + gamma(d + 8)
        radp = np.minimum(rad, UP * infl)
        radm = np.minimum(rad, DN * infl)
    else:
        radp = radm = rad
    absZ = np.abs(Z)
    # z^+ = z + rad + ez, with the rounding of these additions (relative 2u each) covered
    zp = Z + radp + ez + 4 * EPS * (absZ + radp + ez)
    zm = Z - radm - ez - 4 * EPS * (absZ + radm + ez)
    tp = a * zp
    tp += 2 * EPS * np.abs(tp)
    tm = a * zm
    tm -= 2 * EPS * np.abs(tm)
    # s'(t) = sigmoid(a t): increasing, so these bound s' over the ball from above / below
    return expit(tp), expit(tm), unorm


def local_cross_lipschitz(
    W1, b1, W2, softplus_alpha, X, c, R, active=None, lo=None, hi=None, method="local",
    *, norm=2, return_parts=False,
):
    """Upper bounds on ``max_{y in B_p(x, R) cap box} ||grad f_c(y) - grad f_j(y)||_q``.

    Proposition 2.2 with biases (``method="local"``), each value capped by the
    O(U) bound ``||W1||_2 ||v * s'(z^+)||_2`` and the global constant; with
    ``method="local_fast"`` only the two cheap bounds are used. This is the
    case ``p = q = 2``; ``norm`` 1 and inf are computed by
    :func:`sklearn_crosslip.bounds.lp_mlp.local_cross_lipschitz`.

    Parameters
    ----------
    W1 : ndarray of shape (n_features, n_hidden)
    b1 : ndarray of shape (n_hidden,)
    W2 : ndarray of shape (n_hidden, n_classes)
    softplus_alpha : float
        Softplus slope ``a > 0``.
    X : ndarray of shape (m, n_features)
        Centres of the balls (float64, finite).
    c : ndarray of shape (m,) of int
        Predicted class index per point.
    R : ndarray of shape (m,)
        Ball radii (>= 0).
    active : ndarray of shape (m, n_classes) of bool, default=None
        Entries to compute; ``None`` means every ``j != c``.
    lo, hi : ndarray of shape (n_features,) or None
        Input box (both or neither); ``X`` is assumed inside it.
    method : {"local", "local_fast"}, default="local"
    norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
        The p of the ball ``B_p(x, R)``; the bound is on the dual q-norm.
    return_parts : bool, default=False
        Also return a dict of the individual bounds (each (m, n_classes), NaN
        where not computed): ``"prop22"`` (``"local"`` only), ``"opnorm"``
        (``||W1||_2 ||v * s'(z^+)||_2``) and ``"global"``; for ``norm != 2``
        the keys of :func:`sklearn_crosslip.bounds.lp_mlp.local_cross_lipschitz`.

    Returns
    -------
    L : ndarray of shape (m, n_classes)
        Upper bounds (rounded up) for active entries; ``0`` in column ``c``,
        ``inf`` (a trivial upper bound) for inactive entries.
    parts : dict
        Only with ``return_parts=True``.
    """
    W1, b1, W2 = _as_params(W1, b1, W2)
    X = np.ascontiguousarray(X, dtype=np.float64)
    d, U = W1.shape
    K = W2.shape[1]
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (m, {d}); got {X.shape}.")
    m = X.shape[0]
    c, act = prepare_active(active, c, m, K)
    R = check_radii(R, m)
    method = check_method(method)
    lo, hi = check_box_arrays(lo, hi, d)
    a = float(softplus_alpha)
    if not a > 0:
        raise ValueError(f"softplus_alpha must be positive; got {softplus_alpha!r}.")
    p = check_norm(norm)
    if p != 2:
        from . import lp_mlp

        return lp_mlp.local_cross_lipschitz(
            W1, b1, W2, a, X, c, R, act, lo, hi, method, p, return_parts
        )

    out = np.full((m, K), np.inf)
    out[np.arange(m), c] = 0.0
    parts = {k: np.full((m, K), np.nan) for k in ("prop22", "opnorm", "global")}
    rows, cols = np.nonzero(act)
    if rows.size == 0:
        return (out, parts) if return_parts else out
    s1 = spectral_norm_upper(W1)
    dnorm = class_difference_norms(W2)
    Lglob = dnorm * s1 * (1.0 + 4 * EPS)
    ci = c[rows]
    opn = np.empty(rows.size)
    prop = np.full(rows.size, np.inf)
    if method == "local":
        Gabs = np.abs(W1.T @ W1)
        w1_fro = float(np.sqrt(np.sum(W1 * W1))) * (1.0 + gamma(W1.size + 4))
    up = 1.0 + 64 * EPS  # rounding of v, s'(z) and their products
    dn = 1.0 - 64 * EPS
    g_quad = gamma(2 * U + 8)
    g_gram = gamma(d + 8)
    g_vec = gamma(U + 8)
    for e, pts, loc in point_blocks(rows):
        sp, sm, unorm = _z_intervals(W1, b1, a, X[pts], R[pts], lo, hi)
        vd = W2.T[cols[e]] - W2.T[ci[e]]  # (E, U): v for every entry (rounding: relative u)
        P = sp[loc] * np.abs(vd)
        # O(U) bound ||W1||_2 ||v * s'(z^+)||_2 (rounded up)
        pn = np.sqrt(np.einsum("iu,iu->i", P, P)) * (1.0 + gamma(U + 16))
        opn[e] = pn * s1 * (1.0 + 8 * EPS)
        if method != "local":
            continue
        Q = sm[loc] * np.abs(vd)
        Dl = np.maximum(P * up - Q * dn, 0.0)  # >= p - q (true values)
        Sm_ = (P + Q) * up  # >= p + q
        t1 = np.einsum("iu,iu->i", Dl @ Gabs, Sm_) * (1.0 + g_quad)
        t1 += g_gram * (Dl @ unorm) * (Sm_ @ unorm) * (1.0 + g_quad)
        qn = np.sqrt(np.einsum("iu,iu->i", Q, Q)) * (1.0 + gamma(U + 16))
        sg = np.sign(vd)
        Wp = (sg * P) @ W1.T
        Wq = (sg * Q) @ W1.T
        wp = np.sqrt(np.einsum("id,id->i", Wp, Wp))
        wq = np.sqrt(np.einsum("id,id->i", Wq, Wq))
        # ||W1 (sigma p)|| <= ||computed|| + gamma_U ||W1||_F ||p||, then p <= p_hat (1 + 64 eps)
        wp = (wp * (1.0 + 4 * EPS) + g_vec * w1_fro * pn) * up
        wq = (wq * (1.0 + 4 * EPS) + g_vec * w1_fro * qn) * up
        b2 = 0.5 * (t1 + wp * wp + wq * wq) * (1.0 + 8 * EPS) + TINY
        prop[e] = np.sqrt(b2) * (1.0 + 4 * EPS)
    glob = Lglob[ci, cols]
    L = np.minimum(np.minimum(opn, prop), glob)
    out[rows, cols] = L
    if return_parts:
        parts["opnorm"][rows, cols] = opn
        parts["global"][rows, cols] = glob
        if method == "local":
            parts["prop22"][rows, cols] = prop
    return (out, parts) if return_parts else out
