"""Benchmark: MLPCrossLipClassifier (L-BFGS) against scikit-learn's MLPClassifier.

On the bundled MNIST (5000 training images, 10000 test images) this script fits

* the reference, ``sklearn.neural_network.MLPClassifier(hidden_layer_sizes=(1024,),
  solver="lbfgs")`` (ReLU, its default ``alpha=1e-4``),
* ``MLPCrossLipClassifier(regularizer="weight_decay")`` and
* ``MLPCrossLipClassifier(regularizer="cross_lipschitz")`` (default ``lam`` and,
  without ``--quick``, a small grid of ``lam``),

all with the same L-BFGS iteration budget, and prints the median wall time per
L-BFGS iteration (timestamps taken by a callback injected into
``scipy.optimize.minimize``, which both libraries call), the ratio to the
reference measured in the same run, and the test errors.

Targets (issue 3): weight decay <= 1.0x and Cross-Lipschitz <= 2.0x the
reference's time per iteration; test error of weight decay within 0.3 points
of the reference, tuned Cross-Lipschitz within 0.5 points of weight decay.

Run under the shared CPU lock::

    flock /tmp/cpu.lock python benchmarks/bench_mlp_fit.py [--quick]
"""

import argparse
import contextlib
import time
import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from sklearn_crosslip.datasets import load_mnist
from sklearn_crosslip.mlp import MLPCrossLipClassifier


@contextlib.contextmanager
def iteration_timer(stamps):
    """Record a timestamp at the start of every L-BFGS run and after each iteration."""
    original = scipy.optimize.minimize

    def minimize(*args, **kwargs):
        user_cb = kwargs.get("callback")

        def callback(intermediate_result):
            stamps.append(time.perf_counter())
            if user_cb is not None:
                user_cb(intermediate_result)

        kwargs["callback"] = callback
        stamps.append(time.perf_counter())
        return original(*args, **kwargs)

    scipy.optimize.minimize = minimize
    try:
        yield
    finally:
        scipy.optimize.minimize = original


def run(name, est, X, y, Xt, yt):
    stamps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        with iteration_timer(stamps):
            est.fit(X, y)
        total = time.perf_counter() - t0
    per_iter = np.diff(stamps)
    err = 100.0 * np.mean(est.predict(Xt) != yt)
    res = dict(name=name, median=float(np.median(per_iter)), n_iter=int(est.n_iter_),
               total=total, error=err)
    print(f"{name:<34s} iters {res['n_iter']:4d}  median/iter {res['median']:.3f} s  "
          f"fit {total:6.1f} s  test error {err:5.2f} %", flush=True)
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 iterations, no lam grid (timings only; errors not comparable)")
    parser.add_argument("--max-iter", type=int, default=None, help="L-BFGS iteration budget")
    parser.add_argument("--cl-lams", type=float, nargs="*", default=None,
                        help="extra lam values for cross_lipschitz")
    parser.add_argument("--wd-lams", type=float, nargs="*", default=None,
                        help="extra lam values for weight_decay")
    parser.add_argument("--hidden-units", type=int, default=1024)
    args = parser.parse_args()
    budget = args.max_iter or (20 if args.quick else 200)
    cl_lams = args.cl_lams if args.cl_lams is not None else ([] if args.quick else [1e-4])
    wd_lams = args.wd_lams if args.wd_lams is not None else []

    X, y, Xt, yt = load_mnist()
    U = args.hidden_units
    print(f"MNIST train {X.shape}, test {Xt.shape}; hidden units {U}; L-BFGS budget {budget}")
    ref = run("sklearn MLPClassifier (ref)",
              MLPClassifier(hidden_layer_sizes=(U,), solver="lbfgs", max_iter=budget,
                            random_state=0), X, y, Xt, yt)
    common = dict(hidden_units=U, max_iter=budget, random_state=0)
    # lam = alpha / (2 n) is scikit-learn's own L2 penalty (its default alpha = 1e-4)
    lam_match = 1e-4 / (2 * X.shape[0])
    wd_match = run(f"weight_decay lam={lam_match:g} (sklearn's)",
                   MLPCrossLipClassifier(regularizer="weight_decay", lam=lam_match, **common),
                   X, y, Xt, yt)
    wd = run("weight_decay (default lam)",
             MLPCrossLipClassifier(regularizer="weight_decay", **common), X, y, Xt, yt)
    for lam in wd_lams:
        run(f"weight_decay lam={lam:g}",
            MLPCrossLipClassifier(regularizer="weight_decay", lam=lam, **common), X, y, Xt, yt)
    cl = run("cross_lipschitz (default lam)",
             MLPCrossLipClassifier(regularizer="cross_lipschitz", **common), X, y, Xt, yt)
    for lam in cl_lams:
        run(f"cross_lipschitz lam={lam:g}",
            MLPCrossLipClassifier(regularizer="cross_lipschitz", lam=lam, **common),
            X, y, Xt, yt)

    print()
    for name, res in (("weight_decay (sklearn's lam)", wd_match),
                      ("weight_decay (default lam)", wd)):
        print(f"time/iter {name:<29s} / sklearn: {res['median'] / ref['median']:.2f}x "
              "(target <= 1.0x)")
    print(f"time/iter {'cross_lipschitz (default lam)':<29s} / sklearn: "
          f"{cl['median'] / ref['median']:.2f}x (target <= 2.0x)")
    print(f"test error weight_decay (sklearn's lam) - sklearn: "
          f"{wd_match['error'] - ref['error']:+.2f} pp (target within 0.3)")
    print(f"test error weight_decay (default lam)   - sklearn: "
          f"{wd['error'] - ref['error']:+.2f} pp (negative = better)")
    print(f"test error cross_lipschitz (default lam) - weight_decay (default lam): "
          f"{cl['error'] - wd['error']:+.2f} pp (target <= +0.5)")
    if args.quick:
        print("(--quick: the test errors after so few iterations are not the targets' figures)")


if __name__ == "__main__":
    main()
