"""Element-wise numba kernels for the one-hidden-layer softplus network.

The matrix products of the network live in BLAS (numpy); these kernels do the
element-wise passes over the ``(n, U)`` hidden layer. Each kernel is a pure
``@njit`` function over a range of rows (``*_rows``), run directly for small
arrays and through a ``parallel=True`` / ``prange`` wrapper over points for
large ones. Two size thresholds, from measurements on the 2-core reference
machine: the ``exp``/``log1p`` kernels of the float64 model (prediction,
gradients, certificates) gain from threads above ``PARALLEL_MIN_SIZE``
entries; the cheap streaming passes of the training loop, which alternate
with multi-threaded BLAS calls, ran 0-40 % *slower* with threads at MNIST
size (the OpenMP workers spin-wait and compete with the BLAS threads, and tiny
fits became 10x slower), so they use threads only above
``PARALLEL_MIN_SIZE_STREAMING`` entries (e.g. on larger machines/batches).
No fastmath; scalars are passed in the dtype of the arrays, so the kernels run
in float32 and float64 alike.

The activation is the softplus of Section 2.3,
``s(t) = log(1 + exp(a t)) / a`` with ``s'(t) = sigmoid(a t)`` and
``s''(t) = a sigmoid(a t) sigmoid(-a t)``. Every exponential is taken of a
non-positive number, so nothing overflows for large ``|a t|``.
"""

import numpy as np
from numba import njit, prange

__all__ = [
    "softplus_forward_inplace",
    "softplus_and_derivative",
    "softplus_derivative",
    "backprop_hidden_inplace",
    "cross_lipschitz_hidden_grad",
    "frobenius_inner",
    "adam_step_inplace",
    "nesterov_step_inplace",
]

# Arrays with at least this many entries use the parallel wrappers (see above).
PARALLEL_MIN_SIZE = 1 << 18
PARALLEL_MIN_SIZE_STREAMING = 1 << 23


def _parallel(A):
    return A.size >= PARALLEL_MIN_SIZE


def _parallel_streaming(A):
    return A.size >= PARALLEL_MIN_SIZE_STREAMING


# ---------------------------------------------------------------- row kernels
@njit(cache=True)
def _bias_and_exponent_rows(Z, b, a, E, start, stop):
    # Z <- Z + b ; E <- -|a (Z + b)|  (the argument of the only exponential)
    for i in range(start, stop):
        for r in range(Z.shape[1]):
            z = Z[i, r] + b[r]
            Z[i, r] = z
            E[i, r] = -abs(a * z)


@njit(cache=True)
def _softplus_finish_rows(Z, E, L, a, S, start, stop):
    # with e = exp(-|a z|) in E and log1p(e) in L:
    # s(z) = max(z, 0) + log1p(e) / a ;  s'(z) = 1 / (1 + e) if z > 0 else e / (1 + e)
    one = Z.dtype.type(1.0)
    zero = Z.dtype.type(0.0)
    for i in range(start, stop):
        for r in range(Z.shape[1]):
            z = Z[i, r]
            e = E[i, r]
            inv = one / (one + e)
            Z[i, r] = max(z, zero) + L[i, r] / a
            S[i, r] = inv if z > zero else e * inv


@njit(cache=True)
def _softplus_and_derivative_rows(Z, b, a, H, S, start, stop):
    # libm exp/log1p per entry: the accurate float64 path of prediction and certificates
    one = Z.dtype.type(1.0)
    for i in range(start, stop):
        for r in range(Z.shape[1]):
            z = Z[i, r] + b[r]
            t = a * z
            if t > 0:
                e = np.exp(-t)
                H[i, r] = z + np.log1p(e) / a
                S[i, r] = one / (one + e)
            else:
                e = np.exp(t)
                H[i, r] = np.log1p(e) / a
                S[i, r] = e / (one + e)


@njit(cache=True)
def _softplus_derivative_rows(Z, b, a, S, start, stop):
    one = Z.dtype.type(1.0)
    for i in range(start, stop):
        for r in range(Z.shape[1]):
            t = a * (Z[i, r] + b[r])
            if t > 0:
                S[i, r] = one / (one + np.exp(-t))
            else:
                e = np.exp(t)
                S[i, r] = e / (one + e)


