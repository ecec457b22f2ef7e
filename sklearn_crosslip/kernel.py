r"""Gaussian-kernel multinomial logistic regression with Cross-Lipschitz regularisation.

Implements the kernel model of Hein & Andriushchenko (2017), Sections 3, 3.1 and 5:

    f_j(x) = sum_r alpha[j, r] exp(-gamma ||x - x_r||^2),   j = 1..K,

over all ``n`` training points (no intercept), trained by L-BFGS on the mean
cross-entropy plus ``lam`` times a regulariser (eq. 7). For large ``n`` the
expansion runs over ``m`` centres with an intercept,
``f_j(x) = sum_r alpha[j, r] k(x, z_r) + b_j``, still trained on all ``n`` points
(``n_centers``; blocked computations in :mod:`sklearn_crosslip._kernel_blocks`,
objective in :class:`_CenteredObjective`).

Cross-Lipschitz regulariser as a fixed quadratic form
------------------------------------------------------
Omega (eq. 6) is a positive semidefinite quadratic form in ``alpha`` whose
matrix depends only on the training inputs and ``gamma``
(:mod:`sklearn_crosslip.regularizers.kernel` has the derivation): with
``grad f_a(x_i) = -2 gamma sum_r a_r k_ir (x_i - x_r)``,

    sum_i ||grad f_a(x_i)||^2 = a^T Q a,
    Q_rs = 4 gamma^2 sum_i k_ir k_is <x_i - x_r, x_i - x_s>
         = 2 gamma^2 [M Kmat + Kmat M - (Kmat Kmat) o S],   M = Kmat o S,

with ``S`` the squared training distances, and, using
``sum_{l,m} ||g_l - g_m||^2 = 2 K sum_l ||g_l||^2 - 2 ||sum_l g_l||^2``,
``Omega = 2/(n K^2) [K sum_l alpha_l^T Q alpha_l - s^T Q s]`` with ``s = sum_l alpha_l``.

Preconditioned L-BFGS
---------------------
In ``alpha`` the loss has Hessian ``Kmat W Kmat / n``: the squared condition number
of the kernel matrix (about 1e8 on MNIST), and plain L-BFGS needs thousands of
iterations. The fit therefore optimises ``u`` with ``alpha = u U^{-T}``, where
``U^T U = B = a Kmat Kmat + H_reg`` (plus a tiny jitter) approximates the
Hessian: ``a = 0.03 / n`` stands for the loss curvature and
``H_reg = beta Q`` (``beta = 4 lam / (n K)``, the class-diagonal Hessian of
``lam Omega``) or ``2 lam Kmat`` (``'rkhs'``). This is an exact change of
variables. ``B`` costs the same as ``Q`` (``B = beta Q + a Kmat Kmat`` comes out
of the same ``dsyr2k`` + ``dsyrk``), then one Cholesky factorisation and one
triangular solve ``A = U^{-T} Kmat``. Because ``U^{-T} H_reg U^{-1} = I - a A A^T``,
an evaluation needs only ``F = u A`` (training logits) and the stacked product
``[dF; a F] A^T`` for every regulariser: two (K x n)(n x n) products, and no
product with ``Q`` at all. On MNIST the fit converges in 20 to 60 iterations.
"""

import numbers
import time
import warnings
from contextlib import nullcontext

import numpy as np
from scipy.linalg import blas, lapack
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_memory, validate_data
from threadpoolctl import ThreadpoolController

from . import _kernel_blocks as kb
from ._kernel_blocks import cross_sq_dists as _cross_sq_dists
from ._kernel_blocks import row_sqnorms as _row_sqnorms
from ._robustness import RobustnessMixin
from .regularizers.kernel import (
    _symmetrize_upper,
    cross_lipschitz,
    cross_lipschitz_matrix,
    rkhs,
)

__all__ = ["KernelCrossLipClassifier"]

_EPS = np.finfo(np.float64).eps
# Entries of an (m, n) kernel block evaluated at once at predict time (~32 MB).
_CHUNK_ENTRIES = 1 << 22


def _train_sq_dists(X, sqnorm):
    """Symmetric squared distances of the rows of ``X`` (zero diagonal, clipped at 0)."""
    # -2 X X^T via dsyrk (half the work of a product), then fill the lower triangle.
    S = blas.dsyrk(-2.0, np.asfortranarray(X))
    _symmetrize_upper(S)
    S += sqnorm[:, None]
    S += sqnorm[None, :]
    np.maximum(S, 0.0, out=S)
    np.fill_diagonal(S, 0.0)
    return np.ascontiguousarray(S.T)  # symmetric: a free C-ordered view


def _knn_mean_distance(S, n_neighbors, block=256):
    """Mean distance to the ``n_neighbors`` nearest other training points (KNN rule)."""
    n = S.shape[0]
    total = 0.0
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        rows = S[i0:i1].copy()
        rows[np.arange(i1 - i0), np.arange(i0, i1)] = np.inf  # exclude the point itself
        part = np.partition(rows, n_neighbors - 1, axis=1)[:, :n_neighbors]
        total += np.sqrt(part).sum()
    return total / (n * n_neighbors)


def _log_softmax_parts(F):
    """Stable log-sum-exp over classes of logits ``F`` of shape (K, n), and the softmax."""
    Fmax = F.max(axis=0)
    E = np.exp(F - Fmax)
    Z = E.sum(axis=0)
    return Fmax + np.log(Z), E / Z


def _cross_entropy(F, y):
    """Mean cross-entropy of logits ``F`` (K, n) and labels ``y`` (n,), and d/dF."""
    n = F.shape[1]
    idx = np.arange(n)
    lse, P = _log_softmax_parts(F)
    loss = float(np.mean(lse - F[y, idx]))
    P[y, idx] -= 1.0
    P /= n
    return loss, P


