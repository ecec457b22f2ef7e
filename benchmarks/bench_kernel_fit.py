"""Speed, memory and accuracy of KernelCrossLipClassifier.fit on bundled MNIST.

Run from the repository root (heavy: wrap it in ``flock /tmp/cpu.lock`` on a
shared machine)::

    python benchmarks/bench_kernel_fit.py          # full (about 15 minutes on 2 cores)
    python benchmarks/bench_kernel_fit.py --quick  # reduced grid and repeats

Prints, measured in the same run on the bundled 5000 training / 10000 test images:

(a) median wall time of one L-BFGS iteration with ``regularizer='cross_lipschitz'``
    and with ``'rkhs'`` (same gamma; target ratio <= 1.5);
(b) the whole default ``'cross_lipschitz'`` fit (precomputation included) against
    ``sklearn.svm.SVC(kernel='rbf')`` at the same gamma (target ratio <= 4);
(c) the peak memory of that fit (tracemalloc and the process's peak RSS, measured
    in fresh subprocesses; target < 2 GB);
(d) test errors of K-CL over a (gamma_scale, lam) grid and of SVC over a
    (gamma, C) grid (target: best K-CL <= best SVC + 0.3 percentage points).

Measured (full run, 2 shared cores, other jobs running): (a) paired evaluations
40.9 ms (CL) vs 41.2 ms (RKHS), ratio 1.00; fits 0.98 (quick run: 47.7 vs 49.3 ms
per iteration); (b) 9.10 s vs SVC 3.90 s, ratio 2.33 (precomputation 6.5 s,
45 iterations); (c) 0.59 GB tracemalloc peak, 0.77 GB peak resident during the
fit; (d) best K-CL 3.91 % (gamma_scale=2, lam=0.1) vs best SVC 3.97 % (KNN40
gamma, C=10): -0.06 pp. Default K-CL: 4.21 %.
"""

import argparse
import resource
import subprocess
import sys
import time

import numpy as np

MEMORY_CHILD = r"""
import resource, sys, tracemalloc
from sklearn_crosslip.datasets import load_mnist
from sklearn_crosslip.kernel import KernelCrossLipClassifier


def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


X, y, _, _ = load_mnist()
mode = sys.argv[1]
if mode == "tracemalloc":
    tracemalloc.start()
    KernelCrossLipClassifier().fit(X, y)
    print(tracemalloc.get_traced_memory()[1])
else:
    try:  # reset the peak resident set size (Linux), so that it measures the fit only
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = 1
    except OSError:
        reset = 0
    base = status("VmRSS")
    KernelCrossLipClassifier().fit(X, y)
    peak = status("VmHWM")
    if peak < 0:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(base, peak, reset)
"""


def _median(values):
    return float(np.median(np.asarray(values, dtype=float)))


def _fit_timed(est, X, y):
    t0 = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t0