@njit(cache=True)
def _backprop_rows(dH, S, start, stop):
    for i in range(start, stop):
        for r in range(dH.shape[1]):
            dH[i, r] = dH[i, r] * S[i, r]


@njit(cache=True)
def _backprop_reg_rows(dH, S, gZ, lam, start, stop):
    for i in range(start, stop):
        for r in range(dH.shape[1]):
            dH[i, r] = dH[i, r] * S[i, r] + lam * gZ[i, r]


@njit(cache=True)
def _cl_hidden_grad_rows(Q, S, ca, gZ, start, stop):
    # gZ = ca * Q * s'(1 - s')  with ca = coef * a, i.e. coef * Q * s''
    one = S.dtype.type(1.0)
    for i in range(start, stop):
        for r in range(Q.shape[1]):
            s = S[i, r]
            gZ[i, r] = ca * Q[i, r] * s * (one - s)


@njit(cache=True)
def _frobenius_rows(A, B, out, start, stop):
    for i in range(start, stop):
        acc = 0.0
        for r in range(A.shape[1]):
            acc += np.float64(A[i, r]) * np.float64(B[i, r])
        out[i] = acc


@njit(cache=True)
def _adam_range(p, g, m1, m2, step, beta1, beta2, eps, start, stop):
    # Adam (Kingma & Ba), bias correction folded into ``step``
    for k in range(start, stop):
        gk = np.float64(g[k])
        m1[k] = beta1 * m1[k] + (1.0 - beta1) * gk
        m2[k] = beta2 * m2[k] + (1.0 - beta2) * gk * gk
        p[k] -= step * m1[k] / (np.sqrt(m2[k]) + eps)


@njit(cache=True)
def _nesterov_range(p, g, v, lr, momentum, start, stop):
    # scikit-learn's Nesterov form: v <- mu v - lr g ; p <- p + mu v - lr g
    for k in range(start, stop):
        gk = np.float64(g[k])
        v[k] = momentum * v[k] - lr * gk
        p[k] += momentum * v[k] - lr * gk


@njit(cache=True)
def _ema_range(e, p, decay, start, stop):
    # exponential moving average of the weights: e <- decay e + (1 - decay) p
    for k in range(start, stop):
        e[k] = decay * e[k] + (1.0 - decay) * p[k]


# ---------------------------------------------------------- parallel wrappers
@njit(cache=True, parallel=True)
def _bias_and_exponent_par(Z, b, a, E):
    for i in prange(Z.shape[0]):
        _bias_and_exponent_rows(Z, b, a, E, i, i + 1)


@njit(cache=True, parallel=True)
def _softplus_finish_par(Z, E, L, a, S):
    for i in prange(Z.shape[0]):
        _softplus_finish_rows(Z, E, L, a, S, i, i + 1)


@njit(cache=True, parallel=True)
def _softplus_and_derivative_par(Z, b, a, H, S):
    for i in prange(Z.shape[0]):
        _softplus_and_derivative_rows(Z, b, a, H, S, i, i + 1)


@njit(cache=True, parallel=True)
def _softplus_derivative_par(Z, b, a, S):
    for i in prange(Z.shape[0]):
        _softplus_derivative_rows(Z, b, a, S, i, i + 1)


@njit(cache=True, parallel=True)
def _backprop_par(dH, S):
    for i in prange(dH.shape[0]):
        _backprop_rows(dH, S, i, i + 1)


@njit(cache=True, parallel=True)
def _backprop_reg_par(dH, S, gZ, lam):
    for i in prange(dH.shape[0]):
        _backprop_reg_rows(dH, S, gZ, lam, i, i + 1)


@njit(cache=True, parallel=True)
def _cl_hidden_grad_par(Q, S, ca, gZ):
    for i in prange(Q.shape[0]):
        _cl_hidden_grad_rows(Q, S, ca, gZ, i, i + 1)


@njit(cache=True, parallel=True)
def _frobenius_par(A, B, out):
    for i in prange(A.shape[0]):
        _frobenius_rows(A, B, out, i, i + 1)


_CHUNK = 1 << 14


