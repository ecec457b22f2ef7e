"""Certified radii in the L1 and L-infinity norms (Theorem 2.1 for general p, issue 10).

Literal slow references for every new bound, Monte-Carlo / vertex sampling of
the balls, attacks in the same norm (the library's own and a PGD with random
restarts written here), orderings and bad input.
"""

import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.datasets import make_classification

from sklearn_crosslip import certified_accuracy
from sklearn_crosslip.bounds import kernel_bounds, mlp_bounds, theorem21
from sklearn_crosslip.bounds._testing import FakeKernel, FakeMLP

INF = np.inf
NORMS = [1.0, INF]


def _qnorm(v, p, axis=-1):
    """Dual norm of ``v`` for the ball norm ``p``."""
    q = {1.0: INF, 2.0: 2.0, INF: 1.0}[p]
    return np.linalg.norm(v, ord=q, axis=axis)


def _pnorm(v, p, axis=-1):
    return np.linalg.norm(v, ord=p, axis=axis)


def _mlp(seed, d, K=4):
    return FakeMLP.random(d, 3 * d, K, seed, scale=2.0, alpha=10.0)


def _kernel(seed, d, K=3, n=30):
    return FakeKernel.random(n, d, K, seed, gamma=2.0 / d, scale=1.0)


def _points(seed, d, m):
    return np.random.default_rng(1000 + seed).uniform(0.1, 0.9, size=(m, d))


MODELS = [("mlp", _mlp), ("kernel", _kernel)]


# --------------------------------------------------------------------------- references
def _moves(x, R, lo, hi):
    """Largest move up / down of each coordinate in B_p(x, R) cap box (p in {1, inf})."""
    up = np.full(x.size, float(R))
    dn = np.full(x.size, float(R))
    if lo is not None:
        up = np.minimum(up, hi - x)
        dn = np.minimum(dn, x - lo)
    return up, dn


def mlp_coord_reference(W1, b1, W2, a, x, c, j, R, p, lo=None, hi=None):
    """Literal network bound of lp_mlp: midpoint + L2 part (p = inf), per-coordinate (p = 1)."""
    d, U = W1.shape
    z = x @ W1 + b1
    zp = np.empty(U)
    zm = np.empty(U)
    for r in range(U):
        u = W1[:, r]
        qn = np.abs(u).sum() if p == INF else np.abs(u).max()
        top, bot = R * qn, R * qn
        if lo is not None:
            if p == INF:
                up, dn = _moves(x, R, lo, hi)
            else:
                up, dn = hi - x, x - lo
            top = min(top, sum(max(u[i] * up[i], -u[i] * dn[i]) for i in range(d)))
            bot = min(bot, sum(max(-u[i] * up[i], u[i] * dn[i]) for i in range(d)))
        zp[r], zm[r] = z[r] + top, z[r] - bot
    hs, ls = expit(a * zp), expit(a * zm)
    v = W2[:, c] - W2[:, j]
    B = np.empty(d)
    for i in range(d):
        hi_i = sum(max(W1[i, r] * v[r] * ls[r], W1[i, r] * v[r] * hs[r]) for r in range(U))
        lo_i = sum(min(W1[i, r] * v[r] * ls[r], W1[i, r] * v[r] * hs[r]) for r in range(U))
        B[i] = max(hi_i, -lo_i)
    per_coord = B.sum() if p == INF else B.max()
    # midpoint + L2 part with |G| (cancellation between hidden units)
    mu, rho = (hs + ls) / 2, (hs - ls) / 2
    mid = np.linalg.norm(W1 @ (v * mu), ord=1 if p == INF else INF)
    quad = sum(abs(v[r] * v[m] * (W1[:, r] @ W1[:, m])) * rho[r] * rho[m]
               for r in range(U) for m in range(U))
    mixed = mid + (np.sqrt(d) if p == INF else 1.0) * np.sqrt(quad)
    return mixed if p == INF else per_coord