def bench_iteration(X, y, n_repeats, n_iter, n_pairs):
    """(a) time per L-BFGS iteration, CL vs RKHS.

    Two measurements: (1) real fits of ``n_iter`` iterations (``tol=0``),
    interleaved, median over iterations then over repeats; (2) paired: one
    objective evaluation of each problem in turn at the same points, the median
    of the ratios (robust to the load of a shared machine changing over time).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import ThreadpoolController

    from sklearn_crosslip import kernel as km

    settings = (("cross_lipschitz", 1e-2), ("rkhs", 1e-6))
    per = {reg: [] for reg, _ in settings}
    pre = {reg: [] for reg, _ in settings}
    evals = {reg: [] for reg, _ in settings}
    for _ in range(n_repeats):
        for reg, lam in settings:
            est = km.KernelCrossLipClassifier(regularizer=reg, lam=lam, max_iter=n_iter, tol=0.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X, y)
            stats = est._fit_stats
            per[reg].append(_median(stats["iteration_s"]))
            pre[reg].append(stats["precompute_s"])
            evals[reg].append(stats["n_evals"] / est.n_iter_)
    cl, rk = _median(per["cross_lipschitz"]), _median(per["rkhs"])
    print("(a) time per L-BFGS iteration")
    print(f"    fits of {n_iter} iterations, {n_repeats} interleaved repeats "
          "(median per iteration):")
    for reg, _ in settings:
        print(f"      {reg:15s}: {1e3 * _median(per[reg]):7.1f} ms  "
              f"({_median(evals[reg]):.2f} evaluations per iteration; "
              f"precomputation {_median(pre[reg]):.2f} s)")
    print(f"      ratio CL / RKHS: {cl / rk:.2f}")
    # paired evaluations on the same problems as in fit, same threading as in fit
    n = X.shape[0]
    y_idx = np.unique(y, return_inverse=True)[1]
    sqnorm = km._row_sqnorms(X)
    S = km._train_sq_dists(X, sqnorm)
    gamma = 1.0 / km._knn_mean_distance(S, 40) ** 2
    controller = ThreadpoolController()
    n_threads = max(lib.num_threads for lib in controller.select(user_api="blas").lib_controllers)
    objs = []
    for reg, lam in settings:
        obj = km._build_problem([S.copy()], gamma, y_idx, 10, reg, lam)[0]
        obj.blas = (controller, n_threads)
        objs.append(obj)
    del S
    rng = np.random.default_rng(0)
    t = {reg: [] for reg, _ in settings}
    ratios = []
    with controller.limit(limits=1, user_api="blas"):
        for _ in range(n_pairs):
            w = rng.standard_normal(10 * n) * 1e-2
            pair = []
            for (reg, _), obj in zip(settings, objs):
                t0 = time.perf_counter()
                obj(w)
                pair.append(time.perf_counter() - t0)
                t[reg].append(pair[-1])
            ratios.append(pair[0] / pair[1])
    print(f"    paired objective evaluations ({n_pairs} pairs, alternating):")
    for reg, _ in settings:
        print(f"      {reg:15s}: {1e3 * _median(t[reg]):7.1f} ms")
    ratio = _median(ratios)
    print(f"      median paired ratio CL / RKHS: {ratio:.2f}")
    worst = max(cl / rk, ratio)
    verdict = "PASS" if worst <= 1.5 else "FAIL"
    print(f"    target <= 1.5: {verdict} (larger of the two ratios: {worst:.2f})")
    return worst


def bench_fit_vs_svc(X, y, X_test, y_test, n_repeats):
    """(b) whole default CL fit vs SVC(kernel='rbf') at the same gamma."""
    from sklearn.svm import SVC

    from sklearn_crosslip.kernel import KernelCrossLipClassifier

    t_cl, t_svc, iters, pre = [], [], [], []
    est = svc = None
    for _ in range(n_repeats):
        est = KernelCrossLipClassifier()
        t_cl.append(_fit_timed(est, X, y))
        iters.append(est.n_iter_)
        pre.append(est._fit_stats["precompute_s"])
        svc = SVC(kernel="rbf", gamma=est.gamma_, C=10.0)
        t_svc.append(_fit_timed(svc, X, y))
    cl, sv = _median(t_cl), _median(t_svc)
    err_cl = 100 * np.mean(est.predict(X_test) != y_test)
    err_svc = 100 * np.mean(svc.predict(X_test) != y_test)
    print(f"(b) whole fit, median of {n_repeats} interleaved repeats, gamma = KNN40 rule "
          f"= {est.gamma_:.5f}")
    all_cl = ", ".join(f"{t:.2f}" for t in t_cl)
    all_svc = ", ".join(f"{t:.2f}" for t in t_svc)
    print(f"    KernelCrossLipClassifier() : {cl:6.2f} s  (precomputation {_median(pre):.2f} s, "
          f"{int(np.median(iters))} iterations; all: {all_cl})")
    print(f"    SVC(rbf, same gamma, C=10) : {sv:6.2f} s  (all: {all_svc})")
    print(f"    ratio: {cl / sv:.2f}   (target <= 4: {'PASS' if cl / sv <= 4 else 'FAIL'})")
    print(f"    test error: K-CL (defaults) {err_cl:.2f} %, SVC {err_svc:.2f} %")
    return cl / sv


def bench_memory():
    """(c) peak memory of the default fit, in fresh processes."""
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, "tracemalloc"],
                         capture_output=True, text=True, check=True).stdout.split()
    traced = int(out[-1])
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, "rusage"],
                         capture_output=True, text=True, check=True).stdout.split()
    base, peak, reset = int(out[-3]), int(out[-2]), int(out[-1])
    gb = 1024**3
    print("(c) peak memory of KernelCrossLipClassifier().fit on 5000 x 784")
    print(f"    tracemalloc peak (numpy/Python allocations during fit): {traced / gb:.2f} GB")
    what = "during fit" if reset else "whole process (peak could not be reset)"
    print(f"    peak resident set size {what}: {peak / gb:.2f} GB "
          f"(resident before fit, data loaded: {base / gb:.2f} GB)")
    print(f"    target < 2 GB: {'PASS' if max(traced, peak) < 2 * gb else 'FAIL'}")


def bench_accuracy(X, y, X_test, y_test, gamma_scales, lams, svc_scales, svc_Cs):
    """(d) best test error of K-CL over a grid vs best SVC over a comparable grid."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import SVC

    from sklearn_crosslip.kernel import KernelCrossLipClassifier

    print("(d) test error on the 10000 MNIST test images")
    best_cl = (np.inf, None)
    gamma0 = None
    for gs in gamma_scales:
        row = []
        for lam in lams:
            est = KernelCrossLipClassifier(gamma_scale=gs, lam=lam)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # shown as "500 it"
                t = _fit_timed(est, X, y)
            err = 100 * np.mean(est.predict(X_test) != y_test)
            gamma0 = est.gamma_ / gs
            row.append(f"lam={lam:g}: {err:.2f}% ({t:.1f}s, {est.n_iter_} it)")
            best_cl = min(best_cl, (err, (gs, lam)))
        print(f"    K-CL gamma_scale={gs:g}: " + "; ".join(row), flush=True)
    best_svc = (np.inf, None)
    for gs in svc_scales:
        row = []
        for C in svc_Cs:
            svc = SVC(kernel="rbf", gamma=gs * gamma0, C=C)
            t = _fit_timed(svc, X, y)
            err = 100 * np.mean(svc.predict(X_test) != y_test)
            row.append(f"C={C:g}: {err:.2f}% ({t:.1f}s)")
            best_svc = min(best_svc, (err, (gs, C)))
        print(f"    SVC  gamma={gs:g} x KNN40 gamma: " + "; ".join(row), flush=True)
    diff = best_cl[0] - best_svc[0]
    print(f"    best K-CL {best_cl[0]:.2f}% at (gamma_scale, lam)={best_cl[1]}; best SVC "
          f"{best_svc[0]:.2f}% at (gamma_scale, C)={best_svc[1]}")
    print(f"    difference {diff:+.2f} pp (target <= +0.3: {'PASS' if diff <= 0.3 else 'FAIL'})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller grids")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c,d")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    from sklearn_crosslip.datasets import load_mnist

    X, y, X_test, y_test = load_mnist()
    print(f"MNIST: train {X.shape}, test {X_test.shape}; "
          f"{'quick' if args.quick else 'full'} run", flush=True)
    t0 = time.perf_counter()
    if "a" not in skip:
        bench_iteration(X, y, n_repeats=2 if args.quick else 3, n_iter=20 if args.quick else 40,
                        n_pairs=10 if args.quick else 30)
    if "b" not in skip:
        bench_fit_vs_svc(X, y, X_test, y_test, n_repeats=1 if args.quick else 3)
    if "c" not in skip:
        bench_memory()
    if "d" not in skip:
        if args.quick:
            bench_accuracy(X, y, X_test, y_test, (1.0, 2.0), (1e-1, 1e-2), (1.0, 2.0), (10.0,))
        else:
            bench_accuracy(X, y, X_test, y_test, (0.5, 1.0, 2.0, 4.0), (1.0, 1e-1, 1e-2, 1e-3),
                           (0.5, 1.0, 2.0, 4.0), (1.0, 10.0, 100.0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"total {time.perf_counter() - t0:.0f} s (CPU {usage.ru_utime + usage.ru_stime:.0f} s)")


if __name__ == "__main__":
    main()
