"""Certified training: the cross-entropy sees the Theorem 2.1 guarantee at radius eps.

Network ``f(x) = W2^T s(W1^T x + b1) + b2``, softplus ``s(t) = log(1 + exp(a t)) / a``,
``u_r = W1[:, r]``, ``nu_r = ||u_r||_2``, ``w_j = W2[:, j]``. For a training point
``x`` with true class ``c`` and pre-activations ``z = W1^T x + b1``, Theorem 2.1
with ``R = eps`` certifies ``B_2(x, eps)`` if ``f_c(x) - f_j(x) > eps L_cj(eps)``
for all ``j != c``, where ``L_cj(R)`` bounds ``||grad f_c(y) - grad f_j(y)||_2``
on the ball. Two such bounds, both valid for every ``y`` in ``B_2(x, R)``
(see :mod:`sklearn_crosslip.bounds.mlp_bounds`):

* ``"local_fast"``: ``L_cj = ||W1||_2 ||(w_c - w_j) o s'(z + R nu)||_2`` (``s'`` is
  increasing and ``z_r(y) <= z_r + R nu_r`` on the ball), the library's
  ``method="local_fast"`` bound;
* ``"global"``: ``L_cj = ||W1||_2 ||w_c - w_j||_2`` (``s' < 1``).

The training loss replaces the logits by ``f'_j = f_j + eps L_cj`` for
``j != c`` (``f'_c = f_c``) before the softmax cross-entropy (Tsuzuku et al.
2018; Leino et al. 2021). A point whose *shifted margin*
``f_c - f_j - eps L_cj`` is positive for all ``j`` is certified at radius eps.

Spectral norm. ``||W1||_2`` is evaluated as ``sigma = p^T W1 q`` with unit
vectors ``(p, q)`` from power iteration (warm-started across steps, as in
spectral normalisation); for fixed ``(p, q)`` the derivative is exactly
``p q^T``, the gradient of ``||W1||_2`` at the converged top singular pair.
``sigma <= ||W1||_2`` for any unit ``p, q``, so during training the bound may
be slightly optimistic; :func:`shifted_margins` (the check on a fitted model)
uses the library's rounded-up spectral norm.

Gradients. Write ``D = s'(T)``, ``T = z + eps nu`` (broadcast over points),
``N_ij = sum_r D_ir^2 (w_jr - w_cr)^2`` (``c = c_i``) and ``L_ij = sigma sqrt(N_ij)``.
With the softmax-CE gradient ``dF'`` of the shifted logits, ``dF = dF'`` and
``g_ij = eps dF'_ij`` for ``j != c_i`` (0 for ``j = c_i``) is the gradient
with respect to ``L_ij``. Then, with ``M_ij = g_ij sigma / (2 sqrt(N_ij))``
(0 where ``N_ij = 0``) and ``m_i = sum_j M_ij``:

* ``dsigma = sum_ij g_ij sqrt(N_ij)``, so ``dW1 += dsigma p q^T``;
* ``N = A - 2 B + A[:, c]`` with ``A = D^2 (W2 o W2)``, ``B_ij = sum_r D_ir^2 w_cr w_jr``;
  ``d(D^2)_ir = (M (W2 o W2)^T)_ir - 2 w_{c_i r} (M W2^T)_ir + m_i w_{c_i r}^2``;
* ``dW2 = 2 W2 o (D^2^T M) - 2 P^T M - 2 (D^2 o M W2^T)^T Y + 2 W2 o ((m o D^2)^T Y)``
  with ``P_ir = D_ir^2 w_{c_i r}`` and ``Y`` the one-hot labels;
* ``dT = 2 D d(D^2) o a D (1 - D)`` (``s'' = a s' (1 - s')``), which adds to the
  pre-activation gradient (hence to ``X^T dZ`` and ``db1``) and, through
  ``nu_r = ||u_r||``, gives ``dW1[:, r] += eps (sum_i dT_ir) u_r / nu_r``.

For ``"global"``, ``D = 1`` and only the ``W2`` and ``sigma`` terms remain. The
``(n, K)`` and ``(n, U) x (U, K)`` work is done in float64 (cost ``O(n U K)``,
small against the network's ``O(n d U)``).
"""

import numpy as np

from .._mlp_numba import softplus_derivative

__all__ = [
    "CERTIFIED_BOUNDS",
    "power_iteration",
    "certified_shift",
    "certified_loss_and_grad",
    "shifted_margins",
]

CERTIFIED_BOUNDS = ("local_fast", "global")


