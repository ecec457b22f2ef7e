"""Cross-Lipschitz bounds for Gaussian-kernel expansions (Section 2.2).

Model: ``f_j(x) = sum_r alpha_jr k_r(x)`` with ``k_r(x) = exp(-gamma ||x - x_r||^2)``.
For a class pair ``(c, j)`` let ``beta_r = alpha_jr - alpha_cr``; then
``grad f_j(y) - grad f_c(y) = -2 gamma sum_r beta_r (y - x_r) k_r(y)`` and (eq. 3)

    ||grad f_j(y) - grad f_c(y)||^2
        = 4 gamma^2 sum_{r,s} beta_r beta_s <y - x_r, y - x_s> k_r(y) k_s(y).

**Proposition 2.1** (derivation). Write ``y = x + h`` with ``||h|| = t <= R``,
``a = <x - x_r, x - x_s>``, ``w = 2x - x_r - x_s``, ``S = ||w||``,
``M = min(S / 2, R)`` and ``A = ||x - x_r||^2 + ||x - x_s||^2``. Then

* ``<y - x_r, y - x_s> = a + <h, w> + t^2 in [a - M S + M^2, a + R S + R^2]``
  (the minimum of ``t^2 - t S`` over ``[0, R]`` is at ``t = M``);
* ``||y - x_r||^2 + ||y - x_s||^2 = A + 2 <h, w> + 2 t^2``, which lies in
  ``[A - 2 M S + 2 M^2, A + 2 R S + 2 R^2]``,
  so ``k_r(y) k_s(y) in [e_lo, e_hi]`` with ``e_hi = k_r k_s exp(2 gamma M (S - M))``
  and ``e_lo = k_r k_s exp(-2 gamma R (S + R))``.

The product ``I * E`` of ``I in [I_lo, I_hi]`` and ``E in [e_lo, e_hi]`` (``E > 0``)
is bilinear, so its maximum is ``max(I_hi, 0) e_hi + min(I_hi, 0) e_lo`` and its
minimum ``max(I_lo, 0) e_lo + min(I_lo, 0) e_hi``. Terms with ``beta_r beta_s >= 0``
use the maximum, terms with ``beta_r beta_s < 0`` the minimum: the paper's two
sums are split by the *sign of the product*. The bound is ``2 gamma`` times the
square root of the sum. At ``R = 0`` it is exactly the gradient norm.

The bracket terms depend on the pair ``(r, s)`` and the point, not on ``j``:
one pass over the pairs (``r <= s`` by symmetry) serves every class
(:func:`._kernel_numba.prop21_sums`). ``a`` and ``S`` come from distances only,
``a = (d_r^2 + d_s^2 - D_rs) / 2`` and ``S^2 = 2 d_r^2 + 2 d_s^2 - D_rs``.

**Triangle-inequality bound.** ``||grad f_j(y) - grad f_c(y)|| <= 2 gamma
sum_r |beta_r| phi(||y - x_r||)`` with ``phi(t) = t exp(-gamma t^2)``; over the ball
``||y - x_r|| in [max(0, d_r - R), d_r + R]`` and ``phi`` is unimodal with its
peak at ``t* = 1 / sqrt(2 gamma)``, so the maximum is ``phi`` at the point of
that interval nearest to ``t*``. O(n) per point and class.

**Global constant.** ``sup_t phi(t) = phi(t*) = 1 / sqrt(2 gamma e)``, hence
``sup_y ||grad f_j(y) - grad f_c(y)|| <= 2 gamma ||beta||_1 / sqrt(2 gamma e)
= ||beta||_1 sqrt(2 gamma / e)``.

**Mean-value bound** (beyond the paper). With ``g = grad(f_j - f_c)`` and
``H`` its Jacobian (the Hessian of ``f_j - f_c``), for ``y`` in the ball
``g(y) = g(x) + int_0^1 H(x + s (y - x)) (y - x) ds``, so
``||g(y)|| <= ||g(x)|| + R sup_{z in B(x, R)} ||H(z)||_2``. The Hessian of ``k_r`` is
``k_r (4 gamma^2 u u^T - 2 gamma I)`` (``u = z - x_r``, ``t = ||u||``), whose norm is
``2 gamma k_r max(1, |2 gamma t^2 - 1|) = 2 gamma psi(t)``, hence
``sup ||H|| <= 2 gamma sum_r |beta_r| max_t psi(t)`` over the same distance
interval as above. The first term is the *exact* gradient difference at
``x`` (all cancellation kept), so the bound is tight for small ``R`` and costs
O(n d) per point, once (the gradients at ``x`` do not depend on ``R`` and are
cached across the calls of one certification), plus O(n) per class and ``R``.
On MNIST-like data it is far below Proposition 2.1 at the radii that matter
(the benchmark reports both).

**Fast variant** (``method="local_fast"``). Minimum of the mean-value bound and
of a split bound: the ``N`` training points with the largest triangle terms
``|beta_r| phi_r`` (set ``T``) are handled by Proposition 2.1 over the pairs of
``T`` and the rest by the triangle bound (``grad(f_j - f_c) = g_T + g_rest`` and
``||g_T + g_rest|| <= ||g_T|| + ||g_rest||``). Cost O(N^2 + n d) per point instead
of O(n^2). Trade-off: Proposition 2.1 keeps cancellation between terms of
opposite sign over all pairs *on the whole ball*; the fast variant keeps it
exactly at ``x`` (mean-value) and inside ``T``, and pays ``R`` times a
triangle-type Hessian bound. It can therefore be looser at large ``R``; in
practice the crossing radii are small and it is usually as good or better.

Every returned value is the minimum of the valid bounds computed (the
minimum of upper bounds is an upper bound): ``"local"`` takes Proposition 2.1
over all pairs and everything ``"local_fast"`` takes (mean-value bound, split
bound, triangle bound, global constant). At ``R = 0`` Proposition 2.1 and the
mean-value bound both equal the exact gradient norm, so the O(n^2) pass is
skipped there.

**Box.** ``y`` in ``box`` also gives ``||y - x_r|| in [dist(x_r, box),
farthest(x_r, box)]``, which the triangle and Hessian terms use
(intersection of intervals, so never looser; the segment from ``x`` to ``y``
stays in the box). Proposition 2.1 itself is evaluated on the ball.

**Rounding (float64).** Squared distances ``||x||^2 + ||x_r||^2 - 2 <x, x_r>``
carry the absolute error ``gamma_{d+4} (||x|| + ||x_r||)^2``; ``a`` and ``S`` are
enclosed accordingly and every formula is evaluated at the end of the
enclosure that makes it larger (each bracket term is monotone in ``a``, ``S``,
``k_r``). The remaining rounding errors of the ``N^2`` terms are bounded by
``C eps (sum_r |beta_r| w_r)^2`` with ``|T_rs| <= w_r w_s`` and added before the
square root. Results are rounded up.
"""

