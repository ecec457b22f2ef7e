"""Certified radii by Theorem 2.1, written once against the model protocol.

Theorem 2.1 (any p-norm, ``1/p + 1/q = 1``). Let ``c`` be the predicted class
of ``x``, ``m_j = f_c(x) - f_j(x)`` the margins and ``L_j(R)`` an upper bound on
``max_{y in B_p(x, R)} ||grad f_c(y) - grad f_j(y)||_q`` that is nondecreasing
in ``R``. Then the decision cannot change on ``B_p(x, alpha)`` with

    alpha = max_{R > 0} min(g(R), R),    g(R) = min_{j != c} m_j / L_j(R).

Facts used by the search (all elementary):

* ``g`` is nonincreasing, and *every* ``R`` gives a valid certificate
  ``min(g(R), R)`` (the theorem holds for each ``R`` before maximising).
* Let ``R* = sup{R : g(R) >= R}`` (the crossing). ``R* <= g(0)``, and for every
  ``R > R*`` also ``g(R) <= R*``; so an evaluation at ``R`` either shows
  ``g(R) >= R`` (then ``R <= R*`` and ``R`` is certified) or ``g(R) < R`` (then
  ``g(R) <= R* <= R`` and ``g(R)`` is certified). We keep the best certified
  value seen (the *safe end* of the bracket) and stop when it is within
  ``rtol`` of the upper end.
* A global constant ``Lg_j >= L_j(R)`` gives the R-independent certificate
  ``min_j m_j / Lg_j`` (used as the starting point, so the local radius is never
  below the global one), and at a trial ``R`` a class ``j`` with
  ``m_j / Lg_j >= R`` cannot make ``g(R) < R``, nor lower ``min(g(R), R)``:
  it is pruned (not evaluated). For ``bound="local"`` a second filter uses the
  model's cheap sound bound (``method="local_fast"``, never smaller than the
  ``"local"`` one): classes whose cheap ratio already reaches ``R`` are not
  sent to the expensive bound.
* ``L_j(R)`` at ``R = 0`` is (up to rounding) the exact gradient norm; any
  single class's ``m_j / L_j(0)`` is an upper bound on ``g(0) >= R*``, which
  gives the upper end of the bracket.

Nothing below depends on ``p``: the theorem only uses
``f_c(x + h) - f_j(x + h) >= m_j - ||h||_p max_{y in [x, x + h]} ||grad f_c(y) -
grad f_j(y)||_q`` (mean-value theorem and Hoelder's inequality), and the
segment ``[x, x + h]`` stays in the convex set ``B_p(x, R) cap box``. The norm
is passed to the model's protocol methods (``norm=p``, omitted for ``p = 2`` so
that models written for the L2 protocol keep working). For ``p != 2`` the
global constant is the minimum of the model's own constant for that norm and
the L2 constant converted by norm equivalence (``||g||_1 <= sqrt(d) ||g||_2``,
``||g||_inf <= ||g||_2``), so a model whose p-constant is unknown may return
``inf`` there.

The first trial radius is the geometric mean of the bracket; later ones come
from a safeguarded model step (``L_j(R)`` taken as linear in ``R`` through the
last two evaluations, aiming just above the crossing, clipped into the
bracket; after three consecutive trials above the crossing the bracket is
bisected instead, which stops a one-sided stagnation of the model step on a
strongly curved ``L(R)``). Any trial is sound; the choice only affects speed (typically 3-5
bound evaluations per point for ``rtol = 1e-3``).

Float64 safety: margins are rounded down by ``2 * _logits_error`` (each logit
may be off by that much) and a relative ``4 eps`` (a model may also provide
``_logits_and_error(X) -> (logits, error)`` to compute both in one pass); ratios ``m / L`` are rounded
down; ``L`` is rounded up by the bound functions. Every rounding can only
shrink the radius.

**Box.** With ``box=(lo, hi)`` the maximum defining ``L_j`` is taken over
``B(x, R) cap box`` (end of Section 2.1), which can only decrease ``L_j`` and so
increase ``g``. We first run the unboxed search and then continue with the
boxed bounds from its certified value, so the boxed radius is never below the
unboxed one (the unboxed certificate is also valid inside the box).

**Scale-out.** Points are independent; blocks of points are dispatched with
:class:`joblib.Parallel`, so ``with joblib.parallel_backend("dask"):`` runs the
blocks on a dask cluster. The block split depends only on the number of points
and on the effective number of workers (``joblib.effective_n_jobs(n_jobs)``),
and each point's computation does not depend on the other points of its
block, so the radii do not depend on the backend.
"""

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils.validation import check_is_fitted