def mlp_global_reference(W1, W2, c, j, p):
    """Per coordinate max(sum (W1_ir v_r)^+, sum (W1_ir v_r)^-), reduced by the dual norm."""
    d, U = W1.shape
    v = W2[:, c] - W2[:, j]
    B = np.empty(d)
    for i in range(d):
        t = W1[i] * v
        B[i] = max(t[t > 0].sum(), -t[t < 0].sum())
    return B.sum() if p == INF else B.max()


def _kernel_k_ranges(Xf, gamma, x, R, p, lo, hi):
    """Literal ranges of k_r(y) over B_p(x, R) cap box (lp_kernel docstring)."""
    n, d = Xf.shape
    up, dn = _moves(x, R, lo, hi)
    kmin, kmax = np.empty(n), np.empty(n)
    for r in range(n):
        delta = x - Xf[r]
        if p == INF:
            # exact over the box prod [x - dn, x + up]
            el, eh = delta - dn, delta + up
            dmin2 = sum((w if w > 0 else (-h if h < 0 else 0.0)) ** 2 for w, h in zip(el, eh))
            dmax2 = sum(max(h, -w) ** 2 for w, h in zip(el, eh))
        else:
            dn2 = np.linalg.norm(delta)
            dmin2 = max(max(dn2 - R, 0.0) ** 2, dn2 ** 2 - 2 * R * np.abs(delta).max())
            dmax2 = dn2 ** 2 + 2 * R * np.abs(delta).max() + R * R
            if lo is not None:
                near = Xf[r] - np.clip(Xf[r], lo, hi)
                far = np.maximum(np.abs(Xf[r] - lo), np.abs(hi - Xf[r]))
                dmin2 = max(dmin2, near @ near)
                dmax2 = min(dmax2, far @ far)
        kmin[r], kmax[r] = np.exp(-gamma * dmax2), np.exp(-gamma * dmin2)
    return kmin, kmax, up, dn


def kernel_coord_reference(Xf, A, gamma, x, c, j, R, p, lo=None, hi=None):
    """Literal coordinate interval bound (CIB) over all expansion points."""
    n, d = Xf.shape
    beta = A[c] - A[j]
    kmin, kmax, up, dn = _kernel_k_ranges(Xf, gamma, x, R, p, lo, hi)
    Slo = sum(min(beta[r] * kmin[r], beta[r] * kmax[r]) for r in range(n))
    Shi = sum(max(beta[r] * kmin[r], beta[r] * kmax[r]) for r in range(n))
    B = np.empty(d)
    for i in range(d):
        Alo = Ahi = 0.0
        for r in range(n):
            t = beta[r] * (x[i] - Xf[r, i])
            Alo += min(t * kmin[r], t * kmax[r])
            Ahi += max(t * kmin[r], t * kmax[r])
        corners = [up[i] * Slo, up[i] * Shi, -dn[i] * Slo, -dn[i] * Shi]
        B[i] = max(Ahi + max(corners), -(Alo + min(corners)))
    B *= 2 * gamma
    return B.sum() if p == INF else B.max()