@njit(cache=True, parallel=True)
def _adam_par(p, g, m1, m2, step, beta1, beta2, eps):
    n = p.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _adam_range(p, g, m1, m2, step, beta1, beta2, eps, c * _CHUNK, min(n, (c + 1) * _CHUNK))


@njit(cache=True, parallel=True)
def _nesterov_par(p, g, v, lr, momentum):
    n = p.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _nesterov_range(p, g, v, lr, momentum, c * _CHUNK, min(n, (c + 1) * _CHUNK))


@njit(cache=True, parallel=True)
def _ema_par(e, p, decay):
    n = p.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _ema_range(e, p, decay, c * _CHUNK, min(n, (c + 1) * _CHUNK))


# -------------------------------------------------------------- Python layer
def softplus_forward_inplace(Z, b, a, S):
    """Add the bias, then overwrite ``Z`` with ``s(Z + b)``; write ``s'(Z + b)`` to ``S``.

    The training path: the exponential and ``log1p`` are numpy's (SIMD)
    ufuncs on ``e = exp(-|a z|) <= 1``, so nothing overflows; the other
    element-wise work runs in the numba kernels.

    Parameters
    ----------
    Z : ndarray of shape (n, U), C-contiguous
        Pre-activations without bias (``X @ W1``); overwritten by the hidden
        activations ``H = s(Z + b)``.
    b : ndarray of shape (U,)
        Hidden bias ``b1``.
    a : scalar of the dtype of ``Z``
        Softplus slope ``alpha > 0``.
    S : ndarray of shape (n, U), C-contiguous
        Output: ``sigmoid(a (Z + b))``.
    """
    if _parallel_streaming(Z):
        _bias_and_exponent_par(Z, b, a, S)
    else:
        _bias_and_exponent_rows(Z, b, a, S, 0, Z.shape[0])
    np.exp(S, out=S)
    L = np.log1p(S)
    if _parallel_streaming(Z):
        _softplus_finish_par(Z, S, L, a, S)
    else:
        _softplus_finish_rows(Z, S, L, a, S, 0, Z.shape[0])


def softplus_and_derivative(Z, b, a):
    """Return ``(s(Z + b), s'(Z + b))`` as new arrays (``Z`` is not modified).

    Uses libm ``exp``/``log1p`` per entry (a few ulps), the path of the
    float64 model used for prediction and certificates.

    Parameters
    ----------
    Z : ndarray of shape (n, U)
        Pre-activations without bias.
    b : ndarray of shape (U,)
        Hidden bias.
    a : scalar of the dtype of ``Z``
        Softplus slope.

    Returns
    -------
    H, S : ndarray of shape (n, U)
        Activations and their derivatives.
    """
    H = np.empty_like(Z)
    S = np.empty_like(Z)
    if _parallel(Z):
        _softplus_and_derivative_par(Z, b, a, H, S)
    else:
        _softplus_and_derivative_rows(Z, b, a, H, S, 0, Z.shape[0])
    return H, S


def softplus_derivative(Z, b, a, streaming=False):
    """Return ``s'(Z + b) = sigmoid(a (Z + b))``, computed without overflow.

    Parameters
    ----------
    Z : ndarray of shape (n, U)
        Pre-activations without bias.
    b : ndarray of shape (U,)
        Hidden bias.
    a : scalar of the dtype of ``Z``
        Softplus slope.
    streaming : bool, default=False
        Called inside the training loop (between multi-threaded BLAS calls):
        use threads only above ``PARALLEL_MIN_SIZE_STREAMING`` entries.

    Returns
    -------
    S : ndarray of shape (n, U)
    """
    S = np.empty_like(Z)
    if (_parallel_streaming(Z) if streaming else _parallel(Z)):
        _softplus_derivative_par(Z, b, a, S)
    else:
        _softplus_derivative_rows(Z, b, a, S, 0, Z.shape[0])
    return S