from .._validation import check_box, check_n_jobs_param
from ._common import EPS, check_norm

__all__ = ["certified_radius"]

_BOUNDS = ("local", "local_fast", "global")
RTOL = 1e-3  # relative gap between the certified value and the bracket's upper end
MAX_ITER = 40  # bound evaluations per point and stage (safety net; ~4-10 are typical)
_MIN_BLOCK = 64  # do not split below this many points per joblib task


def _ratio_down(marg, L):
    """``marg / L`` rounded down, with ``L == 0`` giving ``inf`` and NaN ``L`` giving 0."""
    L = np.where(np.isnan(L), np.inf, L)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = marg / L
    r = np.where(L > 0, r * (1.0 - 4 * EPS), np.inf)
    # a non-positive margin certifies nothing (does not happen for valid points)
    return np.where(marg > 0, r, 0.0)


def _margins(est, X):
    """Predicted class, margins rounded down, and validity per point."""
    fused = getattr(est, "_logits_and_error", None)
    if fused is not None:
        # optional protocol extension: one pass for both (saves a forward pass)
        F, err = fused(X)
        F = np.asarray(F, dtype=np.float64)
        err = np.asarray(err, dtype=np.float64)
    else:
        F = np.asarray(est._logits(X), dtype=np.float64)
        err = np.asarray(est._logits_error(X), dtype=np.float64)
    m, K = F.shape
    if K < 2 or err.shape != (m,):
        raise ValueError("The model's protocol returned arrays of unexpected shape.")
    c = np.argmax(F, axis=1)
    ar = np.arange(m)
    diff = F[ar, c][:, None] - F  # >= 0
    # true f_c - f_j >= fl(F_c - F_j)(1 - u) - 2 err; extra slack for this rounding
    marg = diff * (1.0 - 4 * EPS) - 2.0 * err[:, None] * (1.0 + 4 * EPS)
    marg[ar, c] = np.inf
    valid = np.all(marg > 0, axis=1) & np.all(np.isfinite(F), axis=1)
    return c, marg, valid