import hashlib
import math
import threading

import numpy as np

from ._common import (
    EPS,
    TINY,
    RowCache,
    check_box_arrays,
    check_method,
    check_norm,
    check_radii,
    gamma as gam,
    prepare_active,
)
from ._kernel_numba import prop21_sums, sum_abs_coef_times, triangle_terms, weighted_abs_sums

__all__ = [
    "local_cross_lipschitz",
    "global_cross_lipschitz",
    "proposition21",
    "clear_cache",
    "FAST_SUBSET_SIZE",
]

FAST_SUBSET_SIZE = 256  # training points handled by Proposition 2.1 in "local_fast"
_BLOCK = 512  # points per internal block (bounds memory at ~ 2 * _BLOCK * n doubles)

GRAD_CACHE_BYTES = 256 * 2**20  # memory for cached gradient Gram matrices (K^2 doubles per row)
DFIT_MAX_BYTES = 4 * 2**30  # largest n x n training distance matrix we materialise

_cache_lock = threading.Lock()
_cache = {}
_grad_cache = RowCache()


def clear_cache():
    """Release the cached training distance matrix and gradient Gram matrices.

    The certificate calls the bound functions many times with the same model;
    :func:`local_cross_lipschitz` therefore keeps the ``n x n`` training
    distances of the last model (``8 n^2`` bytes) and the gradient Gram
    matrices of recently seen points (at most ``GRAD_CACHE_BYTES``), keyed by
    content hashes, and for ``norm`` 1 or inf the rows ``||x - x_r||_q`` of
    :mod:`~sklearn_crosslip.bounds.lp_kernel`. Call this to free that memory.
    """
    with _cache_lock:
        _cache.clear()
    _grad_cache.clear()
    from . import lp_kernel

    lp_kernel.clear_cache()