def power_iteration(W, q=None, n_iter=1, tol=None, random_state=None):
    """Top singular pair of ``W`` by power iteration.

    Parameters
    ----------
    W : ndarray of shape (d, U)
    q : ndarray of shape (U,) or None
        Starting right vector (warm start); ``None`` draws a random one.
    n_iter : int, default=1
        (Maximum) iterations, each one ``W q`` and ``W^T p``.
    tol : float or None, default=None
        Stop early once the estimate ``||W q||`` changes by at most ``tol``
        relative; ``None`` runs ``n_iter`` iterations.
    random_state : int, numpy.random.Generator or None
        For the random start.

    Returns
    -------
    sigma : float
        ``p^T W q`` (at most ``||W||_2``).
    p : ndarray of shape (d,)
    q : ndarray of shape (U,)
        Unit vectors, float64.
    """
    W64 = np.asarray(W)
    if q is None:
        rng = np.random.default_rng(random_state)
        q = rng.standard_normal(W64.shape[1])
    q = np.asarray(q, dtype=np.float64)
    q = q / max(np.linalg.norm(q), 1e-300)
    p = None
    prev = -np.inf
    for _ in range(max(1, int(n_iter))):
        p = (W64 @ q.astype(W64.dtype)).astype(np.float64)
        est = np.linalg.norm(p)
        p /= max(est, 1e-300)
        q = (p.astype(W64.dtype) @ W64).astype(np.float64)
        q /= max(np.linalg.norm(q), 1e-300)
        if tol is not None and abs(est - prev) <= tol * est:
            break
        prev = est
    sigma = float(p @ (W64 @ q.astype(W64.dtype)).astype(np.float64))
    return sigma, p, q


def _bound_terms(D2, W2, y):
    """``N_ij = sum_r D2_ir (w_jr - w_{y_i} r)^2`` (float64, clipped at 0)."""
    W2sq = W2 * W2
    A = D2 @ W2sq
    Wc = W2.T[y]  # (n, U): w_{c_i}
    B = (D2 * Wc) @ W2
    rows = np.arange(y.shape[0])
    N = A - 2.0 * B + A[rows, y][:, None]
    np.maximum(N, 0.0, out=N)
    N[rows, y] = 0.0
    return N


def certified_shift(Z, b1, W1, W2, y, softplus_alpha, eps, sigma, bound="local_fast"):
    """Bounds ``L_cj(eps)`` of every training point (the logit shift is ``eps * L``).

    Parameters
    ----------
    Z : ndarray of shape (n, U)
        ``X @ W1`` (pre-activations without bias), not modified.
    b1 : ndarray of shape (U,)
    W1 : ndarray of shape (d, U)
    W2 : ndarray of shape (U, K)
    y : ndarray of shape (n,) of int
        True class indices.
    softplus_alpha : float
    eps : float
        Radius ``>= 0``.
    sigma : float
        The value used for ``||W1||_2``.
    bound : {"local_fast", "global"}, default="local_fast"

    Returns
    -------
    L : ndarray of shape (n, K), float64
        ``L[i, y_i] = 0``.
    D : ndarray of shape (n, U) or None
        ``s'(z + eps nu)`` in the dtype of ``Z`` (``None`` for ``"global"``).
    nu : ndarray of shape (U,) or None
        Column norms of ``W1`` (``None`` for ``"global"``).
    N : ndarray of shape (n, K)
        ``(L / sigma)^2``.
    """
    W2_64 = np.asarray(W2, dtype=np.float64)
    if bound == "global":
        D = nu = None
        D2 = np.ones((Z.shape[0], W2.shape[0]))
    elif bound == "local_fast":
        nu = np.sqrt(np.einsum("du,du->u", W1, W1))
        dt = Z.dtype.type
        D = softplus_derivative(Z, (b1 + dt(eps) * nu).astype(Z.dtype), dt(softplus_alpha),
                                streaming=True)
        D2 = D.astype(np.float64)
        D2 *= D2
    else:
        raise ValueError(f"bound must be one of {CERTIFIED_BOUNDS}; got {bound!r}.")
    N = _bound_terms(D2, W2_64, y)
    return sigma * np.sqrt(N), D, nu, N