class _Search:
    """Vectorised safeguarded search for the crossing of ``g(R)`` and ``R``."""

    def __init__(self, est, X, c, marg, ratio_g, method, lo, hi, rtol, max_iter, norm_kw):
        self.est, self.X, self.c, self.marg = est, X, c, marg
        self.norm_kw = norm_kw
        self.ratio_g, self.method, self.lo_box, self.hi_box = ratio_g, method, lo, hi
        self.rtol, self.max_iter = rtol, max_iter
        self.n_eval = np.zeros(X.shape[0], dtype=np.int64)

    def _ratios(self, sub, R, act, box, method):
        """Rounded-down ``m_j / L_j(R)`` on ``act`` entries (inf elsewhere)."""
        lo, hi = (self.lo_box, self.hi_box) if box else (None, None)
        L = np.asarray(
            self.est._local_cross_lipschitz(
                self.X[sub], self.c[sub], R, act, lo, hi, method, **self.norm_kw
            ),
            dtype=np.float64,
        )
        if L.shape != act.shape:
            raise ValueError(
                f"_local_cross_lipschitz returned shape {L.shape}; expected {act.shape}."
            )
        L = np.where(act, L, np.inf)
        return np.where(act, _ratio_down(self.marg[sub], L), np.inf)

    def evaluate(self, idx, R, box):
        """``g`` at ``R`` for points ``idx`` over the non-pruned classes.

        Returns ``g_act`` (min ratio over evaluated classes, inf if none),
        its class and a lower bound on ``g(R)`` over *all* classes.
        """
        rg = self.ratio_g[idx]
        act = rg < R[:, None]
        g_pruned = np.where(act, np.inf, rg).min(axis=1)
        j_pruned = np.where(act, np.inf, rg).argmin(axis=1)
        g_act = np.full(idx.size, np.inf)
        j_act = j_pruned.copy()
        rows = np.flatnonzero(act.any(axis=1))
        if rows.size:
            sub = idx[rows]
            rat = self._ratios(sub, R[rows], act[rows], box, "local_fast")
            if self.method == "local":
                # two stages: the cheap sound bound prunes classes whose ratio already
                # reaches R (L_local <= L_fast, so their local ratio does too)
                need = act[rows] & (rat < R[rows, None])
                r2 = np.flatnonzero(need.any(axis=1))
                if r2.size:
                    rl = self._ratios(sub[r2], R[rows][r2], need[r2], box, "local")
                    rat[r2] = np.where(need[r2], np.maximum(rl, rat[r2]), rat[r2])
            g_act[rows] = rat.min(axis=1)
            j_act[rows] = rat.argmin(axis=1)
            self.n_eval[sub] += 1
        g_lb = np.minimum(g_act, g_pruned)
        j = np.where(g_act <= g_pruned, j_act, j_pruned)
        return g_act, g_lb, j

    def run(self, idx, best, R_at, bind, hi0, box, first=None):
        """Improve ``best`` (certified radii) for points ``idx`` in place.

        Returns the final upper ends of the brackets (``>= R*``).
        """
        n = idx.size
        if n == 0:
            return hi0[idx].copy()
        hi = hi0[idx].copy()
        b = best[idx].copy()
        Rb, jb = R_at[idx].copy(), bind[idx].copy()
        # last two evaluations (t, 1/g(t)); the first is the pseudo-point (0, 1/hi0)
        t1 = np.zeros(n)
        with np.errstate(divide="ignore"):
            a1 = 1.0 / hi
        t2 = np.full(n, np.nan)
        a2 = np.full(n, np.nan)
        live = self._live(b, hi)
        n_down = np.zeros(n, dtype=np.int64)  # consecutive evaluations with g(t) < t
        for it in range(self.max_iter):
            w = np.flatnonzero(live)
            if w.size == 0:
                break
            t = self._trial(t1[w], a1[w], t2[w], a2[w], b[w], hi[w], self.rtol)
            # safeguard against one-sided stagnation of the model step (a strongly
            # curved L(R)): after three trials above the crossing, bisect the bracket
            stall = n_down[w] >= 3
            t[stall] = np.sqrt(b[w][stall] * hi[w][stall])
            if it == 0 and first is not None:
                f = first[idx[w]]
                t = np.where((f > b[w]) & (f < hi[w]), f, t)
            g_act, g_lb, j = self.evaluate(idx[w], t, box)
            up = g_act >= t
            n_down[w] = np.where(up, 0, n_down[w] + 1)
            # g(t) >= t: t is certified (and t <= R*)
            k = w[up]
            better = t[up] > b[k]
            b[k[better]], Rb[k[better]], jb[k[better]] = t[up][better], t[up][better], j[up][better]
            # g(t) < t: g(t) is certified (exact: pruned classes are >= t) and R* <= t
            k = w[~up]
            hi[k] = t[~up]
            better = g_act[~up] > b[k]
            b[k[better]], Rb[k[better]], jb[k[better]] = (
                g_act[~up][better], t[~up][better], j[~up][better]
            )
            t1[w], a1[w] = t2[w], a2[w]
            first_eval = np.isnan(t1[w])
            t1[w[first_eval]] = 0.0
            with np.errstate(divide="ignore"):
                a1[w[first_eval]] = 1.0 / hi0[idx[w[first_eval]]]
                # the model uses the evaluated classes only (pruned ones are merely
                # known to be >= t); NaN when none was evaluated
                t2[w], a2[w] = t, np.where(np.isfinite(g_act), 1.0 / g_act, np.nan)
            live[w] = self._live(b[w], hi[w])
        best[idx], R_at[idx], bind[idx] = b, Rb, jb
        return hi

    def _live(self, b, hi):
        with np.errstate(invalid="ignore"):
            return np.isfinite(b) & (~np.isfinite(hi) | (hi - b > self.rtol * hi))

    @staticmethod
    def _trial(t1, a1, t2, a2, b, hi, rtol):
        """Next trial radius in ``(b, hi]`` (any choice is sound; this one is fast).

        Models ``1 / g(R) = L(R) / m`` as linear through the last two
        evaluations and solves ``R / g(R) = 1``, i.e. ``s R^2 + c0 R - 1 = 0``,
        aiming a little above the root (an evaluation just above the crossing
        certifies ``g(t)`` and closes the bracket at once). Without two
        evaluations, the geometric mean of the bracket is tried.
        """
        w = hi - b
        t = np.sqrt(hi * b)  # first trial: geometric mean of the bracket
        inf_hi = ~np.isfinite(hi)
        t[inf_hi] = np.maximum(2.0 * b[inf_hi], 1e-300)
        model = ~inf_hi & np.isfinite(t2) & np.isfinite(a1) & np.isfinite(a2) & (t2 != t1)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s = (a2 - a1) / (t2 - t1)
            c0 = a1 - s * t1
            disc = np.sqrt(np.maximum(c0 * c0 + 4.0 * s, 0.0))
            root = 2.0 / (c0 + disc)
            root *= 1.0 + 0.5 * rtol
        ok = model & np.isfinite(root) & (root > 0)
        t[ok] = np.clip(root[ok], b[ok] + 0.005 * w[ok], hi[ok] - 0.005 * w[ok])
        bis = ~inf_hi & ~ok
        t[bis] = np.sqrt(b[bis] * hi[bis])
        return t


