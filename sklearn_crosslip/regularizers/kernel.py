r"""Regularisers of the Gaussian-kernel classifier (Hein & Andriushchenko, 2017).

The model is ``f_l(x) = sum_r alpha[l, r] k(x, x_r)`` with the Gaussian kernel
``k(x, y) = exp(-gamma ||x - y||^2)`` over the ``n`` training points and
``alpha`` of shape (K, n). Every regulariser is a pure function returning
``(value, gradient)`` with the gradient of shape (K, n).

``'rkhs'``
    ``sum_l ||f_l||_H^2 = sum_l alpha_l^T Kmat alpha_l`` (the usual kernel
    regulariser, Section 3.1), gradient ``2 alpha Kmat``.
``'cross_lipschitz'``
    ``Omega`` of eq. (6) in its kernel form (Section 3.1)::

        Omega = 1/(n K^2) sum_i sum_{l,m} ||grad f_l(x_i) - grad f_m(x_i)||^2.

``'none'``
    zero.

Derivation of the fast Cross-Lipschitz form
-------------------------------------------
With ``k_ir = k(x_i, x_r)`` the input gradient of ``f_a = sum_r a_r k(., x_r)``
at a training point is ``grad f_a(x_i) = -2 gamma sum_r a_r k_ir (x_i - x_r)``, so

    sum_i ||grad f_a(x_i)||^2 = a^T Q a,
    Q_rs = 4 gamma^2 sum_i k_ir k_is <x_i - x_r, x_i - x_s>.

``Q`` is positive semidefinite (a sum of Gram matrices) and depends only on the
training inputs and ``gamma``. With ``P = X X^T`` and ``D = diag(||x_i||^2)``
this is ``Q = 4 gamma^2 [Kmat D Kmat - A - A^T + (Kmat Kmat) o P]`` with
``A = (Kmat o P)^T Kmat`` (``o`` = elementwise product). We evaluate an
equivalent, better conditioned form: with the squared distances
``S_ir = ||x_i - x_r||^2`` one has
``<x_i - x_r, x_i - x_s> = (S_ir + S_is - S_rs) / 2``, hence, with
``M = Kmat o S`` (symmetric),

    Q = 2 gamma^2 [M Kmat + Kmat M - (Kmat Kmat) o S].

The diagonal ``Q_rr = 4 gamma^2 sum_i k_ir^2 S_ir`` involves no cancellation, and
all terms are of the size of the (small) distances between neighbours instead
of ``||x_i||^2``. ``M Kmat + Kmat M`` is one BLAS ``dsyr2k`` and ``Kmat Kmat`` one
``dsyrk``: 1.5 matrix products of size n^3 in total, computed once per fit.

For the class sums we use
``sum_{l,m} ||g_l - g_m||^2 = 2 K sum_l ||g_l||^2 - 2 ||sum_l g_l||^2``, so with
``s = sum_l alpha_l``

    Omega(alpha) = 2 / (n K^2) [K sum_l alpha_l^T Q alpha_l - s^T Q s],
    grad Omega   = 4 / (n K^2) [K alpha Q - 1 (s Q)],

and ``s Q = sum_l (alpha Q)_l``: one (K x n)(n x n) product per evaluation.

Expansion over centres
----------------------
For ``f_l(x) = sum_{r <= m} alpha[l, r] k(x, z_r) + b_l`` over ``m`` centres
``z_r`` the same algebra holds with the ``m x m`` matrix
``Q_rs = 4 gamma^2 sum_{i <= n} k(x_i, z_r) k(x_i, z_s) <x_i - z_r, x_i - z_s>``
(the sum still runs over all ``n`` training points; the intercept ``b`` has no
input gradient); :mod:`sklearn_crosslip._kernel_blocks` computes it in row
blocks, and :func:`cross_lipschitz` takes ``n_samples=n``.
"""

import numpy as np
from scipy.linalg import blas

__all__ = [
    "REGULARIZERS",
    "cross_lipschitz",
    "cross_lipschitz_matrix",
    "no_regularizer",
    "rkhs",
]

REGULARIZERS = ("cross_lipschitz", "rkhs", "none")


def _symmetrize_upper(C, block=512):
    """Copy the upper triangle of the square array ``C`` into its lower triangle, in place."""
    n = C.shape[0]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        # rows i0:i1, columns < i0 (strictly lower blocks) from the upper blocks
        C[i0:i1, :i0] = C[:i0, i0:i1].T
        D = C[i0:i1, i0:i1]
        iu = np.triu_indices(i1 - i0, 1)
        D[iu[1], iu[0]] = D[iu]
    return C