def certified_loss_and_grad(F, Z, b1, W1, W2, y, softplus_alpha, eps, p, q,
                            bound="local_fast"):
    """Cross-entropy of the shifted logits and its gradient (see the module docstring).

    Parameters
    ----------
    F : ndarray of shape (n, K), float64
        Logits ``f(x_i)`` (with ``b2``).
    Z : ndarray of shape (n, U)
        ``X @ W1`` (without bias), in the training dtype; not modified.
    b1, W1, W2 : ndarray
        Parameters in the training dtype.
    y : ndarray of shape (n,) of int
    softplus_alpha : float
    eps : float
        Radius ``>= 0``.
    p, q : ndarray of shape (d,), (U,)
        Unit vectors; ``sigma = p^T W1 q`` stands for ``||W1||_2``.
    bound : {"local_fast", "global"}

    Returns
    -------
    value : float
        Mean cross-entropy of the shifted logits.
    dF : ndarray of shape (n, K), float64
        Gradient with respect to the logits (already divided by ``n``).
    dT : ndarray of shape (n, U) or None
        Gradient with respect to ``T = z + eps nu`` (add to the pre-activation
        gradient); ``None`` for ``"global"`` or ``eps = 0``.
    gW1 : ndarray of shape (d, U) or None
        Direct ``W1`` gradient (through ``sigma`` and ``nu``); ``None`` if ``eps = 0``.
    gW2 : ndarray of shape (U, K) or None
        ``W2`` gradient through the bound; ``None`` if ``eps = 0``.
    """
    n = F.shape[0]
    rows = np.arange(n)
    F = np.asarray(F, dtype=np.float64)
    if eps > 0:
        sigma = float(p @ (W1 @ q.astype(W1.dtype)).astype(np.float64))
        L, D, nu, N = certified_shift(Z, b1, W1, W2, y, softplus_alpha, eps, sigma, bound)
        Fs = F + eps * L
    else:
        Fs = F
    # softmax cross-entropy with log-sum-exp shifted by the max
    Fmax = Fs.max(axis=1, keepdims=True)
    E = np.exp(Fs - Fmax)
    se = E.sum(axis=1)
    value = float(np.mean(np.log(se) + Fmax[:, 0] - Fs[rows, y]))
    E /= se[:, None]
    E[rows, y] -= 1.0
    dF = E / n
    if not eps > 0:
        return value, dF, None, None, None
    g = eps * dF
    g[rows, y] = 0.0
    rootN = np.sqrt(N)
    dsigma = float(np.sum(g * rootN))
    with np.errstate(divide="ignore", invalid="ignore"):
        M = np.where(rootN > 0, g * sigma / (2.0 * rootN), 0.0)
    msum = M.sum(axis=1)
    W2_64 = np.asarray(W2, dtype=np.float64)
    W2sq = W2_64 * W2_64
    Wc = W2_64.T[y]  # (n, U)
    Y = np.zeros_like(F)
    Y[rows, y] = 1.0
    MW = M @ W2_64.T  # (n, U)
    if D is None:
        D2 = np.ones((n, W2.shape[0]))
    else:
        D2 = D.astype(np.float64)
        D2 *= D2
    # N = A - 2 B + A[:, c]
    gW2 = 2.0 * W2_64 * (D2.T @ M)
    gW2 -= 2.0 * (D2 * Wc).T @ M
    gW2 -= 2.0 * (D2 * MW).T @ Y
    gW2 += 2.0 * W2_64 * ((msum[:, None] * D2).T @ Y)
    dt = W1.dtype
    # the d x U terms in the training dtype (rank one, and a column scaling)
    gW1 = np.multiply.outer((dsigma * p).astype(dt), q.astype(dt))
    dT = None
    if D is not None:
        gD2 = M @ W2sq.T - 2.0 * Wc * MW + msum[:, None] * (Wc * Wc)
        D64 = D.astype(np.float64)
        dT64 = 2.0 * D64 * gD2 * (softplus_alpha * D64 * (1.0 - D64))
        colsum = dT64.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(nu > 0, eps * colsum / nu, 0.0)
        gW1 += W1 * scale.astype(dt)
        dT = dT64.astype(Z.dtype)
    return value, dF, dT, gW1, gW2.astype(dt)


def shifted_margins(estimator, X, y, eps, bound="local_fast"):
    """Shifted margins ``f_c(x) - f_j(x) - eps L_cj(eps)`` of a fitted network, float64.

    ``c`` is the true class; ``||W1||_2`` is the library's rounded-up upper bound
    (:func:`sklearn_crosslip.bounds._common.spectral_norm_upper`). A point with
    a positive minimum over ``j != c`` is correctly classified and, by
    Theorem 2.1 with ``R = eps``, certified at radius ``eps`` (up to the
    float64 rounding of this evaluation, which the library's certificate
    accounts for).

    Parameters
    ----------
    estimator : MLPCrossLipClassifier
        Fitted network.
    X : array-like of shape (m, n_features)
    y : array-like of shape (m,)
        True labels (values of ``estimator.classes_``).
    eps : float
        Radius ``>= 0``.
    bound : {"local_fast", "global"}, default="local_fast"

    Returns
    -------
    margins : ndarray of shape (m,)
        ``min_{j != c}`` of the shifted margin.
    """
    from ..bounds._common import spectral_norm_upper

    X = estimator._validate_robustness_input(X)
    y = np.asarray(y)
    idx = np.searchsorted(estimator.classes_, y)
    idx = np.clip(idx, 0, len(estimator.classes_) - 1)
    if y.shape != (X.shape[0],) or not np.all(estimator.classes_[idx] == y):
        raise ValueError("y must hold one label of classes_ per row of X.")
    eps = float(eps)
    if not eps >= 0:
        raise ValueError(f"eps must be a non-negative number; got {eps!r}.")
    W1, W2 = estimator.coefs_
    b1 = estimator.intercepts_[0]
    F = estimator._logits(X)
    sigma = spectral_norm_upper(W1)
    L, _, _, _ = certified_shift(X @ W1, b1, W1, W2, idx, estimator.softplus_alpha, eps, sigma,
                                 bound)
    rows = np.arange(X.shape[0])
    S = F[rows, idx][:, None] - F - eps * L
    S[rows, idx] = np.inf
    return S.min(axis=1)