def _norm_kw(p):
    """Keyword arguments selecting the norm in the protocol calls (none for p = 2)."""
    return {} if p == 2 else {"norm": p}


def _global_constants(est, p, K, d):
    """(K, K) global constants for the ball norm ``p`` (see the module docstring)."""
    def get(**kw):
        Lg = np.asarray(est._global_cross_lipschitz(**kw), dtype=np.float64)
        if Lg.shape != (K, K):
            raise ValueError(
                f"_global_cross_lipschitz returned shape {Lg.shape}; expected ({K}, {K})."
            )
        return np.where(np.isnan(Lg), np.inf, Lg)

    L2 = get()
    if p == 2:
        return L2
    # ||g||_q <= d^(1/q - 1/2) ||g||_2 for q <= 2 (q = 1 here), ||g||_inf <= ||g||_2
    conv = L2 * (np.sqrt(d) * (1.0 + 4 * EPS) if p == np.inf else 1.0)
    return np.minimum(get(norm=p), conv)


def _certify_block(est, X, bound, lo, hi, rtol, max_iter, p=2.0):
    m = X.shape[0]
    c, marg, valid = _margins(est, X)
    K = marg.shape[1]
    Lg = _global_constants(est, p, K, X.shape[1])
    nkw = _norm_kw(p)
    ratio_g = _ratio_down(marg, Lg[c])
    ratio_g[np.arange(m), c] = np.inf
    best = np.where(valid, ratio_g.min(axis=1), 0.0)
    bind = np.where(valid, ratio_g.argmin(axis=1), -1)
    R_at = np.where(valid, np.inf, 0.0)  # inf: certified by the global constant
    n_eval = np.zeros(m, dtype=np.int64)
    if bound != "global":
        s = _Search(est, X, c, marg, ratio_g, bound, lo, hi, rtol, max_iter, nkw)
        idx = np.flatnonzero(valid & np.isfinite(best))
        hi0 = np.full(m, np.inf)
        if idx.size:
            # upper end: m_j / L_j(0) for the globally binding class j (>= g(0) >= R*)
            jg = bind[idx]
            act0 = np.zeros((idx.size, K), dtype=bool)
            act0[np.arange(idx.size), jg] = True
            L0 = np.asarray(
                est._local_cross_lipschitz(
                    X[idx], c[idx], np.zeros(idx.size), act0, None, None, bound, **nkw
                ),
                dtype=np.float64,
            )[np.arange(idx.size), jg]
            with np.errstate(divide="ignore"):
                h0 = np.where(L0 > 0, marg[idx, jg] / L0, np.inf) * (1.0 + 4 * EPS)
            hi0[idx] = np.maximum(h0, best[idx])
            s.n_eval[idx] += 1
        hi_u = np.full(m, np.inf)
        hi_u[idx] = s.run(idx, best, R_at, bind, hi0, box=False)
        if lo is not None:
            # continue from the unboxed certificate; first try the unboxed upper end
            s.run(idx, best, R_at, bind, hi0, box=True, first=hi_u)
        n_eval = s.n_eval
    return c, best, R_at, bind, n_eval


