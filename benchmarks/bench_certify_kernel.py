"""Benchmark: certified radii (Theorem 2.1) of KernelCrossLipClassifier on bundled MNIST.

Fits (or loads) the default Gaussian-kernel model with Cross-Lipschitz
regularisation on the 5000 bundled training images (n = 5000 expansion
points) and certifies test images. Printed, measured in the same run:

* ``bound="global"`` on the 10000 test points (target <= 1 s);
* ``bound="local_fast"`` on the 10000 test points (target <= 2 min): the
  mean-value bound (exact gradient at x + R times a Hessian bound) and
  Proposition 2.1 over the 256 most influential training points plus the
  triangle bound for the rest;
* ``bound="local"`` (adds Proposition 2.1 over all n^2 / 2 pairs wherever the
  cheaper bounds do not already settle the search) on ``--n-local`` points
  (default 1000; target <= 10 min for 1000);
* the paper's bound alone: Theorem 2.1 with *only* Proposition 2.1 (all pairs,
  capped by the global constant), our search and numba kernel, on
  ``--n-paper`` points, extrapolated linearly to 1000 (stated in the output);
* the raw throughput of the Proposition 2.1 kernel (ns per pair and class);
* mean radii on the same 50 points for all variants (fast relative to local
  and to the paper's bound).

Run from the repository root under the shared CPU lock::

    flock /tmp/cpu.lock python benchmarks/bench_certify_kernel.py [--quick]
        [--coef C.npz] [--save-coef C.npz] [--n-local 1000] [--n-paper 20]

Measured on a quiet machine (2 cores, 2026-11-26, default model, test error
4.21%, full run): global 0.82 s for the 10000 test points (target 1 s; 0.76 s
in a ``--quick`` run; nearly all of it the (10000 x 5000) kernel evaluation),
local_fast 35.0 s for the 10000 test points (target 120 s), local 132.9 s for
1000 points (target 600 s), the paper's bound alone 779 s per 1000
(extrapolated from 20), Proposition 2.1 kernel 10.4 ns per pair for all 9
classes; local_fast / local mean radius 1.0000 on 50 points; local =
local_fast = 2.79 x the paper's bound on 20 points. Earlier full run (2 shared cores, other jobs running, test
error 4.23%): global 0.97 s (the model's ``_logits`` + ``_logits_error``: 0.95 s), local_fast 40.6 s for 10000
points, local 138 s for 1000 points (206 s while other jobs ran), the paper's
bound alone 761 s per 1000 points (extrapolated from 20), Proposition 2.1
kernel 8.3 ns per pair for all 9 classes; mean radius on 50 points: local_fast
= local = 0.150, about 2.8 times the paper's bound (0.055 on 20 points).
"""

import argparse
import time
import warnings

import numpy as np

from _timing import CPU, timed  # benchmarks/_timing.py (script directory)
from sklearn_crosslip.bounds import kernel_bounds
from sklearn_crosslip.datasets import load_mnist
from sklearn_crosslip.kernel import KernelCrossLipClassifier


class PaperBound:
    """Wraps a fitted kernel model so that ``local`` means Proposition 2.1 alone."""

    def __init__(self, est):
        self.est = est

    def __getattr__(self, name):
        return getattr(self.est, name)

    def __sklearn_is_fitted__(self):
        return True

    def _local_cross_lipschitz(self, X, c, R, active=None, lo=None, hi=None, method="local"):
        e = self.est
        P = kernel_bounds.proposition21(e.X_fit_, e.dual_coef_, e.gamma_, X, c, R, active)
        Lg = kernel_bounds.global_cross_lipschitz(e.dual_coef_, e.gamma_)[np.asarray(c)]
        P = np.where(np.isnan(P), np.inf, P)
        P[np.arange(len(c)), c] = 0.0
        return np.minimum(P, Lg)


