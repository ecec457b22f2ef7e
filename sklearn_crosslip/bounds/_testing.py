"""Test helpers for the certificates: tiny protocol models, literal references, attacks.

Not part of the public API. The fake models implement the protocol of
:mod:`sklearn_crosslip._robustness` directly on given weights, so the bounds
can be tested independently of training.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .._robustness import RobustnessMixin
from . import kernel_bounds, mlp_bounds

__all__ = [
    "FakeMLP",
    "FakeKernel",
    "prop22_reference",
    "prop21_reference",
    "prop21_reference_numpy",
    "strongest_attack",
]

_U = np.finfo(np.float64).eps / 2


def _gam(k):
    return k * _U / (1 - k * _U)


class FakeMLP(RobustnessMixin, ClassifierMixin, BaseEstimator):
    """One-hidden-layer softplus network with given weights (protocol only)."""

    def __init__(self, W1=None, b1=None, W2=None, b2=None, softplus_alpha=10.0):
        self.W1, self.b1, self.W2, self.b2 = W1, b1, W2, b2
        self.softplus_alpha = softplus_alpha
        if W1 is not None:
            self.coefs_ = [np.asarray(W1, float), np.asarray(W2, float)]
            self.intercepts_ = [np.asarray(b1, float), np.asarray(b2, float)]
            self.classes_ = np.arange(np.asarray(W2).shape[1])
            self.n_features_in_ = np.asarray(W1).shape[0]

    @classmethod
    def random(cls, d, U, K, seed, scale=1.0, alpha=10.0):
        rng = np.random.default_rng(seed)
        W1 = rng.normal(size=(d, U)) * scale / np.sqrt(d)
        b1 = rng.normal(size=U) * 0.3
        W2 = rng.normal(size=(U, K)) * 2.0 / np.sqrt(U)
        b2 = rng.normal(size=K) * 0.1
        return cls(W1, b1, W2, b2, alpha)

    def fit(self, X=None, y=None):
        """Weights are given at construction; nothing to fit."""
        return self

    def _z(self, X):
        return X @ self.coefs_[0] + self.intercepts_[0]

    def _logits(self, X):
        a = self.softplus_alpha
        H = np.logaddexp(0.0, a * self._z(X)) / a
        return H @ self.coefs_[1] + self.intercepts_[1]

    def _logits_error(self, X):
        W1, W2 = self.coefs_
        b1, b2 = self.intercepts_
        d, U = W1.shape
        a = self.softplus_alpha
        Z = self._z(X)
        H = np.logaddexp(0.0, a * Z) / a
        ez = _gam(d + 1) * (np.abs(X) @ np.abs(W1) + np.abs(b1))
        eh = ez + 8 * _U * (np.abs(H) + np.abs(Z) + ez)
        ef = _gam(U + 1) * ((np.abs(H) + eh) @ np.abs(W2) + np.abs(b2)) + eh @ np.abs(W2)
        return 2.0 * ef.max(axis=1)

    def predict(self, X):
        return self.classes_[np.argmax(self._logits(np.asarray(X, float)), axis=1)]

    def _input_gradients(self, X):
        W1, W2 = self.coefs_
        a = self.softplus_alpha
        S = 1.0 / (1.0 + np.exp(-a * self._z(X)))
        return np.einsum("mu,uk,du->mkd", S, W2, W1)

    def _local_cross_lipschitz(self, X, c, R, active=None, lo=None, hi=None, method="local",
                               norm=2):
        return mlp_bounds.local_cross_lipschitz(
            self.coefs_[0], self.intercepts_[0], self.coefs_[1], self.softplus_alpha,
            X, c, R, active, lo, hi, method, norm=norm,
        )

    def _global_cross_lipschitz(self, norm=2):
        return mlp_bounds.global_cross_lipschitz(self.coefs_[0], self.coefs_[1], norm=norm)


class FakeKernel(RobustnessMixin, ClassifierMixin, BaseEstimator):
    """Gaussian-kernel expansion ``f_j(x) = sum_r alpha_jr exp(-gamma ||x - x_r||^2)``."""

    def __init__(self, X_fit=None, dual_coef=None, gamma=1.0):
        self.X_fit, self.dual_coef, self.gamma = X_fit, dual_coef, gamma
        if X_fit is not None:
            self.X_fit_ = np.asarray(X_fit, float)
            self.dual_coef_ = np.asarray(dual_coef, float)
            self.gamma_ = float(gamma)
            self.classes_ = np.arange(self.dual_coef_.shape[0])
            self.n_features_in_ = self.X_fit_.shape[1]

    @classmethod
    def random(cls, n, d, K, seed, gamma=None, scale=1.0):
        rng = np.random.default_rng(seed)
        Xf = rng.uniform(0, 1, size=(n, d))
        if gamma is None:
            gamma = 1.0 / (0.1 * d)
        A = rng.normal(size=(K, n)) * scale
        return cls(Xf, A, gamma)

    def fit(self, X=None, y=None):
        """Coefficients are given at construction; nothing to fit."""
        return self

    def _k(self, X):
        D = ((X[:, None, :] - self.X_fit_[None, :, :]) ** 2).sum(-1)
        return np.exp(-self.gamma_ * D)

    def _logits(self, X):
        return self._k(X) @ self.dual_coef_.T

    def _logits_error(self, X):
        n, d = self.X_fit_.shape
        rel = np.expm1(self.gamma_ * 4 * d * _U * 64 + 745 * 2 * _U) + (n + 8) * 2 * _U
        a1 = np.abs(self.dual_coef_).sum(axis=1).max()
        return np.full(X.shape[0], 2.0 * a1 * rel)

    def predict(self, X):
        return self.classes_[np.argmax(self._logits(np.asarray(X, float)), axis=1)]

    def _input_gradients(self, X):
        k = self._k(X)  # (m, n)
        diff = X[:, None, :] - self.X_fit_[None, :, :]  # (m, n, d)
        return -2 * self.gamma_ * np.einsum("kn,mn,mnd->mkd", self.dual_coef_, k, diff)

    def _local_cross_lipschitz(self, X, c, R, active=None, lo=None, hi=None, method="local",
                               norm=2):
        return kernel_bounds.local_cross_lipschitz(
            self.X_fit_, self.dual_coef_, self.gamma_, X, c, R, active, lo, hi, method,
            norm=norm,
        )

    def _global_cross_lipschitz(self, norm=2):
        return kernel_bounds.global_cross_lipschitz(self.dual_coef_, self.gamma_, norm=norm)


def prop22_reference(W1, b1, W2, a, x, c, j, R):
    """Literal Proposition 2.2 (with biases) for one point and one class pair."""
    U = W1.shape[1]
    z = x @ W1 + b1
    un = np.sqrt((W1 ** 2).sum(0))
    sd = lambda t: 1.0 / (1.0 + np.exp(-a * t))  # noqa: E731
    zp, zm = sd(z + R * un), sd(z - R * un)
    tot = 0.0
    for r in range(U):
        for m in range(U):
            beta = (W2[r, j] - W2[r, c]) * (W2[m, j] - W2[m, c]) * np.dot(W1[:, r], W1[:, m])
            tot += max(beta, 0) * zp[r] * zp[m] + min(beta, 0) * zm[r] * zm[m]
    return np.sqrt(max(tot, 0.0))


def prop21_reference(X_fit, A, gamma, x, c, j, R):
    """Literal Proposition 2.1 (pairs split by the sign of beta_r beta_s)."""
    beta = A[j] - A[c]
    n = X_fit.shape[0]
    tot = 0.0
    for r in range(n):
        for s in range(n):
            xr, xs = X_fit[r], X_fit[s]
            a = np.dot(x - xr, x - xs)
            S = np.linalg.norm(2 * x - xr - xs)
            M = min(S / 2, R)
            Ab = np.sum((x - xr) ** 2) + np.sum((x - xs) ** 2)
            e_hi = np.exp(-gamma * (Ab - 2 * M * S + 2 * M * M))
            e_lo = np.exp(-gamma * (Ab + 2 * R * S + 2 * R * R))
            b = beta[r] * beta[s]
            if b >= 0:
                I = a + R * S + R * R  # noqa: E741
                tot += b * (max(I, 0) * e_hi + min(I, 0) * e_lo)
            else:
                I = a - M * S + M * M  # noqa: E741
                tot += b * (max(I, 0) * e_lo + min(I, 0) * e_hi)
    return 2 * gamma * np.sqrt(max(tot, 0.0))


def prop21_reference_numpy(X_fit, A, gamma, x, c, j, R):
    """Proposition 2.1 with numpy broadcasting (same formula as :func:`prop21_reference`)."""
    beta = A[j] - A[c]
    E = x[None, :] - X_fit  # x - x_r
    a = E @ E.T
    dr2 = np.einsum("rd,rd->r", E, E)
    S = np.sqrt(np.maximum(dr2[:, None] + dr2[None, :] + 2 * a, 0.0))
    M = np.minimum(S / 2, R)
    Ab = dr2[:, None] + dr2[None, :]
    e_hi = np.exp(-gamma * (Ab - 2 * M * S + 2 * M * M))
    e_lo = np.exp(-gamma * (Ab + 2 * R * S + 2 * R * R))
    b = np.outer(beta, beta)
    Ihi = a + R * S + R * R
    Ilo = a - M * S + M * M
    Tp = np.maximum(Ihi, 0) * e_hi + np.minimum(Ihi, 0) * e_lo
    Tm = np.maximum(Ilo, 0) * e_lo + np.minimum(Ilo, 0) * e_hi
    tot = np.sum(np.where(b >= 0, b * Tp, b * Tm))
    return 2 * gamma * np.sqrt(max(tot, 0.0))


def _project_ball_box(x, y, r, lo, hi):
    """Approximately project ``y`` onto ``B(x, r) cap box`` (alternating, ends in the ball)."""
    for _ in range(5 if lo is not None else 1):
        if lo is not None:
            y = np.clip(y, lo, hi)
        d = y - x
        nd = np.linalg.norm(d)
        if nd > r:
            y = x + d * (r / nd)
    return y


def strongest_attack(est, x, r, *, rng, lo=None, hi=None, n_restarts=8, n_steps=60,
                     n_random=400):
    """Search ``B(x, r) (cap box)`` for a point classified differently from ``x``.

    Combines iterated linearisation towards every class (DeepFool-like steps),
    projected gradient ascent on ``max_j f_j - f_c`` with random restarts, and
    random sampling (uniform in the ball and on its sphere). Every candidate
    is projected into the closed ball of radius ``r``; callers pass
    ``r`` slightly below the certified radius.

    Returns
    -------
    y : ndarray of shape (d,) or None
        A differently classified point found in the ball, or None.
    best_gap : float
        Largest ``max_{j != c} f_j(y) - f_c(y)`` seen (>= 0 means a flip).
    """
    x = np.asarray(x, float)
    d = x.size
    F0 = est._logits(x[None])[0]
    c = int(np.argmax(F0))
    best = -np.inf

    def gap(Y):
        F = est._logits(np.atleast_2d(Y))
        Fo = F.copy()
        Fo[:, c] = -np.inf
        return Fo.max(axis=1) - F[:, c], np.argmax(F, axis=1)

    def check(Y):
        nonlocal best
        Y = np.atleast_2d(Y)
        ok = np.linalg.norm(Y - x, axis=1) <= r
        if lo is not None:
            ok &= np.all((Y >= lo) & (Y <= hi), axis=1)
        Y = Y[ok]
        if Y.shape[0] == 0:
            return None
        gp, pred = gap(Y)
        best = max(best, gp.max())
        bad = np.flatnonzero(pred != c)
        return Y[bad[0]] if bad.size else None

    # random sampling in the ball and on the sphere
    Gs = rng.normal(size=(n_random, d))
    Gs /= np.linalg.norm(Gs, axis=1, keepdims=True)
    rad = r * np.concatenate([rng.uniform(size=n_random // 2) ** (1.0 / d),
                              np.full(n_random - n_random // 2, 1.0)])
    Y = np.array([_project_ball_box(x, x + g * t, r, lo, hi) for g, t in zip(Gs, rad)])
    hit = check(Y)
    if hit is not None:
        return hit, best
    K = F0.size
    # iterated linearisation towards each class
    for j in range(K):
        if j == c:
            continue
        y = x.copy()
        for _ in range(20):
            F = est._logits(y[None])[0]
            Gr = est._input_gradients(y[None])[0]
            g = Gr[j] - Gr[c]
            gn = np.dot(g, g)
            if gn == 0:
                break
            step = (F[c] - F[j]) / gn * 1.02 + 1e-12
            y = _project_ball_box(x, y + step * g, r, lo, hi)
            hit = check(y)
            if hit is not None:
                return hit, best
    # projected gradient ascent on the gap, random restarts
    for k in range(n_restarts):
        if k == 0:
            y = x.copy()
        else:
            g0 = rng.normal(size=d)
            y = _project_ball_box(x, x + g0 / np.linalg.norm(g0) * r * rng.uniform(), r, lo, hi)
        step = r / 4
        for _ in range(n_steps):
            F = est._logits(y[None])[0]
            Fo = F.copy()
            Fo[c] = -np.inf
            j = int(np.argmax(Fo))
            Gr = est._input_gradients(y[None])[0]
            g = Gr[j] - Gr[c]
            gn = np.linalg.norm(g)
            if gn == 0:
                break
            y = _project_ball_box(x, y + step * g / gn, r, lo, hi)
            hit = check(y)
            if hit is not None:
                return hit, best
            step *= 0.93
    return None, best
