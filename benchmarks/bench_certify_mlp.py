"""Benchmark: certified radii (Theorem 2.1) of MLPCrossLipClassifier on bundled MNIST.

Fits (or loads) a one-hidden-layer softplus network with 1024 hidden units and
Cross-Lipschitz regularisation on the 5000 bundled training images, then
certifies the 10000 test images and prints median wall times:

* ``bound="global"`` (target: 10000 points in <= 1 s),
* ``bound="local"`` (Proposition 2.2 with biases, R optimised; target <= 60 s),
* ``bound="local_fast"`` (the O(U) bound ``||W1||_2 ||v * s'(z+)||`` only),

with the mean radii and the number of bound evaluations per point, and the
same for the *reference* measured in the same run: the paper's procedure
(plain bisection on ``R`` over ``[0, g(0)]``, 20 steps, Proposition 2.2
evaluated for every class by the direct ``U x U`` formula), timed on a few
points and extrapolated linearly to 10000 (stated in the output).

Run from the repository root under the shared CPU lock::

    flock /tmp/cpu.lock python benchmarks/bench_certify_mlp.py [--quick]
        [--weights W.npz] [--save-weights W.npz] [--max-iter 200]

Measured on a quiet machine (2 cores, 2026-11-26, 200-iteration L-BFGS fit,
test error 3.85%): global 0.367 s (target 1 s; the fused
``_logits_and_error`` forward pass is nearly all of it), local_fast 4.9 s,
local 29.9 s (target 60 s; 5.0 bound evaluations per point), mean radii
0.187 / 0.316 / 0.498, mean ratio global/local 0.361; the reference
extrapolated to 14088 s (471x slower) with the same radii on its 20 points.
Earlier (2 shared cores, weights of a 200-iteration L-BFGS fit, test error
4.36%, before the fused pass): global 0.91 s (the model's ``_logits`` +
``_logits_error`` took about 1 s of it), local_fast 5.1 s, local 22.2 s (4.4 bound evaluations per point;
up to 46 s while other jobs ran), mean radii 0.254 / 0.353 / 0.489; reference
extrapolated to 15900 s (about 700x slower), same radii.
"""

import argparse
import time
import warnings

import numpy as np
from scipy.special import expit

from _timing import CPU, timed  # benchmarks/_timing.py (script directory)
from sklearn_crosslip.datasets import load_mnist
from sklearn_crosslip.mlp import MLPCrossLipClassifier


def get_model(args, X, y):
    est = MLPCrossLipClassifier(hidden_units=1024, regularizer="cross_lipschitz",
                                max_iter=args.max_iter, random_state=0)
    if args.weights:
        z = np.load(args.weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[:50], y[:50])  # sets classes_ etc.; weights replaced below
        est.coefs_ = [z["W1"], z["W2"]]
        est.intercepts_ = [z["b1"], z["b2"]]
        return est, 0.0
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    fit_time = time.perf_counter() - t
    if args.save_weights:
        np.savez(args.save_weights, W1=est.coefs_[0], W2=est.coefs_[1],
                 b1=est.intercepts_[0], b2=est.intercepts_[1])
    return est, fit_time


def paper_reference(est, X, steps=20):
    """Plain bisection with Proposition 2.2 evaluated literally (per point and class)."""
    W1, W2 = est.coefs_
    b1 = est.intercepts_[0]
    a = est.softplus_alpha
    G = W1.T @ W1
    un = np.sqrt((W1 ** 2).sum(0))
    F = est._logits(X)
    out = np.zeros(len(X))
    for i, x in enumerate(X):
        c = int(np.argmax(F[i]))
        z = x @ W1 + b1
        js = [j for j in range(F.shape[1]) if j != c]
        betas = [np.outer(W2[:, j] - W2[:, c], W2[:, j] - W2[:, c]) * G for j in js]

        def g(R):
            sp, sm = expit(a * (z + R * un)), expit(a * (z - R * un))
            vals = []
            for j, beta in zip(js, betas):
                b2 = (np.maximum(beta, 0) * np.outer(sp, sp)).sum() + \
                     (np.minimum(beta, 0) * np.outer(sm, sm)).sum()
                vals.append((F[i, c] - F[i, j]) / np.sqrt(max(b2, 0.0)))
            return min(vals)

        lo, hi = 0.0, g(0.0)
        best = 0.0
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            gm = g(mid)
            best = max(best, min(gm, mid))
            if gm >= mid:
                lo = mid
            else:
                hi = mid
        out[i] = best
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer repeats and points")
    p.add_argument("--weights", help="load W1, W2, b1, b2 from this .npz instead of fitting")
    p.add_argument("--save-weights", help="save the fitted weights to this .npz")
    p.add_argument("--max-iter", type=int, default=200)
    args = p.parse_args()
    X, y, Xt, yt = load_mnist(subset="5k")
    est, fit_time = get_model(args, X, y)
    err = np.mean(est.predict(Xt) != yt)
    print(f"model: 1024 hidden units, cross_lipschitz, test error {100 * err:.2f}%"
          + (f", fit {fit_time:.1f} s" if fit_time else " (loaded weights)"))
    m = 2000 if args.quick else len(Xt)
    Xc = Xt[:m]
    est.certified_radius(Xc[:20])  # compile / warm up
    rep = 1 if args.quick else 3
    t_glob, r_glob = timed(lambda: est.certified_radius(Xc, bound="global"), 5)
    t_fast, (r_fast, d_fast) = timed(
        lambda: est.certified_radius(Xc, bound="local_fast", return_details=True), rep)
    t_loc, (r_loc, d_loc) = timed(
        lambda: est.certified_radius(Xc, bound="local", return_details=True), rep)
    c_glob, c_fast, c_loc = CPU[-3:]
    t0 = time.perf_counter()
    est._logits_and_error(Xc)
    t_logits = time.perf_counter() - t0
    print(f"\ncertified radius of {m} test points (median wall time of the repeats; "
          "process CPU time of both cores in brackets):")
    print(f"  global      {t_glob:8.3f} s ({c_glob:6.2f})  mean radius {r_glob.mean():.4f}   "
          "(target <= 1 s)")
    print(f"              of which the model's fused _logits_and_error: {t_logits:.3f} s")
    print(f"  local_fast  {t_fast:8.3f} s ({c_fast:6.2f})  mean radius {r_fast.mean():.4f}   "
          f"evals/point {d_fast['n_evaluations'].mean():.2f}")
    print(f"  local       {t_loc:8.3f} s ({c_loc:6.2f})  mean radius {r_loc.mean():.4f}   "
          f"evals/point {d_loc['n_evaluations'].mean():.2f}   (target <= 60 s)")
    pos = r_loc > 0
    print(f"  local vs global: mean ratio global/local {np.mean(r_glob[pos] / r_loc[pos]):.3f}")

    n_ref = 5 if args.quick else 20
    t_ref, r_ref = timed(lambda: paper_reference(est, Xc[:n_ref]), 1)
    ext = t_ref / n_ref * m
    print(f"\nreference (paper: bisection, 20 steps, literal Prop. 2.2 per point and class):")
    print(f"  {n_ref} points in {t_ref:.2f} s -> extrapolated {ext:.0f} s for {m} points")
    print(f"  radius on those points: reference mean {r_ref.mean():.4f}, ours "
          f"{r_loc[:n_ref].mean():.4f} (ours >= reference: "
          f"{np.all(r_loc[:n_ref] >= r_ref * (1 - 2e-3))})")
    print(f"  speed-up of bound='local' over the reference: {ext / t_loc:.0f}x")


if __name__ == "__main__":
    main()