def kernel_meanvalue_reference(est, x, c, j, R, p, lo=None, hi=None):
    """Literal mean-value bound ||g(x)||_q + 2 gamma (sum |beta| dk ||delta||_q + s_q max|S|).

    Uses the cheap (Hoelder) distance ranges of the library for ``k_r(y)``.
    """
    Xf, A, gamma = est.X_fit_, est.dual_coef_, est.gamma_
    n, d = Xf.shape
    beta = A[c] - A[j]
    up, dn = _moves(x, R, lo, hi)
    G = est._input_gradients(x[None])[0]
    g0 = _qnorm(G[c] - G[j], p)
    shift = np.maximum(up, dn)
    s_q = shift.max() if p == 1.0 else shift.sum()
    tot, Slo, Shi = 0.0, 0.0, 0.0
    for r in range(n):
        delta = x - Xf[r]
        d2 = delta @ delta
        nq = _qnorm(delta, p)
        if p == INF:
            dmin2 = max(d2 - 2 * R * nq, 0.0)
            dmax2 = d2 + 2 * R * nq + d * R * R
        else:
            dmin2 = max(max(np.sqrt(d2) - R, 0.0) ** 2, d2 - 2 * R * nq)
            dmax2 = d2 + 2 * R * nq + R * R
        if lo is not None:
            near = Xf[r] - np.clip(Xf[r], lo, hi)
            far = np.maximum(np.abs(Xf[r] - lo), np.abs(hi - Xf[r]))
            dmin2, dmax2 = max(dmin2, near @ near), min(dmax2, far @ far)
        kmin, kmax, kx = np.exp(-gamma * dmax2), np.exp(-gamma * dmin2), np.exp(-gamma * d2)
        tot += abs(beta[r]) * max(kmax - kx, kx - kmin) * nq
        Slo += min(beta[r] * kmin, beta[r] * kmax)
        Shi += max(beta[r] * kmin, beta[r] * kmax)
    return g0 + 2 * gamma * (tot + s_q * max(abs(Slo), abs(Shi)))


# --------------------------------------------------------------------------- ball samples
def _ball_samples(x, R, p, rng, lo=None, hi=None, n_random=300):
    """Vertices and random points of B_p(x, R) (cap box), all inside the set."""
    d = x.size
    if p == INF:
        S = rng.choice([-1.0, 1.0], size=(n_random, d)) * R
        U = rng.uniform(-R, R, size=(n_random, d))
        Y = x + np.vstack([S, U])
    else:
        E = np.vstack([np.eye(d), -np.eye(d)]) * R
        Z = rng.laplace(size=(n_random, d))
        Z *= (R * rng.uniform(size=(n_random, 1)) ** (1 / d)) / np.abs(Z).sum(1, keepdims=True)
        Y = x + np.vstack([E, Z])
    if lo is not None:
        Y = np.clip(Y, lo, hi)  # clipping towards x keeps the point inside the ball
    assert np.all(_pnorm(Y - x, p) <= R * (1 + 1e-12))
    return Y


def _exact_dual(est, Y, c, p):
    G = est._input_gradients(Y)
    return _qnorm(G[:, c][:, None, :] - G, p)  # (m, K)


# --------------------------------------------------------------------------- attacks
def _project_l1(delta, r):
    """Euclidean projection onto the L1 ball of radius r (Duchi et al., 2008)."""
    a = np.abs(delta)
    if a.sum() <= r:
        return delta
    s = np.sort(a)[::-1]
    cs = np.cumsum(s)
    k = np.nonzero(s * np.arange(1, s.size + 1) > (cs - r))[0][-1]
    theta = (cs[k] - r) / (k + 1)
    return np.sign(delta) * np.maximum(a - theta, 0.0)


def pgd_attack(est, x, r, p, rng, lo=None, hi=None, n_restarts=6, n_steps=40):
    """PGD in the p-norm with random restarts; returns a misclassified point or None."""
    d = x.size
    c = int(np.argmax(est._logits(x[None])[0]))

    def feasible(y):
        ok = _pnorm(y - x, p) <= r
        if lo is not None:
            ok &= np.all((y >= lo) & (y <= hi))
        return ok

    def project(y):
        for _ in range(4):
            if lo is not None:
                y = np.clip(y, lo, hi)
            if p == INF:
                y = np.clip(y, x - r, x + r)
            else:
                y = x + _project_l1(y - x, r)
        return y

    def flips(Y):
        Y = np.atleast_2d(Y)
        Y = Y[[feasible(y) for y in Y]]
        if len(Y) == 0:
            return None
        pred = np.argmax(est._logits(Y), axis=1)
        bad = np.flatnonzero(pred != c)
        return Y[bad[0]] if bad.size else None

    hit = flips(_ball_samples(x, r * (1 - 1e-12), p, rng, lo, hi, n_random=100))
    if hit is not None:
        return hit
    for k in range(n_restarts):
        if k == 0:
            y = x.copy()
        else:
            y = project(_ball_samples(x, r, p, rng, lo, hi, n_random=1)[-1])
        step = r / 3
        for _ in range(n_steps):
            F = est._logits(y[None])[0]
            Fo = F.copy()
            Fo[c] = -np.inf
            j = int(np.argmax(Fo))
            G = est._input_gradients(y[None])[0]
            g = G[j] - G[c]
            if p == INF:
                y = project(y + step * np.sign(g))
            else:
                e = np.zeros(d)
                top = np.argsort(-np.abs(g))[:2]
                e[top] = np.sign(g[top])
                y = project(y + step * e / 2)
            hit = flips(y)
            if hit is not None:
                return hit
            step *= 0.92
    return None