# CE curvature assumed by the preconditioner: a = _PRECOND_CURVATURE / n (Hessian of the
# mean cross-entropy in the training logits is (diag(p) - p p^T) / n, at most 1/(4n)).
_PRECOND_CURVATURE = 0.03
# Below this many training points the per-iteration products run on one BLAS thread.
_MIN_N_THREADED = 2000
# n_centers='auto': all training points up to this many, else this many centres.
_AUTO_CENTERS = 10000


def _preconditioner_matrix(S_box, gamma, regularizer, lam, n_classes, a):
    """Kernel matrix and the fixed preconditioner ``B`` of the fit.

    ``B = a Kmat Kmat + H_reg`` approximates the Hessian of eq. (7) in ``alpha``
    (per class): ``Kmat (diag(p) - p p^T)/n Kmat`` for the loss and
    ``H_reg = 2 lam Kmat`` (``'rkhs'``) or ``beta Q`` with ``beta = 4 lam / (n K)``
    (``'cross_lipschitz'``, the class-diagonal part of the Hessian of lam * Omega).

    Returns ``(Kmat (C order), B (Fortran order, symmetric), beta)``; the
    squared distances in ``S_box`` are consumed.
    """
    S = S_box.pop()
    n = S.shape[0]
    if regularizer == "cross_lipschitz" and lam > 0:
        Kmat = np.multiply(S, -gamma)
        np.exp(Kmat, out=Kmat)
        beta = 4.0 * lam / (n * n_classes)
        # B = beta Q + a Kmat^2 in one pass (Section 3.1 form of Omega); S is consumed
        B = cross_lipschitz_matrix(Kmat, S, gamma, scale=beta, kk_weight=a,
                                   overwrite_sq_dists=True)
        return Kmat, B, beta
    Kmat = S
    Kmat *= -gamma
    np.exp(Kmat, out=Kmat)
    B = blas.dsyrk(a, Kmat.T)  # a Kmat Kmat, upper triangle
    if regularizer == "rkhs" and lam > 0:
        for j0 in range(0, n, 512):
            j1 = min(j0 + 512, n)
            B[:j1, j0:j1] += (2.0 * lam) * Kmat[:j1, j0:j1]
    return Kmat, _symmetrize_upper(B), 2.0 * lam


def _cholesky_upper_jittered(B):
    """Upper Cholesky factor ``U`` of ``B + delta I`` (``B^T U`` overwritten in place).

    ``delta`` starts at ``1e-10 max(diag B)`` and grows until the factorisation
    succeeds; it only changes the preconditioner, never the objective.
    Returns ``(U, delta)``; the strict lower triangle of ``U`` holds unrelated values.
    """
    diag = np.diag(B).copy()
    delta = 1e-10 * max(float(diag.max()), np.finfo(np.float64).tiny)
    for _ in range(12):
        np.fill_diagonal(B, diag + delta)
        U, info = lapack.dpotrf(B, lower=0, clean=0, overwrite_a=1)
        if info == 0:
            return U, delta
        _symmetrize_upper(B.T)  # restore the upper triangle from the untouched lower one
        delta *= 100.0
    raise np.linalg.LinAlgError(  # pragma: no cover - B + delta I is positive definite
        "Could not factorise the preconditioner; the training inputs may contain "
        "extreme values."
    )


class _Objective:
    """Eq. (7) in preconditioned coordinates ``u`` with ``alpha = u U^{-T}``.

    ``U^T U = B + delta I`` is the Cholesky factor of the fixed preconditioner
    ``B = a Kmat Kmat + H_reg`` (see :func:`_preconditioner_matrix`); the change of
    variables is exact, so the minimiser in ``alpha`` is unchanged, but L-BFGS
    sees a Hessian close to the identity instead of one with the squared
    condition number of the kernel matrix. With ``A = U^{-T} Kmat``:

    * training logits ``F = alpha Kmat = u A``, loss gradient ``g_F A^T``;
    * ``U^{-T} H_reg U^{-1} = I - a A A^T - delta U^{-T} U^{-1}``, so
      ``D = u - a F A^T`` gives the regulariser's product ``u U^{-T} H_reg U^{-1}``
      plus ``delta alpha U^{-1}``: the minimised objective carries the extra ridge
      term ``delta / 2 ||alpha||^2`` (``delta`` is a jitter of about
      ``1e-10 max(diag B)``, some 1e-15 on MNIST; negligible, and
      ``objective_`` is re-evaluated exactly, see :func:`_exact_objective`).

    One evaluation costs two (K x n)(n x n) products (``u A`` and the stacked
    ``[g_F; a F] A^T``) for every regulariser.
    """

    def __init__(self, A, y, n_classes, regularizer, lam, a, beta, verbose=0):
        self.A = A
        # BLAS threads for the two large products; L-BFGS-B itself runs with one
        # thread (see KernelCrossLipClassifier._solve): None = leave as is.
        self.blas = None
        self.y = y
        self.K = n_classes
        self.n = A.shape[0]
        self.regularizer = regularizer
        self.lam = float(lam) if regularizer != "none" else 0.0
        self.a = a
        self.beta = beta
        self.verbose = verbose
        self.n_evals = 0

    def __call__(self, w):
        K = self.K
        u = w.reshape(K, self.n)
        with self._threads():
            F = u @ self.A  # training logits
        loss, gF = _cross_entropy(F, self.y)
        value = loss
        if self.lam == 0.0:
            with self._threads():
                grad = gF @ self.A.T
        else:
            with self._threads():
                W = np.vstack((gF, self.a * F)) @ self.A.T
            grad = W[:K]
            D = u - W[K:]  # = u U^{-T} H_reg U^{-1}
            if self.regularizer == "rkhs":
                # lam sum_l alpha_l^T Kmat alpha_l = 1/2 <u, D>
                value += 0.5 * np.vdot(u, D)
                grad += D
            else:  # cross_lipschitz, eq. (6): u U^{-T} Q U^{-1} = D / beta
                r, g = cross_lipschitz(u, None, coef_Q=D / self.beta)
                value += self.lam * r
                grad += self.lam * g
        self.n_evals += 1
        if self.verbose > 1 or (self.verbose and self.n_evals % 25 == 0):
            print(f"[KernelCrossLip] eval {self.n_evals}: objective {value:.8g} (loss {loss:.6g})")
        return value, grad.ravel()

    def _threads(self):
        if self.blas is None:
            return nullcontext()
        controller, n_threads = self.blas
        return controller.limit(limits=n_threads, user_api="blas")