def certified_radius(
    est, X, y=None, *, norm=2, bound="local", box=None, n_jobs=None, return_details=False,
    rtol=RTOL, max_iter=MAX_ITER,
):
    """Certified radii in the p-norm by Theorem 2.1 for a model implementing the protocol.

    Implementation of :meth:`RobustnessMixin.certified_radius`; see there and
    the module docstring for the method.

    Parameters
    ----------
    est : fitted estimator implementing the protocol of :mod:`sklearn_crosslip._robustness`
    X : ndarray of shape (n_samples, n_features)
        Points (float64, finite, validated by the caller).
    y : array-like of shape (n_samples,), default=None
        True labels; misclassified points get radius 0.
    norm : {1, 2, np.inf, "l1", "l2", "linf"}, default=2
        The p-norm of the ball in which the radius is certified.
    bound : {"local", "local_fast", "global"}, default="local"
    box : tuple (lo, hi) or None, default=None
    n_jobs : int or None, default=None
        joblib workers over blocks of points.
    return_details : bool, default=False
        Also return a dict with ``"R"`` (the ball radius at which the
        certificate was obtained; ``inf`` when the global constant gave it),
        ``"binding_class_index"`` (index of the class ``j`` attaining the
        minimum; -1 for points that cannot be certified, whose
        ``"binding_class"`` label is then meaningless), ``"binding_class"``,
        ``"predicted_class"``, ``"n_evaluations"`` (bound evaluations) and
        ``"norm"`` (the p used, as a float).
    rtol : float, default=1e-3
        Stop when the certified value is within ``rtol`` (relative) of the
        upper end of the bracket on the optimal ``R``.
    max_iter : int, default=40
        Maximum bound evaluations per point and stage.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
    details : dict
        Only when ``return_details=True``.
    """
    p = check_norm(norm)
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {_BOUNDS}; got {bound!r}.")
    check_is_fitted(est)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X must have shape (n_samples, {est.n_features_in_}); got {X.shape}."
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity.")
    if not (np.isfinite(rtol) and 0 < rtol < 1):
        raise ValueError(f"rtol must be in (0, 1); got {rtol!r}.")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter!r}.")
    m, d = X.shape
    lo, hi = check_box(box, d, X)
    n_jobs = check_n_jobs_param(n_jobs)
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != m:
            raise ValueError(f"y must have shape ({m},); got {y.shape}.")

    n_blocks = 1
    if m > 0:
        n_workers = effective_n_jobs(n_jobs)
        n_blocks = max(1, min(n_workers, -(-m // _MIN_BLOCK))) if n_workers > 1 else 1
    if m == 0:
        parts = []
    elif n_blocks == 1:
        parts = [_certify_block(est, X, bound, lo, hi, rtol, int(max_iter), p)]
    else:
        edges = np.linspace(0, m, n_blocks + 1).astype(int)
        parts = Parallel(n_jobs=n_jobs)(
            delayed(_certify_block)(est, X[a:b], bound, lo, hi, rtol, int(max_iter), p)
            for a, b in zip(edges[:-1], edges[1:])
        )
    if parts:
        c, radius, R_at, bind, n_eval = (np.concatenate(p) for p in zip(*parts))
    else:
        c = bind = n_eval = np.zeros(0, dtype=np.int64)
        radius = R_at = np.zeros(0)
    if y is not None:
        radius = np.where(est.classes_[c] == y, radius, 0.0)
    if not return_details:
        return radius
    classes = np.asarray(est.classes_)
    details = {
        "R": R_at,
        "binding_class_index": bind,
        "binding_class": classes[np.maximum(bind, 0)] if m else classes[:0],
        "predicted_class": classes[c] if m else classes[:0],
        "n_evaluations": n_eval,
        "norm": p,
    }
    return radius, details