def _digest(arr):
    return hashlib.blake2b(np.ascontiguousarray(arr).view(np.uint8), digest_size=16).digest()


def global_cross_lipschitz(dual_coef, gamma, norm=2, n_features=None):
    """Global cross-Lipschitz constants ``||alpha_c - alpha_j||_1 sqrt(2 gamma / e)``.

    Parameters
    ----------
    dual_coef : ndarray of shape (n_classes, n_train)
        Coefficients ``alpha``.
    gamma : float
        Kernel width ``gamma > 0``.
    norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
        The p of the ball; the constant bounds the dual q-norm. For
        ``norm=1`` (``q = inf``) the L2 constant is returned (``||.||_inf <=
        ||.||_2``); for ``norm=inf`` (``q = 1``) it is multiplied by
        ``sqrt(n_features)``, or is ``inf`` (a trivial bound) when
        ``n_features`` is not given. See :mod:`sklearn_crosslip.bounds.lp_kernel`.
    n_features : int, default=None
        Input dimension ``d`` (needed for ``norm=inf`` only).

    Returns
    -------
    L : ndarray of shape (n_classes, n_classes)
        ``L[c, j] >= sup_y ||grad f_c(y) - grad f_j(y)||_q``, rounded up; zero diagonal.
    """
    pn = check_norm(norm)
    if pn != 2:
        from . import lp_kernel

        return lp_kernel.global_cross_lipschitz(dual_coef, gamma, pn, n_features)
    A = np.asarray(dual_coef, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"dual_coef must be 2-d; got shape {A.shape}.")
    gamma = _check_gamma(gamma)
    K, n = A.shape
    L = np.zeros((K, K))
    for a in range(K):
        L[a] = np.abs(A - A[a]).sum(axis=1)
    const = math.sqrt(2.0 * gamma / math.e) * (1.0 + 16 * EPS)
    L *= const * (1.0 + gam(n + 8))
    np.fill_diagonal(L, 0.0)
    return L


def proposition21(X_fit, dual_coef, gamma, X, c, R, active=None):
    """Proposition 2.1 alone (all pairs, rounded up), for studying the bound.

    Parameters
    ----------
    X_fit, dual_coef, gamma, X, c, R, active
        As in :func:`local_cross_lipschitz`.

    Returns
    -------
    L : ndarray of shape (m, n_classes)
        Proposition 2.1 for the active entries (NaN elsewhere).
    """
    _, parts = local_cross_lipschitz(
        X_fit, dual_coef, gamma, X, c, R, active, method="local", return_parts=True,
        force_prop21=True,
    )
    return parts["prop21"]


def _check_gamma(gamma):
    g = float(gamma)
    if not (np.isfinite(g) and g > 0):
        raise ValueError(f"gamma must be positive and finite; got {gamma!r}.")
    return g


def _row_sqnorms(X):
    return np.einsum("ij,ij->i", X, X)


def _train_sq_dists(X_fit, fsq, fit_key):
    """``(D, Derr, Dmax)``: squared training distances with an absolute error bound.

    Cached per training set (content hash ``fit_key``), since the certificate
    calls the bound many times with the same model.
    """
    key = (X_fit.shape, fit_key)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    n, d = X_fit.shape
    D = X_fit @ X_fit.T
    D *= -2.0
    D += fsq[:, None]
    D += fsq[None, :]
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    Derr = gam(d + 8) * 4.0 * float(fsq.max(initial=0.0)) + TINY
    res = (D, Derr, float(D.max(initial=0.0)))
    with _cache_lock:
        _cache.clear()  # keep one training set (memory ~ n^2 doubles)
        _cache[key] = res
    return res


def _sq_dists_block(Xb, X_fit, fsq, fnorm_max):
    """``(d2, derr)``: squared distances ``||x_i - x_r||^2`` and a per-row absolute error bound."""
    d = Xb.shape[1]
    xsq = _row_sqnorms(Xb)
    d2 = Xb @ X_fit.T
    d2 *= -2.0
    d2 += xsq[:, None]
    d2 += fsq[None, :]
    np.maximum(d2, 0.0, out=d2)
    # |fl(d2) - d2| <= gamma_{d+4} (||x|| + ||x_r||)^2 (dot products of length d)
    derr = gam(d + 8) * (np.sqrt(xsq) * (1 + 4 * EPS) + fnorm_max) ** 2 + TINY
    return d2, derr