def _build_problem(S_box, gamma, y_idx, n_classes, regularizer, lam, verbose=0):
    """Precompute the preconditioned problem of eq. (7).

    Parameters
    ----------
    S_box : list of one ndarray of shape (n, n)
        Training squared distances (C-ordered, symmetric), passed in a list so
        that this function can release them: the array is consumed.
    gamma : float
    y_idx : ndarray of shape (n,)
        Class indices.
    n_classes : int
    regularizer : {'cross_lipschitz', 'rkhs', 'none'}
    lam : float
    verbose : int

    Returns
    -------
    objective : _Objective
        Callable ``w -> (value, gradient)`` in the flattened variable ``u``.
    to_alpha : callable
        Maps ``u`` (K, n) to the dual coefficients ``alpha = u U^{-T}``.
    exact_objective : callable
        ``(u, alpha) -> `` eq. (7) at ``alpha`` (see :func:`_exact_objective`).
    """
    n = S_box[0].shape[0]
    lam = float(lam) if regularizer != "none" else 0.0
    a = _PRECOND_CURVATURE / n
    Kmat, B, beta = _preconditioner_matrix(S_box, gamma, regularizer, lam, n_classes, a)
    U, delta = _cholesky_upper_jittered(B)
    del B
    # A = U^{-T} Kmat, written over Kmat (not needed afterwards)
    A = blas.dtrsm(1.0, U, Kmat.T, lower=0, trans_a=1, overwrite_b=1)
    del Kmat
    obj = _Objective(A, y_idx, n_classes, regularizer, lam, a, beta, verbose=verbose)
    obj.delta = delta  # for tests and diagnostics

    def to_alpha(u):
        # alpha^T = U^{-1} u^T
        at = blas.dtrsm(1.0, U, np.asfortranarray(u.T), lower=0, trans_a=0)
        return np.ascontiguousarray(at.T)

    def exact_objective(u, alpha):
        return _exact_objective(u, alpha, A, U, delta, y_idx, regularizer, lam, a, beta)

    return obj, to_alpha, exact_objective


def _exact_objective(u, alpha, A, U, delta, y_idx, regularizer, lam, a, beta):
    """Eq. (7) at ``alpha = u U^{-T}``, without the jitter term of the preconditioning.

    Uses ``Kmat = U^T A`` and ``alpha B = u U - delta alpha`` (``U^T U = B + delta I``):
    ``alpha Q = (u U - delta alpha - a (F U^T) A) / beta`` for ``'cross_lipschitz'``.
    """
    F = u @ A
    loss, _ = _cross_entropy(F, y_idx)
    if lam == 0.0:
        return loss
    if regularizer == "rkhs":
        return loss + lam * rkhs(alpha, None, coef_K=F)[0]
    uU = blas.dtrmm(1.0, U, np.asfortranarray(u.T), lower=0, trans_a=1).T  # (U^T u^T)^T
    FUt = blas.dtrmm(1.0, U, np.asfortranarray(F.T), lower=0).T  # (U F^T)^T
    alpha_Q = (uU - delta * alpha - a * (FUt @ A)) / beta
    return loss + lam * cross_lipschitz(alpha, None, coef_Q=alpha_Q)[0]


class _CenteredObjective:
    """Eq. (7) for the expansion over centres, in preconditioned coordinates.

    The intercept is handled as the coefficient of one more basis function, the
    constant 1: with ``Ke = [Kn, 1]`` (n, m + 1) and ``theta = [alpha, b]``
    (K, m + 1) the training logits are ``F = theta Ke^T``. The variables are
    ``u`` with ``theta = u U^{-T}``, ``U^T U = B + delta I`` and
    ``B = a Ke^T Ke + H_reg`` (``H_reg`` padded with a zero row and column: the
    intercept is not regularised). Preconditioning the intercept together with
    ``alpha`` matters: ``b`` and the constant part of ``alpha Kn^T`` are nearly
    collinear, and an unpreconditioned intercept costs ten times more L-BFGS
    iterations on MNIST.

    One evaluation: ``theta`` by a triangular solve (``K m^2``), the training
    logits and the loss gradient ``g_F Kn`` (two ``(K x n)(n x m)`` products),
    the regulariser from ``alpha H`` (``2 K m^2``, exact, no cancellation), and
    the gradient in ``u`` by a second triangular solve. The objective is
    evaluated exactly (the jitter ``delta`` only changes the preconditioner).
    """

    def __init__(self, Kn, U, H, y, n_classes, regularizer, lam, verbose=0):
        self.Kn = Kn
        self.U = U
        self.H = H
        self.y = y
        self.K = n_classes
        self.n, self.m = Kn.shape
        self.regularizer = regularizer
        self.lam = float(lam) if regularizer != "none" else 0.0
        self.verbose = verbose
        self.blas = None
        self.n_evals = 0

    def to_coef(self, w):
        """``(alpha, b)`` from the flat variable ``w = u.ravel()``."""
        u = w.reshape(self.K, self.m + 1)
        tt = blas.dtrsm(1.0, self.U, np.asfortranarray(u.T), lower=0, trans_a=0)
        theta = np.ascontiguousarray(tt.T)  # theta = u U^{-T}
        return theta[:, : self.m], theta[:, self.m]

    def __call__(self, w):
        alpha, b = self.to_coef(w)
        with self._threads():
            F = alpha @ self.Kn.T  # training logits (K, n)
        F += b[:, None]
        value, gF = _cross_entropy(F, self.y)
        g = np.empty((self.K, self.m + 1))
        with self._threads():
            g[:, : self.m] = gF @ self.Kn
        g[:, self.m] = gF.sum(axis=1)
        if self.lam > 0.0:
            aH = alpha @ self.H
            if self.regularizer == "rkhs":
                value += self.lam * float(np.vdot(alpha, aH))
                g[:, : self.m] += (2.0 * self.lam) * aH
            else:  # eq. (6) with the mean over the n training points
                r, gr = cross_lipschitz(alpha, None, coef_Q=aH, n_samples=self.n)
                value += self.lam * r
                g[:, : self.m] += self.lam * gr
        # d/du <g, u U^{-T}> = g U^{-1}, i.e. (U^{-T} g^T)^T
        gu = blas.dtrsm(1.0, self.U, np.asfortranarray(g.T), lower=0, trans_a=1)
        self.n_evals += 1
        if self.verbose > 1 or (self.verbose and self.n_evals % 25 == 0):
            print(f"[KernelCrossLip] eval {self.n_evals}: objective {value:.8g}")
        return value, np.ascontiguousarray(gu.T).ravel()

    _threads = _Objective._threads