def backprop_hidden_inplace(dH, S, gZ=None, lam=None):
    """``dH <- dH * S (+ lam * gZ)``: gradient through ``s'`` plus a regulariser term.

    Parameters
    ----------
    dH : ndarray of shape (n, U)
        Gradient of the loss with respect to the hidden activations;
        overwritten with the gradient with respect to the pre-activations.
    S : ndarray of shape (n, U)
        ``s'`` at the pre-activations.
    gZ : ndarray of shape (n, U) or None
        Gradient of the regulariser with respect to the pre-activations.
    lam : scalar of the dtype of ``dH``
        Regularisation weight (with ``gZ``).
    """
    par = _parallel_streaming(dH)
    if gZ is None:
        if par:
            _backprop_par(dH, S)
        else:
            _backprop_rows(dH, S, 0, dH.shape[0])
    elif par:
        _backprop_reg_par(dH, S, gZ, lam)
    else:
        _backprop_reg_rows(dH, S, gZ, lam, 0, dH.shape[0])


def cross_lipschitz_hidden_grad(Q, S, a, coef):
    """Gradient of Omega with respect to the pre-activations: ``coef * Q * s''``.

    ``s''(z) = a s'(z) (1 - s'(z))``; with ``Q = S M`` and ``coef = 2 c0`` this is
    ``dOmega/dZ`` of the Section 3.2 form (see ``regularizers.mlp``).

    Parameters
    ----------
    Q : ndarray of shape (n, U)
        ``S @ (G * C)``.
    S : ndarray of shape (n, U)
        ``s'`` at the pre-activations.
    a : scalar of the dtype of ``S``
        Softplus slope.
    coef : scalar of the dtype of ``S``
        Constant factor.

    Returns
    -------
    gZ : ndarray of shape (n, U)
    """
    gZ = np.empty_like(Q)
    ca = coef * a
    if _parallel_streaming(Q):
        _cl_hidden_grad_par(Q, S, ca, gZ)
    else:
        _cl_hidden_grad_rows(Q, S, ca, gZ, 0, Q.shape[0])
    return gZ


def frobenius_inner(A, B):
    """``sum(A * B)`` accumulated in float64 (row sums, then their sum).

    Parameters
    ----------
    A, B : ndarray of shape (n, U)

    Returns
    -------
    value : float
    """
    rows = np.empty(A.shape[0], dtype=np.float64)
    if _parallel_streaming(A):
        _frobenius_par(A, B, rows)
    else:
        _frobenius_rows(A, B, rows, 0, A.shape[0])
    return float(rows.sum())


def adam_step_inplace(p, g, m1, m2, step, beta1, beta2, eps):
    """One Adam update of the float64 parameters ``p`` (all arrays 1-d views).

    Parameters
    ----------
    p, m1, m2 : ndarray of shape (N,), float64
        Parameters, first and second moment estimates (updated in place).
    g : ndarray of shape (N,)
        Gradient (float32 or float64).
    step : float
        Learning rate times the bias correction ``sqrt(1 - beta2^t) / (1 - beta1^t)``.
    beta1, beta2, eps : float
        Adam constants.
    """
    if _parallel_streaming(p):
        _adam_par(p, g, m1, m2, step, beta1, beta2, eps)
    else:
        _adam_range(p, g, m1, m2, step, beta1, beta2, eps, 0, p.shape[0])


def nesterov_step_inplace(p, g, v, lr, momentum):
    """One SGD step with Nesterov momentum (scikit-learn's form), in place.

    Parameters
    ----------
    p, v : ndarray of shape (N,), float64
        Parameters and velocities (updated in place).
    g : ndarray of shape (N,)
        Gradient (float32 or float64).
    lr, momentum : float
        Step size and momentum.
    """
    if _parallel_streaming(p):
        _nesterov_par(p, g, v, lr, momentum)
    else:
        _nesterov_range(p, g, v, lr, momentum, 0, p.shape[0])


def ema_update_inplace(e, p, decay):
    """One update of an exponential moving average of the weights, in place.

    ``e <- decay * e + (1 - decay) * p`` (Polyak averaging in its exponential
    form).

    Parameters
    ----------
    e : ndarray of shape (N,), float64
        The running average (updated in place).
    p : ndarray of shape (N,), float64
        The current parameters.
    decay : float
        Weight of the old average, in [0, 1].
    """
    if _parallel_streaming(p):
        _ema_par(e, p, decay)
    else:
        _ema_range(e, p, decay, 0, p.shape[0])