def get_model(args, X, y):
    est = KernelCrossLipClassifier()
    if args.coef:
        z = np.load(args.coef)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[:200], y[:200])  # sets the fitted attributes; replaced below
        est.X_fit_ = X
        est.dual_coef_ = z["A"]
        est.gamma_ = float(z["gamma"])
        if hasattr(est, "_X_fit_sqnorm"):
            del est._X_fit_sqnorm
        return est, 0.0
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    fit_time = time.perf_counter() - t
    if args.save_coef:
        np.savez(args.save_coef, A=est.dual_coef_, gamma=est.gamma_)
    return est, fit_time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--coef", help="load dual_coef (A) and gamma from this .npz instead of fitting")
    p.add_argument("--save-coef", help="save the fitted dual_coef_ and gamma_")
    p.add_argument("--n-local", type=int, default=1000)
    p.add_argument("--n-paper", type=int, default=20)
    args = p.parse_args()
    X, y, Xt, yt = load_mnist(subset="5k")
    est, fit_time = get_model(args, X, y)
    err = np.mean(est.predict(Xt) != yt)
    n = est.X_fit_.shape[0]
    print(f"model: Gaussian kernel, n = {n}, gamma = {est.gamma_:.5f}, test error "
          f"{100 * err:.2f}%" + (f", fit {fit_time:.1f} s" if fit_time else " (loaded)"))
    m_fast = 2000 if args.quick else len(Xt)
    n_local = 50 if args.quick else args.n_local
    n_paper = 5 if args.quick else args.n_paper
    est.certified_radius(Xt[:3])  # compile / warm up
    est.certified_radius(Xt[:3], bound="local_fast")

    t_glob, r_glob = timed(lambda: est.certified_radius(Xt, bound="global"), 5)
    print("(median wall time; process CPU time of both cores in brackets)")
    print(f"\nglobal       {len(Xt)} points: {t_glob:8.3f} s ({CPU[-1]:7.2f})   mean radius "
          f"{r_glob.mean():.4f}   (target <= 1 s)")
    t0 = time.perf_counter()
    F = est._logits(Xt)
    est._logits_error(Xt)
    t_logits = time.perf_counter() - t0
    print(f"             of which the model's _logits + _logits_error: {t_logits:.3f} s")

    t_fast, (r_fast, d_fast) = timed(
        lambda: est.certified_radius(Xt[:m_fast], bound="local_fast", return_details=True))
    print(f"local_fast   {m_fast} points: {t_fast:8.2f} s ({CPU[-1]:7.2f})   "
          f"mean radius {r_fast.mean():.4f}   "
          f"evals/point {d_fast['n_evaluations'].mean():.2f}   (target <= 120 s for 10000)")

    t_loc, (r_loc, d_loc) = timed(
        lambda: est.certified_radius(Xt[:n_local], bound="local", return_details=True))
    print(f"local        {n_local} points: {t_loc:8.2f} s ({CPU[-1]:7.2f})   "
          f"mean radius {r_loc.mean():.4f}   "
          f"evals/point {d_loc['n_evaluations'].mean():.2f}"
          + (f"   -> {t_loc / n_local * 1000:.0f} s per 1000 (target <= 600 s)"
             if n_local != 1000 else "   (target <= 600 s)"))

    paper = PaperBound(est)
    from sklearn_crosslip.bounds.theorem21 import certified_radius

    t_pap, (r_pap, d_pap) = timed(
        lambda: certified_radius(paper, Xt[:n_paper], bound="local", return_details=True))
    print(f"paper bound  {n_paper} points: {t_pap:8.2f} s ({CPU[-1]:7.2f})   (Prop. 2.1 alone, "
          f"evals/point {d_pap['n_evaluations'].mean():.2f}) -> extrapolated "
          f"{t_pap / n_paper * 1000:.0f} s per 1000 points")

    # raw Proposition 2.1 kernel throughput at a typical radius, all classes
    k = 10
    Rm = np.full(k, float(np.median(r_loc)))
    c = np.argmax(F[:k], axis=1)
    kernel_bounds.proposition21(est.X_fit_, est.dual_coef_, est.gamma_, Xt[:2], c[:2], Rm[:2])
    t_raw, _ = timed(lambda: kernel_bounds.proposition21(
        est.X_fit_, est.dual_coef_, est.gamma_, Xt[:k], c, Rm))
    K = est.dual_coef_.shape[0]
    pairs = n * (n + 1) / 2
    print(f"Prop. 2.1 kernel: {t_raw / k:.3f} s per point for all {K - 1} classes "
          f"({t_raw / k / pairs * 1e9:.2f} ns per pair, 2 cores)")

    s = min(50, n_local, m_fast)
    print(f"\nmean radius on the first {s} points:")
    print(f"  global {r_glob[:s].mean():.4f}   local_fast {r_fast[:s].mean():.4f}   "
          f"local {r_loc[:s].mean():.4f}")
    print(f"  local_fast / local = {r_fast[:s].mean() / r_loc[:s].mean():.4f}")
    sp = min(s, n_paper)
    print(f"  on the first {sp}: paper bound (Prop. 2.1 alone) {r_pap[:sp].mean():.4f}, "
          f"local {r_loc[:sp].mean():.4f} ({r_loc[:sp].mean() / r_pap[:sp].mean():.2f}x), "
          f"local_fast {r_fast[:sp].mean():.4f}")


if __name__ == "__main__":
    main()