# --------------------------------------------------------------------------- tests: references
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("box", [False, True])
def test_mlp_coordinate_bound_matches_literal_reference(p, box):
    est = _mlp(3, 5)
    W1, W2 = est.coefs_
    b1 = est.intercepts_[0]
    X = _points(3, 5, 3)
    c = np.argmax(est._logits(X), axis=1)
    lo, hi = (np.zeros(5), np.ones(5)) if box else (None, None)
    for R in [0.0, 0.02, 0.1, 0.5]:
        L, parts = mlp_bounds.local_cross_lipschitz(
            W1, b1, W2, est.softplus_alpha, X, c, np.full(3, R), None, lo, hi, "local",
            norm=p, return_parts=True)
        for i in range(3):
            for j in range(4):
                if j == c[i]:
                    continue
                ref = mlp_coord_reference(W1, b1, W2, est.softplus_alpha, X[i], c[i], j, R, p,
                                          lo, hi)
                got = parts["coord"][i, j]
                assert ref <= got <= ref * (1 + 1e-9) + 1e-12, (R, i, j, ref, got)
                assert L[i, j] <= got


@pytest.mark.parametrize("p", NORMS)
def test_mlp_global_matches_reference_and_vertices(p):
    est = FakeMLP.random(4, 7, 3, 5, scale=2.0)
    W1, W2 = est.coefs_
    Lg = mlp_bounds.global_cross_lipschitz(W1, W2, norm=p)
    # every vertex t in {0, 1}^U of the derivative box stays below the constant
    U = W1.shape[1]
    T = ((np.arange(2 ** U)[:, None] >> np.arange(U)) & 1).astype(float)
    for c in range(3):
        for j in range(3):
            if c == j:
                assert Lg[c, j] == 0
                continue
            ref = mlp_global_reference(W1, W2, c, j, p)
            assert ref <= Lg[c, j] <= ref * (1 + 1e-9)
            vals = _qnorm((T * (W2[:, c] - W2[:, j])) @ W1.T, p)
            assert vals.max() <= Lg[c, j]
            if p == 1.0:  # q = inf: the per-coordinate maximum is attained at a vertex
                np.testing.assert_allclose(vals.max(), ref, rtol=1e-12)


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("box", [False, True])
def test_kernel_coordinate_bound_matches_literal_reference(p, box):
    est = _kernel(4, 5, n=12)
    X = _points(4, 5, 3)
    c = np.argmax(est._logits(X), axis=1)
    lo, hi = (np.zeros(5), np.ones(5)) if box else (None, None)
    for R in [0.0, 0.01, 0.1, 0.4]:
        L, parts = kernel_bounds.local_cross_lipschitz(
            est.X_fit_, est.dual_coef_, est.gamma_, X, c, np.full(3, R), None, lo, hi,
            "local", norm=p, return_parts=True)
        for i in range(3):
            for j in range(3):
                if j == c[i]:
                    continue
                ref = kernel_coord_reference(est.X_fit_, est.dual_coef_, est.gamma_, X[i],
                                             c[i], j, R, p, lo, hi)
                got = parts["coord"][i, j]
                # ||x - x_r||_q (in the cheap p = 1 distance range) is cached in float32
                # rounded up (relative 2**-20)
                assert ref * (1 - 1e-12) <= got <= ref * (1 + 1e-5) + 1e-12, (R, i, j, ref, got)
                mv = kernel_meanvalue_reference(est, X[i], c[i], j, R, p, lo, hi)
                got_mv = parts["meanvalue"][i, j]
                # ||x - x_r||_q is cached in float32 rounded up (relative 2**-20)
                assert mv * (1 - 1e-12) <= got_mv <= mv * (1 + 1e-5) + 1e-12, (R, mv, got_mv)
                assert L[i, j] <= min(got, got_mv)