def cross_lipschitz_matrix(Kmat, sq_dists, gamma, *, scale=1.0, kk_weight=0.0,
                           overwrite_sq_dists=False, block=512):
    """Matrix ``Q`` of the Cross-Lipschitz quadratic form (Section 3.1, eq. 6).

    ``Q`` satisfies ``sum_i ||grad f_a(x_i)||_2^2 = a^T Q a`` for every
    ``f_a = sum_r a_r k(., x_r)``; see the module docstring for the derivation
    ``Q = 2 gamma^2 [M Kmat + Kmat M - (Kmat Kmat) o S]`` with ``M = Kmat o S``.
    Optionally returns ``scale * Q + kk_weight * Kmat Kmat`` at the same cost
    (used to build the preconditioner of the fit).

    Parameters
    ----------
    Kmat : ndarray of shape (n, n)
        Symmetric Gaussian kernel matrix of the training points, float64.
    sq_dists : ndarray of shape (n, n)
        Symmetric squared distances ``||x_i - x_r||^2`` (zero diagonal), float64.
    gamma : float
        Kernel parameter ``gamma > 0``.
    scale : float, default=1.0
        Factor applied to ``Q``.
    kk_weight : float, default=0.0
        Weight of ``Kmat Kmat`` added to the result.
    overwrite_sq_dists : bool, default=False
        If True, ``sq_dists`` is overwritten (saves one n x n buffer).
    block : int, default=512
        Column block size of the elementwise steps (bounds temporary memory).

    Returns
    -------
    Q : ndarray of shape (n, n)
        Symmetric float64 matrix in Fortran order (as it is symmetric, ``Q.T``
        is the same matrix in C order); positive semidefinite for
        ``scale, kk_weight >= 0``.
    """
    n = Kmat.shape[0]
    # Both inputs are symmetric: their transposes are free Fortran-ordered views.
    KF = np.asfortranarray(np.asarray(Kmat, dtype=np.float64).T)
    SF = np.asarray(sq_dists, dtype=np.float64).T
    if not overwrite_sq_dists or not SF.flags.f_contiguous:
        SF = np.array(SF, order="F", copy=True)
    c = 2.0 * gamma * gamma * scale
    # C <- Kmat Kmat (upper triangle, BLAS dsyrk), then C <- (Kmat Kmat) o (kk_weight - c S)
    C = blas.dsyrk(1.0, KF)
    for j0 in range(0, n, block):
        j1 = min(j0 + block, n)
        C[: j1, j0:j1] *= kk_weight - c * SF[: j1, j0:j1]
    # M = Kmat o S, written over S (no longer needed afterwards)
    np.multiply(SF, KF, out=SF)
    # C <- c (M Kmat^T + Kmat M^T) + C  (upper triangle, dsyr2k); Kmat, M symmetric
    C = blas.dsyr2k(c, SF, KF, beta=1.0, c=C, overwrite_c=1)
    del SF
    return _symmetrize_upper(C)


def cross_lipschitz(coef, Q, coef_Q=None, n_samples=None):
    """Cross-Lipschitz regulariser Omega (eq. 6) of a kernel expansion and its gradient.

    Parameters
    ----------
    coef : ndarray of shape (K, m)
        Expansion coefficients ``alpha`` (``m = n`` for the expansion over all
        training points, else the number of centres).
    Q : ndarray of shape (m, m)
        Matrix of the quadratic form: :func:`cross_lipschitz_matrix`, or its
        version over centres (:mod:`sklearn_crosslip._kernel_blocks`).
    coef_Q : ndarray of shape (K, m), default=None
        ``coef @ Q`` if already computed.
    n_samples : int, default=None
        Number ``n`` of training points in the mean of eq. (6); ``None`` means
        ``m`` (the expansion over all training points).

    Returns
    -------
    value : float
        ``Omega(alpha) = 2/(n K^2) [K sum_l alpha_l^T Q alpha_l - s^T Q s]``.
    grad : ndarray of shape (K, m)
        ``4/(n K^2) [K alpha Q - 1 (s Q)]``.
    """
    K, n = coef.shape
    if n_samples is not None:
        n = int(n_samples)
    if coef_Q is None:
        coef_Q = coef @ Q
    s = coef.sum(axis=0)
    sQ = coef_Q.sum(axis=0)  # = s Q by linearity
    value = 2.0 / (n * K * K) * (K * np.vdot(coef, coef_Q) - np.dot(s, sQ))
    grad = (4.0 / (n * K * K)) * (K * coef_Q - sQ[None, :])
    return float(value), grad


def rkhs(coef, Kmat, coef_K=None):
    """Squared RKHS norm ``sum_l alpha_l^T Kmat alpha_l`` and its gradient.

    Parameters
    ----------
    coef : ndarray of shape (K, n)
        Expansion coefficients ``alpha``.
    Kmat : ndarray of shape (n, n)
        Symmetric kernel matrix of the training points.
    coef_K : ndarray of shape (K, n), default=None
        ``coef @ Kmat`` (the training logits) if already computed.

    Returns
    -------
    value : float
    grad : ndarray of shape (K, n)
        ``2 alpha Kmat``.
    """
    if coef_K is None:
        coef_K = coef @ Kmat
    return float(np.vdot(coef, coef_K)), 2.0 * coef_K


def no_regularizer(coef):
    """The zero regulariser: returns ``(0.0, zeros_like(coef))``."""
    return 0.0, np.zeros_like(coef)
