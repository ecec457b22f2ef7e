"""Command line: ``python -m sklearn_crosslip [demo | reproduce [--quick] [--out DIR] ...]``."""

import argparse
import sys
import time

__all__ = ["main"]


def _demo(args):
    import numpy as np

    from .datasets import load_mnist
    from .kernel import KernelCrossLipClassifier

    X_train, y_train, X_test, y_test = load_mnist(subset="5k")
    print(f"bundled MNIST (5000-image subset): {X_train.shape[0]} training, "
          f"{X_test.shape[0]} test images", flush=True)
    t0 = time.perf_counter()
    est = KernelCrossLipClassifier().fit(X_train, y_train)
    fit_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    err = 100.0 * (1.0 - est.score(X_test, y_test))
    pred_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_cert = args.n_certify
    radius = est.certified_radius(X_test[:n_cert], y_test[:n_cert], bound="local_fast")
    cert_time = time.perf_counter() - t0
    print(f"{est!r}")
    print(f"| model | test error | fit time | predict time | mean certified radius ({n_cert} pts) |")
    print("|---|---|---|---|---|")
    print(f"| K-CL (gamma_={est.gamma_:.4g}) | {err:.2f} % | {fit_time:.1f} s | {pred_time:.1f} s "
          f"| {np.mean(radius):.4f} ({cert_time:.1f} s) |")
    return 0


def _reproduce(args):
    from .experiments.reproduce import run_reproduce

    mode = "quick" if args.quick else "subset" if args.subset else "paper"
    run_reproduce(args.out, quick=mode, parts=tuple(args.parts), restart=args.restart,
                  jobs=args.jobs)
    return 0


def main(argv=None):
    """Entry point of ``python -m sklearn_crosslip`` and the ``sklearn-crosslip`` script.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    status : int
        Process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_crosslip",
        description="Cross-Lipschitz classifiers with formal robustness guarantees "
        "(Hein & Andriushchenko, NIPS 2017).",
    )
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="fit the kernel model on bundled MNIST, print test error "
                          "and timing (the default command)")
    demo.add_argument("--n-certify", type=int, default=200,
                      help="number of test points to certify (default 200)")
    rep = sub.add_parser("reproduce", help="reproduce the paper's MNIST experiments and write a "
                         "Markdown report with plots")
    size = rep.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="small grids on 2000 images of the 5000-image subset: under 10 "
                      "minutes on 2 cores")
    size.add_argument("--subset", action="store_true",
                      help="the paper's grids on the 5000-image subset (about 75 minutes); "
                      "without --quick or --subset the run is at the paper's scale (60000 "
                      "training images, hours, resumable)")
    rep.add_argument("--out", default="reproduce-results",
                     help="output directory (default: ./reproduce-results)")
    rep.add_argument("--parts", nargs="+", choices=["kernel", "mlp"], default=["kernel", "mlp"],
                     help="model families to run (default: both)")
    rep.add_argument("--jobs", type=int, default=1,
                     help="networks trained side by side, each with cores/JOBS threads "
                     "(default 1)")
    rep.add_argument("--restart", action="store_true",
                     help="discard an unfinished run in --out instead of resuming it (by "
                     "default a run resumes where an interrupted one with the same settings "
                     "stopped)")
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo"] + list(argv if argv is not None else sys.argv[1:]))
    if args.command == "reproduce":
        return _reproduce(args)
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