def _active_lists(act):
    """(m, J) int64 active class indices per row, padded with -1 (``J`` = max count)."""
    m = act.shape[0]
    J = int(act.sum(axis=1).max(initial=0))
    jlist = np.full((m, J), -1, dtype=np.int64)
    for i in range(m):
        js = np.flatnonzero(act[i])
        jlist[i, : js.size] = js
    return jlist


def _select_influential(w, A, c, jlist, N):
    """The ``N`` training points with the largest ``max_j |beta_r| w_r`` per point.

    Returns ``sel`` (m, N), sorted, and the (m, n) uint8 membership ``mask``.
    """
    m, n = w.shape
    wsel = np.zeros((m, n))
    for jj in range(jlist.shape[1]):
        jv = jlist[:, jj]
        ok = jv >= 0
        diff = np.abs(A[np.where(ok, jv, 0)] - A[c]) * ok[:, None]
        np.maximum(wsel, diff * w, out=wsel)
    sel = np.argpartition(-wsel, N - 1, axis=1)[:, :N]
    sel.sort(axis=1)
    mask = np.zeros((m, n), dtype=np.uint8)
    np.put_along_axis(mask, sel, 1, axis=1)
    return sel, mask


def _box_distance_ranges(X_fit, lo, hi):
    """Distance range ``[dist(x_r, box), farthest(x_r, box)]`` (rounded outwards)."""
    n, d = X_fit.shape
    if lo is None:
        return np.zeros(n), np.full(n, np.inf)
    near = X_fit - np.clip(X_fit, lo, hi)
    tlo = np.sqrt(_row_sqnorms(near)) * (1.0 - gam(d + 8))
    with np.errstate(invalid="ignore", over="ignore"):
        far = np.maximum(np.abs(X_fit - lo), np.abs(hi - X_fit))
        thi = np.sqrt(_row_sqnorms(far)) * (1.0 + gam(d + 8))
    thi = np.where(np.isfinite(thi), thi, np.inf)
    return np.maximum(tlo, 0.0), thi


def _gradients_with_errors(X_fit, fnorm, A, gamma, Xm, km, krel, dhi):
    """Computed class gradients at the points and bounds on their errors.

    Returns ``G`` (m, K, d), ``G[i, k] = -2 gamma sum_r alpha_kr k_r(x_i) (x_i - x_r)``
    from the computed kernel values ``km``, and ``eta`` (m, K) with
    ``||G_hat[i, k] - G[i, k]||_2 <= eta[i, k]`` (see :func:`_gradient_grams`).
    """
    K, n = A.shape
    G = np.empty((Xm.shape[0], K, Xm.shape[1]))
    for k in range(K):
        W = km * A[k]
        G[:, k, :] = W.sum(axis=1)[:, None] * Xm - W @ X_fit
    G *= -2.0 * gamma
    xn = np.sqrt(_row_sqnorms(Xm)) * (1.0 + 4 * EPS)
    rel = krel[:, None]
    w = rel * (1.0 + rel) * dhi
    w += gam(n + 8) * (1.0 + rel) * (xn[:, None] + fnorm[None, :])
    em = np.empty((Xm.shape[0], K))
    sum_abs_coef_times(A, km, np.ascontiguousarray(w), em)
    em *= 2.0 * gamma * (1.0 + 8 * EPS)
    return G, em