@pytest.mark.parametrize("p", NORMS)
def test_kernel_global_constant(p):
    est = _kernel(5, 6)
    Lg = kernel_bounds.global_cross_lipschitz(est.dual_coef_, est.gamma_, norm=p, n_features=6)
    L2 = kernel_bounds.global_cross_lipschitz(est.dual_coef_, est.gamma_)
    factor = np.sqrt(6) if p == INF else 1.0
    np.testing.assert_allclose(Lg, L2 * factor, rtol=1e-12)
    # the supremum of ||u||_q exp(-gamma ||u||^2) is attained (diagonal / axis)
    g = est.gamma_
    t = 1 / np.sqrt(2 * g)
    u = np.full(6, t / np.sqrt(6)) if p == INF else np.eye(6)[0] * t
    assert np.isclose(_qnorm(u, p) * np.exp(-g * u @ u), factor / np.sqrt(2 * g * np.e))
    # without the dimension the q = 1 constant is the trivial bound inf
    Linf = kernel_bounds.global_cross_lipschitz(est.dual_coef_, est.gamma_, norm=INF)
    assert np.all(np.isinf(Linf[~np.eye(3, dtype=bool)]))


@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("p", NORMS)
def test_exact_at_zero_radius(family, make, p):
    est = make(6, 7)
    X = _points(6, 7, 4)
    c = np.argmax(est._logits(X), axis=1)
    L = est._local_cross_lipschitz(X, c, np.zeros(4), norm=p)
    ex = _qnorm(est._input_gradients(X)[np.arange(4), c][:, None, :]
                - est._input_gradients(X), p)
    mask = np.ones_like(ex, bool)
    mask[np.arange(4), c] = False
    np.testing.assert_allclose(L[mask], ex[mask], rtol=1e-8)


@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("box", [False, True])
def test_bounds_dominate_sampled_gradients(family, make, p, box):
    rng = np.random.default_rng(7)
    d = 6
    est = make(7, d)
    X = _points(7, d, 3)
    c = np.argmax(est._logits(X), axis=1)
    lo, hi = (np.zeros(d), np.ones(d)) if box else (None, None)
    Lg = est._global_cross_lipschitz(norm=p)
    if family == "kernel" and p == INF:
        Lg = kernel_bounds.global_cross_lipschitz(est.dual_coef_, est.gamma_, norm=p,
                                                  n_features=d)
    for R in [0.01, 0.1, 0.3]:
        Ls = [est._local_cross_lipschitz(X, c, np.full(3, R), None, lo, hi, m, norm=p)
              for m in ("local", "local_fast")]
        for i in range(3):
            Y = _ball_samples(X[i], R, p, rng, lo, hi)
            worst = _exact_dual(est, Y, c[i], p).max(axis=0)
            for L in Ls:
                for j in range(Lg.shape[0]):
                    if j != c[i]:
                        assert worst[j] <= L[i, j] * (1 + 1e-12), (R, i, j, worst[j], L[i, j])
                        assert worst[j] <= Lg[c[i], j]


