"""Regularisers of the one-hidden-layer softplus network, value and gradient.

The network is ``f(x) = W2^T s(W1^T x + b1) + b2`` with ``W1`` of shape (d, U),
``W2`` of shape (U, K) and the softplus ``s(t) = log(1 + exp(a t)) / a``.

Cross-Lipschitz regularisation (eq. 6, Section 3.2)
---------------------------------------------------
At a point ``x_i`` with pre-activation ``z_i = W1^T x_i + b1`` and
``S_i = s'(z_i)``, the input gradient of output ``l`` is
``g_l = W1 (S_i * W2[:, l])``. Since
``sum_{l,m} ||g_l - g_m||^2 = 2K sum_l ||g_l||^2 - 2 ||sum_l g_l||^2``,

    Omega = 1/(n K^2) sum_i sum_{l,m} ||g_l(x_i) - g_m(x_i)||^2
          = c0 sum_i S_i^T M S_i = c0 <M, S^T S>,      c0 = 2 / (n K^2),

with ``M = G * C`` (element-wise), ``G = W1^T W1`` and
``C = K W2 W2^T - v v^T``, ``v = W2 1_K`` (this is the display of Section 3.2,
with the biases inside ``S``). No ``(n, K, d)`` tensor is formed.

Gradient. With ``Q = S M`` and ``P = S^T S``:

- ``dOmega/dS = 2 c0 Q``, so ``dOmega/dZ = 2 c0 Q * s''(Z)`` with
  ``s'' = a s' (1 - s')``; then ``dOmega/dW1 += X^T dOmega/dZ`` and
  ``dOmega/db1 = 1^T dOmega/dZ``;
- through ``G``: ``dOmega/dW1 += 2 c0 W1 (P * C)``;
- through ``C``: ``dOmega/dW2 = 2 c0 (P * G) (K W2 - v 1_K^T)``;
- ``b2`` does not enter Omega.

Cost per evaluation: the two ``n x U^2`` products ``S M`` and ``S^T S`` and two
``d x U^2`` products, on top of the network's own ``n x d x U`` products.
"""

import numpy as np

from .._mlp_numba import (
    cross_lipschitz_hidden_grad,
    frobenius_inner,
    softplus_derivative,
)

__all__ = [
    "cross_lipschitz_penalty",
    "cross_lipschitz_penalty_and_grad",
    "cross_lipschitz_from_derivatives",
    "weight_decay_penalty_and_grad",
]


def _as_dtype_scalar(value, dtype):
    return np.dtype(dtype).type(value)


def cross_lipschitz_from_derivatives(S, W1, W2, softplus_alpha, *, return_grad=True):
    """Cross-Lipschitz Omega (eq. 6) from the hidden derivatives ``S = s'(Z)``.

    Parameters
    ----------
    S : ndarray of shape (n, U)
        ``s'`` at the pre-activations of the ``n`` training points.
    W1 : ndarray of shape (d, U)
        Input-layer weights.
    W2 : ndarray of shape (U, K)
        Output-layer weights.
    softplus_alpha : float
        Softplus slope ``a`` (enters only the gradient, through ``s''``).
    return_grad : bool, default=True
        Also return the gradient pieces.

    Returns
    -------
    omega : float
        The value of eq. (6) (accumulated in float64).
    grad_Z : ndarray of shape (n, U)
        ``dOmega/dZ`` (only with ``return_grad``); the caller turns it into
        gradients for ``W1`` (``X^T grad_Z``) and ``b1`` (column sums).
    grad_W1_direct : ndarray of shape (d, U)
        The part of ``dOmega/dW1`` through ``G = W1^T W1``.
    grad_W2 : ndarray of shape (U, K)
        ``dOmega/dW2``.
    """
    n = S.shape[0]
    K = W2.shape[1]
    dtype = S.dtype
    c0 = 2.0 / (n * K * K)
    G = W1.T @ W1
    v = W2.sum(axis=1)
    C = K * (W2 @ W2.T)
    C -= np.outer(v, v)
    M = G * C
    Q = S @ M
    omega = c0 * frobenius_inner(S, Q)
    if not return_grad:
        return omega
    grad_Z = cross_lipschitz_hidden_grad(
        Q, S, _as_dtype_scalar(softplus_alpha, dtype), _as_dtype_scalar(2.0 * c0, dtype)
    )
    del Q
    P = S.T @ S
    grad_W1_direct = W1 @ (P * C)
    grad_W1_direct *= 2.0 * c0
    grad_W2 = (P * G) @ (K * W2 - v[:, None])
    grad_W2 *= 2.0 * c0
    return omega, grad_Z, grad_W1_direct, grad_W2


def cross_lipschitz_penalty(X, W1, b1, W2, softplus_alpha):
    """Cross-Lipschitz Omega (eq. 6) of the network at the points ``X``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Training points.
    W1 : ndarray of shape (d, U)
    b1 : ndarray of shape (U,)
    W2 : ndarray of shape (U, K)
    softplus_alpha : float

    Returns
    -------
    omega : float
    """
    dtype = W1.dtype
    S = softplus_derivative(X @ W1, b1, _as_dtype_scalar(softplus_alpha, dtype))
    return cross_lipschitz_from_derivatives(S, W1, W2, softplus_alpha, return_grad=False)


def cross_lipschitz_penalty_and_grad(X, W1, b1, W2, softplus_alpha):
    """Cross-Lipschitz Omega (eq. 6) and its gradient with respect to W1, b1, W2.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Training points.
    W1 : ndarray of shape (d, U)
    b1 : ndarray of shape (U,)
    W2 : ndarray of shape (U, K)
    softplus_alpha : float

    Returns
    -------
    omega : float
    grad_W1 : ndarray of shape (d, U)
    grad_b1 : ndarray of shape (U,)
    grad_W2 : ndarray of shape (U, K)
        (The output bias ``b2`` has zero gradient.)
    """
    dtype = W1.dtype
    S = softplus_derivative(X @ W1, b1, _as_dtype_scalar(softplus_alpha, dtype))
    omega, gZ, gW1, gW2 = cross_lipschitz_from_derivatives(S, W1, W2, softplus_alpha)
    gW1 += X.T @ gZ
    return omega, gW1, gZ.sum(axis=0), gW2


def weight_decay_penalty_and_grad(W1, W2):
    """Weight decay: the squared L2 norm of all weights (biases excluded).

    Parameters
    ----------
    W1 : ndarray of shape (d, U)
    W2 : ndarray of shape (U, K)

    Returns
    -------
    omega : float
        ``||W1||_F^2 + ||W2||_F^2``.
    grad_W1 : ndarray of shape (d, U)
    grad_W2 : ndarray of shape (U, K)
    """
    omega = frobenius_inner(W1, W1) + frobenius_inner(W2, W2)
    return omega, 2.0 * W1, 2.0 * W2