def _build_centered_problem(pre, y_idx, n_classes, regularizer, lam, verbose=0):
    """Preconditioned objective of the centred fit from ``pre = (Kn, G, H)``.

    ``B = a [[G, s], [s^T, n]] + H_reg`` with ``s = Kn^T 1`` (the constant basis
    function of the intercept, see :class:`_CenteredObjective`) and
    ``H_reg = beta Q`` (``'cross_lipschitz'``, ``beta = 4 lam / (n K)``),
    ``2 lam k(Z, Z)`` (``'rkhs'``) or 0 (``'none'``), ``a = 0.03 / n``, as in
    the expansion over all points (module docstring); then one Cholesky
    factorisation. Nothing of size ``n`` is transformed, so a new ``lam`` costs
    one ``(m + 1) x (m + 1)`` factorisation. ``G`` and ``H`` are not modified
    (they may be cached read-only arrays).
    """
    Kn, G, H = pre
    n, m = Kn.shape
    lam = float(lam) if regularizer != "none" else 0.0
    a = _PRECOND_CURVATURE / n
    B = np.empty((m + 1, m + 1), order="F")
    np.multiply(G, a, out=B[:m, :m])
    B[:m, m] = B[m, :m] = a * Kn.sum(axis=0)
    B[m, m] = a * n
    if lam > 0.0:
        w = 4.0 * lam / (n * n_classes) if regularizer == "cross_lipschitz" else 2.0 * lam
        B[:m, :m] += w * H
    U, delta = _cholesky_upper_jittered(B)
    obj = _CenteredObjective(Kn, U, H if lam > 0.0 else None, y_idx, n_classes,
                             regularizer, lam, verbose=verbose)
    obj.delta = delta
    return obj