# --------------------------------------------------------------------------- tests: certificates
@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("seed,d", [(0, 5), (1, 12), (2, 30)])
def test_attacks_never_succeed_inside_lp_radius(family, make, p, seed, d):
    est = make(seed, d)
    X = _points(seed, d, 3)
    rng = np.random.default_rng(seed)
    for bound in ("local", "local_fast"):
        r = est.certified_radius(X, norm=p, bound=bound)
        assert np.all(r > 0)
        delta = est.adversarial_perturbation(X, norm=p)
        an = _pnorm(delta, p)
        ok = np.isfinite(an)
        assert np.all(r[ok] <= an[ok])
        for i in range(len(X)):
            hit = pgd_attack(est, X[i], r[i] * (1 - 1e-9), p, rng)
            assert hit is None, (bound, i, r[i])


@pytest.mark.filterwarnings("ignore:No adversarial perturbation")
@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("p", NORMS)
def test_attacks_never_succeed_inside_boxed_lp_radius(family, make, p):
    d = 8
    est = make(11, d)
    X = _points(11, d, 4)
    lo, hi = np.zeros(d), np.ones(d)
    r = est.certified_radius(X, norm=p, box=(0, 1))
    ru = est.certified_radius(X, norm=p)
    assert np.all(r >= ru)
    delta = est.adversarial_perturbation(X, norm=p, box=(0, 1))
    an = _pnorm(delta, p)
    ok = np.isfinite(an)
    assert np.all(r[ok] <= an[ok])
    rng = np.random.default_rng(11)
    for i in range(len(X)):
        assert pgd_attack(est, X[i], r[i] * (1 - 1e-9), p, rng, lo, hi) is None


@pytest.mark.parametrize("p", NORMS)
def test_attack_is_strong_enough_to_fail(p):
    # the soundness test can fail: an inflated "certificate" is refuted by the attack
    est = _mlp(12, 6)
    X = _points(12, 6, 4)
    r = est.certified_radius(X, norm=p)
    an = _pnorm(est.adversarial_perturbation(X, norm=p, refine_steps=3), p)
    rng = np.random.default_rng(12)
    found = [pgd_attack(est, X[i], 1.5 * an[i], p, rng) is not None for i in range(4)]
    assert sum(found) >= 3
    assert np.all(r <= an)


@pytest.mark.parametrize("family,make", MODELS)
@pytest.mark.parametrize("p", NORMS)
def test_orderings_and_details(family, make, p):
    est = make(13, 9)
    X = _points(13, 9, 8)
    rg = est.certified_radius(X, norm=p, bound="global")
    rl, det = est.certified_radius(X, norm=p, return_details=True)
    rf = est.certified_radius(X, norm=p, bound="local_fast")
    rb = est.certified_radius(X, norm=p, box=(0, 1))
    assert np.all(rl >= rg) and np.all(rf >= rg) and np.all(rb >= rl)
    assert det["norm"] == p
    np.testing.assert_array_equal(det["predicted_class"], est.predict(X))
    # the p-norm radius against the L2 one: ||.||_2 <= ||.||_1 and ||.||_inf <= ||.||_2
    r2 = est.certified_radius(X)
    # B_1(x, r) is inside B_2(x, r): the L1 certificate is at least the L2 one only if the
    # bound is as good; what must hold is that no norm's certificate exceeds the attack
    for q, rr in [(2, r2), (p, rl)]:
        an = _pnorm(est.adversarial_perturbation(X, norm=q), q)
        assert np.all(rr <= an + 1e-12)


@pytest.mark.parametrize("p", NORMS)
def test_global_radius_uses_converted_l2_constant(p):
    # the theorem's global constant is min(own p-constant, converted L2 constant)
    est = _kernel(14, 5)
    X = _points(14, 5, 5)
    c, marg, valid = theorem21._margins(est, X)
    Lg = theorem21._global_constants(est, p, 3, 5)
    L2 = est._global_cross_lipschitz()
    conv = L2 * (np.sqrt(5) if p == INF else 1.0)
    np.testing.assert_allclose(Lg, conv, rtol=1e-12)
    rg = est.certified_radius(X, norm=p, bound="global")
    expect = np.min(np.where(np.arange(3) == c[:, None], np.inf,
                             marg / np.where(Lg[c] > 0, Lg[c], 1)), axis=1)
    np.testing.assert_allclose(rg, expect, rtol=1e-12)