def _gradient_grams(model_key, X_fit, fnorm, A, gamma, Xb, kv, krel, dhi):
    """Gram matrices of the class gradients at the points, with error bounds.

    Returns ``gram`` (mb, K, K) with ``gram[i, a, b] = <g_a(x_i), g_b(x_i)>``
    for the computed gradients ``g_k(x) = -2 gamma sum_r alpha_kr k_r(x) (x - x_r)``
    and ``eta`` (mb, K): ``||g_hat_k - g_k|| <= eta``. The gradient at ``x`` does
    not depend on ``R``, so rows are cached (by content) across the calls of
    one certification.

    Error of ``eta``: the kernel values carry the relative error ``krel``
    (``|k_hat - k| <= krel k_hat``, up to a factor ``1 + krel``), contributing
    ``sum_r |alpha_kr| krel k_hat_r d_r``; the sum ``x sum_r w_r - sum_r w_r x_r``
    has componentwise error ``gamma_{n+3} sum_r |w_r| (|x_l| + |x_rl|)``, whose
    norm is at most ``gamma_{n+3} sum_r |w_r| (||x|| + ||x_r||)``.
    """
    mb = Xb.shape[0]
    K, n = A.shape
    keys = [_digest(Xb[i]) for i in range(mb)]
    gram = np.empty((mb, K, K))
    eta = np.empty((mb, K))
    miss = _grad_cache.fill(model_key, keys, (gram, eta))
    if miss:
        miss = np.asarray(miss)
        G, em = _gradients_with_errors(X_fit, fnorm, A, gamma, Xb[miss], kv[miss],
                                       krel[miss], dhi[miss])
        gm = np.einsum("mkd,mld->mkl", G, G)
        gram[miss] = gm
        eta[miss] = em
        _grad_cache.store(model_key, [(keys[i], (gm[t], em[t])) for t, i in enumerate(miss)],
                          cap=max(1024, GRAD_CACHE_BYTES // (8 * (K * K + K))))
    return gram, eta


def local_cross_lipschitz(
    X_fit, dual_coef, gamma, X, c, R, active=None, lo=None, hi=None, method="local",
    X_fit_sqnorm=None, *, norm=2, return_parts=False, force_prop21=False,
):
    """Upper bounds on ``max_{y in B_p(x, R) cap box} ||grad f_c(y) - grad f_j(y)||_q``.

    The bounds of this module are the case ``p = q = 2``; ``norm`` 1 and inf
    are computed by :func:`sklearn_crosslip.bounds.lp_kernel.local_cross_lipschitz`.

    Parameters
    ----------
    X_fit : ndarray of shape (n_train, n_features)
        Expansion points ``x_r``.
    dual_coef : ndarray of shape (n_classes, n_train)
        Coefficients ``alpha``.
    gamma : float
        Kernel width.
    X : ndarray of shape (m, n_features)
        Centres of the balls.
    c : ndarray of shape (m,) of int
        Predicted class index per point.
    R : ndarray of shape (m,)
        Ball radii (>= 0).
    active : ndarray of shape (m, n_classes) of bool, default=None
        Entries to compute; ``None`` means every ``j != c``.
    lo, hi : ndarray of shape (n_features,) or None
        Input box; ``X`` is assumed inside it.
    method : {"local", "local_fast"}, default="local"
        ``"local"``: Proposition 2.1 over all pairs (O(n^2) per point) capped
        by the cheaper bounds; ``"local_fast"``: Proposition 2.1 over the
        ``FAST_SUBSET_SIZE`` most influential training points plus the
        triangle bound for the rest (see the module docstring).
    X_fit_sqnorm : ndarray of shape (n_train,), default=None
        Precomputed ``||x_r||^2`` (optional).
    norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
        The p of the ball ``B_p(x, R)``; the bound is on the dual q-norm.
    return_parts : bool, default=False
        Also return a dict of the individual bounds (each (m, n_classes),
        NaN where not computed): ``"prop21"`` (all pairs; ``"local"`` only,
        ``inf`` at ``R = 0`` where it is skipped), ``"taylor"`` (mean-value
        bound), ``"fast"``, ``"triangle"``, ``"global"``; for ``norm != 2`` the
        keys of :func:`sklearn_crosslip.bounds.lp_kernel.local_cross_lipschitz`.
    force_prop21 : bool, default=False
        Evaluate Proposition 2.1 over all pairs also at ``R = 0`` (and with
        ``method="local_fast"``); for studying the bounds.

    Returns
    -------
    L : ndarray of shape (m, n_classes)
        Upper bounds for active entries; ``0`` in column ``c``, ``inf`` for
        inactive entries.
    parts : dict
        Only with ``return_parts=True``.
    """
    pn = check_norm(norm)
    X_fit = np.ascontiguousarray(X_fit, dtype=np.float64)
    A = np.ascontiguousarray(dual_coef, dtype=np.float64)
    if X_fit.ndim != 2 or A.ndim != 2 or A.shape[1] != X_fit.shape[0]:
        raise ValueError(
            f"Expected X_fit (n, d) and dual_coef (K, n); got {X_fit.shape} and {A.shape}."
        )
    gamma = _check_gamma(gamma)
    n, d = X_fit.shape
    K = A.shape[0]
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (m, {d}); got {X.shape}.")
    m = X.shape[0]
    c, act = prepare_active(active, c, m, K)
    R = check_radii(R, m)
    method = check_method(method)
    lo, hi = check_box_arrays(lo, hi, d)
    if pn != 2:
        from . import lp_kernel

        return lp_kernel.local_cross_lipschitz(
            X_fit, A, gamma, X, c, R, act, lo, hi, method, X_fit_sqnorm, pn, return_parts
        )

    out = np.full((m, K), np.inf)
    out[np.arange(m), c] = 0.0
    parts = {
        k: np.full((m, K), np.nan)
        for k in ("prop21", "fast", "taylor", "triangle", "global")
    }
    pts = np.flatnonzero(act.any(axis=1))
    if pts.size == 0:
        return (out, parts) if return_parts else out
    fsq = _row_sqnorms(X_fit) if X_fit_sqnorm is None else np.asarray(X_fit_sqnorm, float)
    fnorm_max = math.sqrt(float(fsq.max(initial=0.0)))
    Lglob = global_cross_lipschitz(A, gamma)
    box_tlo, box_thi = _box_distance_ranges(X_fit, lo, hi)
    fit_key = _digest(X_fit)
    model_key = (X_fit.shape, fit_key, _digest(A), gamma)
    fnorm = np.sqrt(fsq) * (1.0 + 4 * EPS)
    N = min(FAST_SUBSET_SIZE, n)
    have_D = 8 * n * n <= DFIT_MAX_BYTES
    if have_D:
        Dfit, Derr, Dmax = _train_sq_dists(X_fit, fsq, fit_key)
    elif method == "local" or force_prop21:
        raise MemoryError(
            f"Proposition 2.1 over all pairs needs the {n} x {n} training distance "
            f"matrix ({8 * n * n / 2**30:.1f} GiB > DFIT_MAX_BYTES) and O(n^2) work per "
            "point and radius; use bound='local_fast' for this model size."
        )
    else:
        # no distance matrix: the split bound (which needs it) is not evaluated
        Dfit, Derr, Dmax = np.zeros((0, 0)), 0.0, 0.0
    two_g = 2.0 * gamma * (1.0 + 2 * EPS)

    for b0 in range(0, pts.size, _BLOCK):
        p = pts[b0:b0 + _BLOCK]
        mb = p.size
        Xb = X[p]
        cb = c[p]
        Rb = R[p]
        actb = act[p]
        jlist = _active_lists(actb)
        J = jlist.shape[1]
        d2, derr = _sq_dists_block(Xb, X_fit, fsq, fnorm_max)
        phi = np.empty((mb, n))
        psi = np.empty((mb, n))
        triangle_terms(d2, derr, Rb, gamma, box_tlo, box_thi, phi, psi)
        empty_mask = np.zeros((0, 0), dtype=np.uint8)
        tri = np.empty((mb, J))
        hess = np.empty((mb, J))
        weighted_abs_sums(phi, psi, A, cb, jlist, empty_mask, tri, hess)
        tri *= two_g * (1.0 + 4 * EPS)
        # sup over the ball of ||hess(f_j - f_c)||_2 <= 2 gamma sum_r |beta_r| psi_r
        hess *= two_g * (1.0 + 4 * EPS)

        # mean-value bound: ||g(y)|| <= ||g(x)|| + R sup_ball ||hess(f_j - f_c)||_2
        kv = np.exp(-gamma * d2)
        # relative error of kv: argument error gamma * derr plus rounding of gamma * d2
        krel = np.expm1(gamma * (derr + 4 * EPS * d2.max(axis=1))) + 8 * EPS
        dhi = np.sqrt(d2 + derr[:, None]) * (1.0 + 4 * EPS)
        gram, eta = _gradient_grams(model_key, X_fit, fnorm, A, gamma, Xb, kv, krel, dhi)
        del kv, dhi
        ar = np.arange(mb)
        jsafe = np.maximum(jlist, 0)
        gcc = gram[ar, cb, cb][:, None]
        gjj = gram[ar[:, None], jsafe, jsafe]
        gcj = gram[ar[:, None], cb[:, None], jsafe]
        sq = gcc + gjj - 2.0 * gcj
        # Gram entries: dot products of length d; then three roundings of the combination
        sq += gam(d + 8) * (np.sqrt(gcc) + np.sqrt(gjj)) ** 2
        sq += 4 * EPS * (gcc + gjj + 2 * np.abs(gcj))
        gdiff = np.sqrt(np.maximum(sq, 0.0)) * (1.0 + 4 * EPS)
        gdiff += (eta[ar, cb][:, None] + eta[ar[:, None], jsafe]) * (1.0 + 4 * EPS)
        taylor = (gdiff + Rb[:, None] * hess) * (1.0 + 4 * EPS)
        best = np.minimum(tri, taylor)

        # split bound: Prop 2.1 on the N most influential points + triangle on the rest,
        # evaluated only where it can win (its triangle part alone is below the best)
        if N < n:
            sel, mask = _select_influential(phi, A, cb, jlist, N)
            rest = np.empty((mb, J))
            weighted_abs_sums(phi, phi, A, cb, jlist, mask, rest, np.empty((mb, J)))
            rest *= two_g * (1.0 + 4 * EPS)
        else:
            sel = np.zeros((mb, 1), dtype=np.int64)  # unused: all points
            rest = np.zeros((mb, J))
        sel = np.ascontiguousarray(sel, dtype=np.int64)
        need = (jlist >= 0) & (rest < best) & have_D
        prop_sub = np.full((mb, J), np.inf)
        rows_need = np.flatnonzero(need.any(axis=1))
        if rows_need.size:
            jl_need = np.where(need[rows_need], jlist[rows_need], -1)
            prop_sub[rows_need] = _prop21(d2[rows_need], derr[rows_need], Dfit, Derr, Dmax,
                                          sel[rows_need] if N < n else sel, N >= n,
                                          Rb[rows_need], gamma, A, cb[rows_need], jl_need)
        fast = np.minimum((prop_sub + rest) * (1.0 + 2 * EPS), taylor)
        best = np.minimum(best, fast)
        full = None
        if method == "local" or force_prop21:
            if N >= n and rows_need.size == mb and np.all(need | (jlist < 0)):
                full = prop_sub
            else:
                # at R = 0 Proposition 2.1 and the mean-value bound are both the
                # exact gradient norm (up to rounding): skip the O(n^2) pass there
                full = np.full((mb, J), np.inf)
                pos = np.flatnonzero((Rb > 0) | force_prop21)
                if pos.size:
                    full[pos] = _prop21(d2[pos], derr[pos], Dfit, Derr, Dmax, sel[pos], True,
                                        Rb[pos], gamma, A, cb[pos], jlist[pos])
            best = np.minimum(best, full)
        rows = np.repeat(np.arange(mb), J)
        jl = jlist.ravel()
        ok = jl >= 0
        rows, jl = rows[ok], jl[ok]
        glob = Lglob[cb[rows], jl]
        out[p[rows], jl] = np.minimum(best.ravel()[ok], glob)
        if return_parts:
            parts["global"][p[rows], jl] = glob
            parts["triangle"][p[rows], jl] = tri.ravel()[ok]
            parts["taylor"][p[rows], jl] = taylor.ravel()[ok]
            parts["fast"][p[rows], jl] = fast.ravel()[ok]
            if full is not None:
                parts["prop21"][p[rows], jl] = full.ravel()[ok]
    return (out, parts) if return_parts else out


def _prop21(d2, derr, Dfit, Derr, Dmax, sel, use_all, R, gamma, A, c, jlist):
    """``2 gamma sqrt(sum + err)`` of :func:`prop21_sums`, rounded up."""
    mb, J = jlist.shape
    s = np.empty((mb, J))
    e = np.empty((mb, J))
    nsel = np.full(mb, sel.shape[1], dtype=np.int64)
    prop21_sums(d2, derr, Dfit, Derr, Dmax, sel, nsel, bool(use_all), R, gamma, A, c, jlist, s, e)
    val = np.sqrt(np.maximum(s + e * (1.0 + 4 * EPS) + 4 * EPS * np.abs(s), 0.0))
    return val * (2.0 * gamma) * (1.0 + 8 * EPS)