class KernelCrossLipClassifier(RobustnessMixin, ClassifierMixin, BaseEstimator):
    """Gaussian-kernel logistic regression with Cross-Lipschitz regularisation.

    Multinomial logistic regression on the kernel expansion
    ``f_j(x) = sum_r alpha_jr exp(-gamma ||x - x_r||^2)`` over all training
    points, trained by L-BFGS on the mean cross-entropy plus ``lam`` times a
    regulariser (Hein & Andriushchenko, 2017, eq. 7). With
    ``regularizer='cross_lipschitz'`` the regulariser is Omega of eq. (6), the
    mean squared difference of the input gradients of all pairs of classes at the
    training points (Section 3.1, "Kernel-CL"); ``'rkhs'`` is the usual squared
    RKHS norm ``sum_j ||f_j||_H^2`` ("Kernel-LogReg"); ``'none'`` fits without
    regularisation. The classifier supports certified robustness radii
    (:meth:`certified_radius`, Theorem 2.1 with Proposition 2.1) and
    box-constrained adversarial perturbations (:meth:`adversarial_perturbation`).

    Parameters
    ----------
    gamma : float or None, default=None
        Kernel parameter of ``k(x, y) = exp(-gamma ||x - y||^2)``; must be > 0.
        ``None`` uses the paper's KNN rule ``gamma = gamma_scale / rho^2`` with
        ``rho`` the mean distance of the training points to their
        ``n_neighbors`` nearest other training points.
    gamma_scale : float, default=1.0
        Factor applied to the KNN rule (the paper uses 0.5, 1, 2, 4). Ignored
        when ``gamma`` is given.
    n_neighbors : int, default=40
        Number of neighbours of the KNN rule (clipped to ``n_samples - 1``).
    regularizer : {'cross_lipschitz', 'rkhs', 'none'}, default='cross_lipschitz'
        Regulariser added to the mean cross-entropy.
    lam : float, default=1e-2
        Regularisation strength ``lambda >= 0`` of eq. (7). Sensible ranges
        differ: 1e-3 to 1 for ``'cross_lipschitz'``, 1e-8 to 1e-5 for
        ``'rkhs'`` (the paper's grids). Ignored for ``'none'``.
    max_iter : int, default=500
        Maximum number of L-BFGS iterations.
    tol : float, default=1e-5
        L-BFGS stops when the largest entry (in absolute value) of the gradient
        in its preconditioned coordinates (see Notes) is below ``tol``, or when
        the relative decrease of the objective falls below about 1e-14. On the
        bundled MNIST subset with ``gamma_scale`` 0.5 to 2 this leaves a relative
        gap to the optimal objective of about 1e-6 (``1e-4``: about 1e-5). Very
        narrow kernels (``gamma_scale=4``) are preconditioned less well and
        converge more slowly.
    n_centers : 'auto', None, int or float, default='auto'
        Number ``m`` of expansion points (centres). ``None``: all training
        points, the model of the paper (``n x n`` matrices, no intercept).
        ``'auto'``: all training points up to 10000 of them, else 10000 centres.
        An int ``m < n_samples``, or a float in (0, 1] (that fraction of the
        training points), selects the expansion over ``m`` centres
        ``f_j(x) = sum_r alpha_jr k(x, z_r) + b_j`` (with an intercept),
        trained on all training points with the loss and eq. (6) exact for this
        model (``n x m`` and ``m x m`` matrices only; see Notes). Ignored when
        ``centers`` is an array.
    centers : {'stratified', 'kmeans'} or array-like of shape (m, n_features), \
            default='stratified'
        How the centres are chosen when ``n_centers`` asks for fewer than all
        training points: ``'stratified'`` draws training points at random,
        per class in proportion to the class sizes; ``'kmeans'`` uses k-means
        centres computed per class (same counts). An array gives the centres
        themselves (finite, at most ``n_samples`` rows).
    random_state : int, RandomState instance or None, default=None
        Seed of the centre choice (only used with centres).
    memory : str, joblib.Memory or None, default=None
        Cache of the work that does not depend on ``lam`` (only used with
        centres): the KNN distance of the gamma rule and the kernel matrix
        with the matrices of the quadratic forms, keyed by a hash of their
        inputs (training points, centres, gamma). A refit with another ``lam``
        (e.g. in :class:`~sklearn.model_selection.GridSearchCV`) then only
        factorises one ``m x m`` matrix and runs L-BFGS; one with another
        ``gamma_scale`` reuses the KNN distance. A str is the cache directory.
        Cached entries take ``8 (n m + 2 m^2)`` bytes on disk each.
    n_jobs : int or None, default=None
        Number of threads for the BLAS operations during ``fit`` and
        prediction. ``None`` leaves the BLAS threading as it is (all cores
        unless limited elsewhere, e.g. inside a joblib worker); ``-1`` means all
        cores.
    verbose : int, default=0
        Print the objective during the optimisation (every 25 evaluations for
        1, every evaluation for 2 or more).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    X_fit_ : ndarray of shape (m, n_features)
        The expansion points, float64: the training inputs (``m = n_samples``)
        or the centres.
    dual_coef_ : ndarray of shape (n_classes, m)
        Expansion coefficients ``alpha``; row ``j`` belongs to ``classes_[j]``
        (two rows also for binary problems).
    intercept_ : ndarray of shape (n_classes,)
        Intercepts ``b_j`` (zeros for the expansion over all training points).
    center_indices_ : ndarray of shape (m,) or None
        Rows of the training set used as centres (``'stratified'``), else None.
    gamma_ : float
        Kernel parameter used.
    n_iter_ : int
        Number of L-BFGS iterations run.
    objective_ : float
        Final value of the training objective (eq. 7).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit`` (only for inputs with string
        column names).

    See Also
    --------
    sklearn_crosslip.MLPCrossLipClassifier : one-hidden-layer network with the
        same regulariser.
    sklearn.svm.SVC : kernel SVM.

    Notes
    -----
    **Optimisation.** L-BFGS runs on preconditioned coordinates ``u`` with
    ``dual_coef_ = u U^{-T}``, where ``U^T U`` approximates the Hessian of the
    objective (see the module docstring); without it the squared condition number
    of the kernel matrix makes L-BFGS need thousands of iterations. The change of
    variables is exact, up to a jitter of about ``1e-10`` times the largest
    diagonal entry of the preconditioner, which adds a negligible ridge
    ``delta / 2 ||dual_coef_||^2`` (about 1e-15 times the squared norm on MNIST)
    to the minimised objective; ``objective_`` is evaluated exactly.

    **Time.** Let ``n`` be the number of training points, ``d`` the number of
    features and ``K`` the number of classes. The precomputation is one
    ``n x n x d`` ``dsyrk`` (squared distances), then, for
    ``'cross_lipschitz'``, one ``dsyrk`` and one ``dsyr2k`` of size ``n`` (the
    matrix of Omega together with the preconditioner, using symmetry), a
    Cholesky factorisation and a triangular solve: about 4.3 ``n^3`` flops
    (2.3 ``n^3`` for ``'rkhs'`` and ``'none'``). Each L-BFGS iteration costs two
    ``(K x n)(n x n)`` products, ``4 K n^2`` flops, for every regulariser.
    Time thus grows like ``n^3`` plus ``iterations * K n^2``. Measured on the
    bundled MNIST subset (n = 5000, d = 784, K = 10) on two shared cores: the
    precomputation takes about 6 s (``'rkhs'``: about 4 s), an iteration about
    45 ms, and the default fit converges in about 30 to 50 iterations, i.e. 8 to
    9 s in total, about 2.2 times ``sklearn.svm.SVC`` at the same gamma.
    Extrapolating, ``n = 30000`` takes about 20 minutes of precomputation and
    1.6 s per iteration on the same two cores.

    **Expansion over centres** (``n_centers``; :doc:`/kernel_scale` has the
    derivation and measurements). The kernel matrix ``Kn`` (``n x m``), the
    ``m x m`` matrices ``G = Kn^T Kn`` and ``Q`` of eq. (6) (a ``dsyrk`` and a
    ``dsyr2k`` per block of training rows, through joblib, so that
    ``joblib.parallel_backend("dask")`` distributes them) cost about
    ``2 n m d + 3 n m^2`` flops; the preconditioner is factorised once
    (``m^3 / 3``) and an L-BFGS evaluation costs two ``(K x n)(n x m)``
    products and ``O(K m^2)``. Memory: ``8 n m`` bytes for ``Kn`` plus three
    ``m x m`` arrays (``24 m^2``) and blocks of about 64 MB; never an
    ``n x n`` array. Measured on MNIST (n = 60000, m = 10000, two cores):
    see :doc:`/kernel_scale`. ``fit`` estimates its peak memory first and
    raises ``MemoryError`` (saying what to change) if it exceeds 90 % of
    ``MemAvailable`` in ``/proc/meminfo``; an estimator whose ``fit`` raised
    keeps no fitted attributes.

    **Memory.** ``fit`` holds at most three ``n x n`` float64 arrays (squared
    distances, kernel matrix and preconditioner), ``24 n^2`` bytes, plus
    column-block temporaries: 0.6 GB for ``n = 5000`` (measured peak of the
    fit: 0.6 GB with tracemalloc, 0.76 GB resident). After the precomputation
    two of them remain. Within 24 GB this allows ``n`` up to about 30000 for
    ``'cross_lipschitz'`` (21.6 GB) and about 37000 for ``'rkhs'`` and
    ``'none'``, which need only two ``n x n`` arrays (``16 n^2`` bytes).
    Prediction evaluates the kernel in blocks of about 32 MB.

    References
    ----------
    M. Hein and M. Andriushchenko. Formal guarantees on the robustness of a
    classifier against adversarial manipulation. NIPS 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_crosslip import KernelCrossLipClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = KernelCrossLipClassifier(lam=1e-2).fit(X[:500] / 16, y[:500])
    >>> clf.score(X[500:1000] / 16, y[500:1000]) > 0.9
    True
    """

    _parameter_constraints = {
        "gamma": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "gamma_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "regularizer": [StrOptions({"cross_lipschitz", "rkhs", "none"})],
        "lam": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_centers": [
            None,
            StrOptions({"auto"}),
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "centers": [StrOptions({"stratified", "kmeans"}), "array-like"],
        "random_state": ["random_state"],
        "memory": [None, str, HasMethods(["cache"])],
        "n_jobs": [None, numbers.Integral],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        gamma=None,
        gamma_scale=1.0,
        n_neighbors=40,
        regularizer="cross_lipschitz",
        lam=1e-2,
        max_iter=500,
        tol=1e-5,
        n_centers="auto",
        centers="stratified",
        random_state=None,
        memory=None,
        n_jobs=None,
        verbose=0,
    ):
        self.gamma = gamma
        self.gamma_scale = gamma_scale
        self.n_neighbors = n_neighbors
        self.regularizer = regularizer
        self.lam = lam
        self.max_iter = max_iter
        self.tol = tol
        self.n_centers = n_centers
        self.centers = centers
        self.random_state = random_state
        self.memory = memory
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _blas_limits(self):
        """Context limiting BLAS threads to ``n_jobs`` (a no-op for ``None``)."""
        from contextlib import nullcontext

        if self.n_jobs is None:
            return nullcontext()
        from joblib import cpu_count
        from threadpoolctl import threadpool_limits

        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive int.")
        n = self.n_jobs if self.n_jobs > 0 else max(cpu_count() + 1 + self.n_jobs, 1)
        return threadpool_limits(limits=int(n), user_api="blas")

    def _fit_sqnorm(self):
        sq = getattr(self, "_X_fit_sqnorm", None)
        if sq is None or sq.shape[0] != self.X_fit_.shape[0]:
            sq = _row_sqnorms(self.X_fit_)
            self._X_fit_sqnorm = sq
        return sq

    def _kernel(self, X):
        """Kernel block ``exp(-gamma_ ||x - x_r||^2)`` of shape (m, n)."""
        S = _cross_sq_dists(X, _row_sqnorms(X), self.X_fit_, self._fit_sqnorm())
        S *= -self.gamma_
        np.exp(S, out=S)
        return S

    def _kernel_blocks(self, X, per_row=1):
        """Yield ``(slice, kernel block)`` for row blocks of ``X`` against ``X_fit_``.

        Blocks hold about ``_CHUNK_ENTRIES / per_row`` kernel entries.
        """
        n = self.X_fit_.shape[0]
        step = max(1, _CHUNK_ENTRIES // max(n * per_row, 1))
        for i0 in range(0, X.shape[0], step):
            sl = slice(i0, min(i0 + step, X.shape[0]))
            yield sl, self._kernel(X[sl])

    # ---------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Fit the kernel expansion by L-BFGS on eq. (7).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs (finite).
        y : array-like of shape (n_samples,)
            Class labels (at least two classes).

        Returns
        -------
        self : KernelCrossLipClassifier
            Fitted estimator.
        """
        self._clear_fitted()
        try:
            return self._fit(X, y)
        except BaseException:
            self._clear_fitted()  # an estimator that raised keeps no fitted attributes
            raise

    def _clear_fitted(self):
        for key in list(vars(self)):
            if (key.endswith("_") and not key.startswith("__")) or key in (
                "_X_fit_sqnorm", "_fit_stats"
            ):
                delattr(self, key)

    def _fit(self, X, y):
        self._validate_params()
        X, y = validate_data(
            self, X, y, dtype=np.float64, order="C", ensure_all_finite=True,
            ensure_min_samples=2,
        )
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                "KernelCrossLipClassifier needs samples of at least 2 classes in y; "
                f"got only one class: {classes[0]!r}. Pass training data that contains "
                "at least two different labels."
            )
        n, K = X.shape[0], classes.shape[0]
        Z, m, exact = self._resolve_centers(X)
        with self._blas_limits():
            if exact:
                kb.check_memory(
                    kb.exact_peak_bytes(n, self.regularizer),
                    f"The expansion over all n={n} training points (n_centers={self.n_centers!r})",
                    "Use fewer centres, e.g. n_centers=10000 (or n_centers='auto').",
                )
                sqnorm = _row_sqnorms(X)
                alpha, gamma, res = self._solve(X, sqnorm, y_idx, K)
                centers, intercept, center_idx = X, np.zeros(K), None
            else:
                kb.check_memory(
                    kb.centered_peak_bytes(n, m, self.regularizer, kb._n_tasks(n)),
                    f"The expansion over m={m} centres with n={n} training points",
                    "Use fewer centres (n_centers) or fewer training points.",
                )
                alpha, intercept, gamma, res, centers, center_idx = self._solve_centered(
                    X, y_idx, K, Z, m
                )
                sqnorm = _row_sqnorms(centers)
        if res.status == 1:
            warnings.warn(
                f"L-BFGS stopped after {res.nit} iterations without reaching tol="
                f"{self.tol} ({res.message}). Increase max_iter or tol.",
                ConvergenceWarning,
            )
        elif res.status != 0 and self.verbose:
            print(f"[KernelCrossLip] L-BFGS ended: {res.message}")
        self.classes_ = classes
        self.X_fit_ = centers
        self._X_fit_sqnorm = sqnorm
        self.dual_coef_ = alpha
        self.intercept_ = intercept
        self.center_indices_ = center_idx
        self.gamma_ = gamma
        self.n_iter_ = int(res.nit)
        self.objective_ = float(res.fun)
        return self

    def _resolve_centers(self, X):
        """``(Z, m, exact)``: user centres (else None), their number, and whether
        the fit is the expansion over all training points without intercept."""
        n, d = X.shape
        if not isinstance(self.centers, str):
            Z = check_array(self.centers, dtype=np.float64, order="C",
                            ensure_all_finite=True, input_name="centers")
            if Z.shape[1] != d:
                raise ValueError(
                    f"centers has {Z.shape[1]} features but X has {d}; pass an array "
                    "of shape (n_centers, n_features)."
                )
            if Z.shape[0] > n:
                raise ValueError(
                    f"centers has {Z.shape[0]} rows, more than the {n} training "
                    "points; pass at most n_samples centres."
                )
            return Z, Z.shape[0], False
        nc = self.n_centers
        if nc is None or (isinstance(nc, str) and n <= _AUTO_CENTERS):
            return None, n, True
        if isinstance(nc, str):  # 'auto' above _AUTO_CENTERS points
            return None, _AUTO_CENTERS, False
        if isinstance(nc, numbers.Integral):
            if nc > n:
                raise ValueError(
                    f"n_centers={nc} is more than the {n} training points; use at most "
                    "n_samples centres (or n_centers=None for all of them)."
                )
            return None, int(nc), False
        return None, max(1, min(n, int(np.ceil(nc * n)))), False

    def _solve_centered(self, X, y_idx, n_classes, Z, m):
        """Choose the centres, precompute (cached by ``memory``) and run L-BFGS.

        Returns ``(alpha, intercept, gamma, result, centres, centre indices)``.
        """
        n = X.shape[0]
        t_start = time.perf_counter()
        memory = check_memory(self.memory)
        center_idx = None
        if Z is None:
            rng = check_random_state(self.random_state)
            if self.centers == "kmeans":
                Z = kb.kmeans_centers(X, y_idx, m, n_classes, rng)
            else:
                center_idx = kb.stratified_centers(y_idx, m, n_classes, rng)
                Z = X[center_idx]
        if self.gamma is None:
            k = min(self.n_neighbors, n - 1)
            rho = memory.cache(kb.knn_rho)(X, k)
            gamma = self._gamma_from_rho(rho, k)
        else:
            gamma = float(self.gamma)
        pre = memory.cache(kb.precompute)(X, Z, gamma, self.regularizer)
        obj = _build_centered_problem(pre, y_idx, n_classes, self.regularizer, self.lam,
                                      self.verbose)
        del pre
        res, t_iter = self._minimize(obj, n_classes * (m + 1), n)
        n_evals = obj.n_evals
        alpha, b = obj.to_coef(res.x)
        del obj
        self._fit_stats = {
            "precompute_s": t_iter[0] - t_start,
            "iteration_s": np.diff(t_iter),
            "n_evals": n_evals,
            "total_s": time.perf_counter() - t_start,
        }
        return alpha, b.copy(), gamma, res, np.ascontiguousarray(Z), center_idx

    def _minimize(self, obj, n_vars, n):
        """L-BFGS-B on ``obj`` from zero; returns ``(result, iteration times)``."""
        # L-BFGS-B's own vector operations are slowed down, badly on a busy
        # machine, by multithreaded BLAS: run them on one thread and give the
        # BLAS threads back only for the large products of each evaluation.
        controller = ThreadpoolController()
        blas_libs = controller.select(user_api="blas").lib_controllers
        n_threads = max([lib.num_threads for lib in blas_libs] + [1])
        obj.blas = (controller, n_threads if n >= _MIN_N_THREADED else 1)
        t_iter = [time.perf_counter()]
        with controller.limit(limits=1, user_api="blas"):
            res = minimize(
                obj,
                np.zeros(n_vars),
                method="L-BFGS-B",
                jac=True,
                callback=lambda xk: t_iter.append(time.perf_counter()),
                options={
                    "maxiter": int(self.max_iter),
                    "maxfun": 2 * int(self.max_iter) + 20,
                    "gtol": float(self.tol),
                    "ftol": 64 * _EPS,
                    "maxls": 50,
                },
            )
        return res, t_iter

    def _gamma_from_data(self, S):
        """``gamma_scale / rho^2`` with rho the mean KNN distance (Section 5)."""
        n = S.shape[0]
        k = min(self.n_neighbors, n - 1)
        return self._gamma_from_rho(_knn_mean_distance(S, k), k)

    def _gamma_from_rho(self, rho, k):
        if not rho > 0:
            raise ValueError(
                "Cannot set gamma by the KNN rule: the mean distance of the training "
                f"points to their {k} nearest neighbours is 0 (duplicated points). Pass "
                "gamma explicitly or use more distinct training points."
            )
        return float(self.gamma_scale) / rho**2

    def _solve(self, X, sqnorm, y_idx, n_classes):
        """Set gamma, precompute the matrices of eq. (7) and run L-BFGS.

        Returns ``(alpha, gamma, scipy result)``.
        """
        n = X.shape[0]
        t_start = time.perf_counter()
        S = _train_sq_dists(X, sqnorm)
        gamma = self._gamma_from_data(S) if self.gamma is None else float(self.gamma)
        S_box = [S]
        del S
        obj, to_alpha, exact_objective = _build_problem(
            S_box, gamma, y_idx, n_classes, self.regularizer, self.lam, self.verbose
        )
        res, t_iter = self._minimize(obj, n_classes * n, n)
        n_evals = obj.n_evals
        del obj
        u = res.x.reshape(n_classes, n)
        alpha = to_alpha(u)
        res.fun = exact_objective(u, alpha)
        # timings for benchmarks and diagnostics (not part of the public API)
        self._fit_stats = {
            "precompute_s": t_iter[0] - t_start,
            "iteration_s": np.diff(t_iter),
            "n_evals": n_evals,
            "total_s": time.perf_counter() - t_start,
        }
        return alpha, gamma, res

    # --------------------------------------------------------------- prediction
    def _logits(self, X):
        """(m, K) float64 decision values ``f_j(x)`` (X already validated)."""
        out = np.empty((X.shape[0], self.dual_coef_.shape[0]))
        with self._blas_limits():
            for sl, Kx in self._kernel_blocks(X):
                out[sl] = Kx @ self.dual_coef_.T
        out += self.intercept_
        return out

    def _logits_error(self, X):
        """(m,) upper bound on the absolute float error of every logit of ``X``.

        The squared distance ``s_r = ||x||^2 + ||x_r||^2 - 2 <x, x_r>`` has an
        absolute error at most ``delta = (d + 4) eps (||x|| + max_r ||x_r||)^2``
        (dot products of length ``d``; clipping at 0 only reduces it). Then
        ``exp(-gamma s_r)`` has relative error at most
        ``expm1(gamma delta + 745 eps) + 4 eps`` (argument rounding; ``exp``
        underflows to 0 beyond 745), and the sum of ``n`` products of terms
        bounded by ``|alpha_jr|`` adds ``(n + 2) eps sum_r |alpha_jr|``. All
        kernel values are at most 1, so the error of ``f_j(x)`` is below
        ``sum_r |alpha_jr| * (that relative error + (n + 2) eps)``, doubled for
        safety. Adding the intercept ``b_j`` rounds once more, by at most
        ``eps |f_j(x) + b_j| <= eps (sum_r |alpha_jr| + |b_j|)`` (plus eps times
        the error above), also doubled.
        """
        n, d = self.X_fit_.shape
        fit_norm_max = float(np.sqrt(self._fit_sqnorm().max()))
        x_norm = np.sqrt(_row_sqnorms(X))
        delta = (d + 4) * _EPS * (x_norm + fit_norm_max) ** 2
        rel = np.expm1(self.gamma_ * delta + 745.0 * _EPS) + 4 * _EPS + (n + 2) * _EPS
        a1 = float(np.abs(self.dual_coef_).sum(axis=1).max())
        b1 = float(np.abs(self.intercept_).max())
        return 2.0 * a1 * rel * (1.0 + _EPS) + 2.0 * _EPS * (a1 + b1) + 1e-300 * n

    def _input_gradients(self, X):
        """(m, K, d) float64 input gradients ``grad f_j(x)`` (X already validated).

        ``grad f_j(x) = -2 gamma sum_r alpha_jr k(x, x_r) (x - x_r)``.
        """
        K = self.dual_coef_.shape[0]
        n, d = self.X_fit_.shape
        G = np.empty((X.shape[0], K, d))
        with self._blas_limits():
            for sl, Kx in self._kernel_blocks(X, per_row=K):
                F = Kx @ self.dual_coef_.T  # (m_c, K)
                W = Kx[:, None, :] * self.dual_coef_[None, :, :]  # (m_c, K, n)
                T = (W.reshape(-1, n) @ self.X_fit_).reshape(Kx.shape[0], K, d)
                T -= F[:, :, None] * X[sl, None, :]
                T *= 2.0 * self.gamma_
                G[sl] = T
        return G

    def _local_cross_lipschitz(self, X, c, R, active=None, lo=None, hi=None, method="local",
                               norm=2):
        """Upper bounds on the local cross-Lipschitz constants (Proposition 2.1).

        ``norm`` is the p of the ball ``B_p(x, R)``; the constant bounds the dual
        q-norm of ``grad f_c - grad f_j`` (Theorem 2.1 for general p).
        """
        from .bounds import kernel_bounds

        return kernel_bounds.local_cross_lipschitz(
            self.X_fit_, self.dual_coef_, self.gamma_, X, c, R, active, lo, hi, method,
            X_fit_sqnorm=self._fit_sqnorm(), norm=norm,
        )

    def _global_cross_lipschitz(self, norm=2):
        """(K, K) global upper bounds on ``sup_y ||grad f_c(y) - grad f_j(y)||_q``."""
        from .bounds import kernel_bounds

        return kernel_bounds.global_cross_lipschitz(self.dual_coef_, self.gamma_, norm=norm)