# --------------------------------------------------------------------------- real estimators
def _data(seed, n=120, d=10, K=3):
    X, y = make_classification(n_samples=n + 20, n_features=d, n_informative=min(d, 6),
                               n_redundant=0, n_classes=K, n_clusters_per_class=1,
                               random_state=seed)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    return X[:n], y[:n], X[n:]


def _real_mlp(seed, d):
    from sklearn_crosslip.mlp import MLPCrossLipClassifier

    X, y, Xt = _data(seed, d=d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPCrossLipClassifier(hidden_units=16, max_iter=60, random_state=seed).fit(X, y)
    return est, Xt


def _real_kernel(seed, d):
    from sklearn_crosslip.kernel import KernelCrossLipClassifier

    X, y, Xt = _data(seed, n=80, d=d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = KernelCrossLipClassifier(max_iter=50).fit(X, y)
    return est, Xt


@pytest.mark.parametrize("make", [_real_mlp, _real_kernel])
@pytest.mark.parametrize("p", NORMS)
def test_real_estimators_sound_in_lp(make, p):
    d = 10
    est, Xt = make(21, d)
    X = Xt[:4]
    rng = np.random.default_rng(21)
    lo, hi = np.zeros(d), np.ones(d)
    for bound, box in [("local", None), ("local_fast", None), ("local", (0.0, 1.0))]:
        r = est.certified_radius(X, norm=p, bound=bound, box=box)
        delta = est.adversarial_perturbation(X, norm=p, box=box)
        an = _pnorm(delta, p)
        ok = np.isfinite(an)
        assert np.all(r[ok] <= an[ok])
        for i in range(len(X)):
            if r[i] == 0:
                continue
            hit = pgd_attack(est, X[i], r[i] * (1 - 1e-9), p, rng,
                             *((lo, hi) if box else (None, None)), n_restarts=4, n_steps=30)
            assert hit is None, (bound, box, i, r[i])
    # certified accuracy in the same norm
    y = est.predict(X)
    r = est.certified_radius(X, norm=p)
    acc = certified_accuracy(est, X, y, [0.0, np.median(r), 10 * r.max() + 1], norm=p)
    np.testing.assert_allclose(acc, [np.mean(r >= 0), np.mean(r >= np.median(r)), 0.0])


# --------------------------------------------------------------------------- API and bad input
def test_norm_strings_equal_numbers():
    est = _mlp(30, 6)
    X = _points(30, 6, 3)
    for s, v in [("l1", 1), ("L2", 2), ("linf", np.inf), ("inf", float("inf"))]:
        np.testing.assert_array_equal(est.certified_radius(X, norm=s),
                                      est.certified_radius(X, norm=v))


@pytest.mark.parametrize("bad", ["l3", "", -1, 0, 0.5, 3, np.nan, True, None, [1]])
def test_bad_norm_raises(bad):
    est = _kernel(31, 4)
    X = _points(31, 4, 2)
    with pytest.raises(ValueError, match="norm"):
        est.certified_radius(X, norm=bad)
    with pytest.raises(ValueError, match="norm"):
        certified_accuracy(est, X, est.predict(X), 0.1, norm=bad)


def test_bad_norm_messages():
    est = _mlp(32, 4)
    X = _points(32, 4, 2)
    with pytest.raises(ValueError, match="p < 1"):
        est.certified_radius(X, norm=0.5)
    with pytest.raises(ValueError, match="NaN"):
        est.certified_radius(X, norm=float("nan"))
    with pytest.raises(ValueError, match="not implemented"):
        est.certified_radius(X, norm=3)
    with pytest.raises(ValueError, match="NaN"):
        est.certified_radius(np.full((1, 4), np.nan), norm=1)
