"""Benchmark: certified training of MLPCrossLipClassifier on the full MNIST split (issue 11).

Trains one hidden layer of 1024 softplus units on the 60000 training images
with ``certified_margin`` (the loss sees Theorem 2.1 at L2 radius eps, see
``docs/certified_training.rst``) and certifies the 10000 test images with
``certified_radius(bound="local_fast")`` (Theorem 2.1 with the O(U) local
bound ``||W1||_2 ||(w_c - w_j) * s'(z^+)||_2``, min'd with the global constant,
the same bound the training loss uses); optionally also ``bound="local"``
(Prop. 2.2) on the first ``--local-points`` test images (default: all).

Printed figures: clean test error; certified accuracy (correct and certified
radius >= eps) at L2 eps = 0.3, 0.5, 1.0, 1.58; the mean certified radius
(0 for misclassified points); the median wall time of a certified-training
epoch against one Cross-Lipschitz epoch (``regularizer="cross_lipschitz"``,
default lam, same batch size) measured in the same run; the whole training
time.

Targets: certified accuracy at 0.3 >= 95 % with test error <= 2 %; time per
epoch <= 3x Cross-Lipschitz; whole training <= 45 min on 2 cores. Published
(same architecture, ReLU; Croce, Andriushchenko & Hein, AISTATS 2019): Wong &
Kolter 94.8 %, MMR + AT 93.6 %, MMR 91.2 %, plain training 33.7 %.

Default recipe (``--schedule step``): Adam, batches of 128,
``certified_margin=0.5`` (training radius) ramped up over the first 30 of 200
epochs, learning rate 1e-3 divided by 10 after 72 % and by 100 after 88 % of
the updates (the authors' schedule, ``learning_rate="step"``).

Measured (2026-12-02, 2 cores, quiet apart from light test runs; default
recipe): test error 1.73 %; certified accuracy (``local_fast``, identical with
``local`` on all 10000 points) **94.87 %** at L2 0.3, 89.33 % at 0.5, 33.42 %
at 1.0, 0.07 % at 1.58; mean certified radius 0.864; 5.40 s per certified
epoch against 22.8 s for one Cross-Lipschitz epoch (0.24x); whole training
20.0 min. Certifying the 10000 points: 5 s (``local_fast``), 14 s
(``local``). On 10000 training points: 0.85 % error, 97.2 % certified at 0.3.

Earlier recipe (constant learning rate: 150 epochs at 1e-3, then 30 at 1e-4
with Adam restarted, ``--schedule constant --epochs 150 --finetune-epochs 30
--finetune-lr-factor 0.1``; under load): 1.75 % error, 94.77 % at 0.3, 88.82 %
at 0.5, 29.66 % at 1.0, mean radius 0.845, 25.1 min.

``--holdout N`` trains on all but the last N training images and reports the
figures on those N instead of the test set (for choosing a recipe without
looking at the test set). The recipe options (``--eps``, ``--epochs``,
``--batch-size``, ``--alpha``, ``--ema``, ``--regularizer``/``--lam``/
``--dropout-rate``, ``--augment-shift``) were compared that way; the figures of
the trials (and of two other losses, ``trial_certified_loss.py``) are in
``bench_certified_training_holdout.json`` and
``docs/certified_training.rst`` (all within about 93.8-94.9 % at 0.3).

The trained model is saved with joblib and the figures as JSON (``--out``);
``--certify-only MODEL`` re-runs the certification of a saved model. Heavy:
run in the background under the shared lock::

    nohup flock /tmp/heavy.lock python benchmarks/bench_certified_training.py \\
        --out /tmp/certified_run > /tmp/certified_run.log 2>&1 &

``--subset 5k`` trains on the 5000-image subset (for tuning).
"""

import argparse
import io
import json
import os
import sys
import time
import warnings

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_crosslip.augmentation import AffineAugmenter
from sklearn_crosslip.datasets import load_mnist
from sklearn_crosslip.mlp import MLPCrossLipClassifier
from sklearn_crosslip.regularizers.certified import shifted_margins

RADII = (0.3, 0.5, 1.0, 1.58)


class _EpochClock(io.TextIOBase):
    """stdout wrapper that timestamps the ``Epoch k`` lines of ``verbose=True``."""

    def __init__(self, stream):
        self.stream, self.stamps = stream, []

    def write(self, s):
        if s.startswith("Epoch "):
            self.stamps.append(time.perf_counter())
        return self.stream.write(s)

    def flush(self):
        self.stream.flush()


def fit_timed(est, X, y):
    """Fit with ``verbose=True``; return (total seconds, per-epoch seconds)."""
    est.set_params(verbose=True)
    clock = _EpochClock(sys.stdout)
    old = sys.stdout
    sys.stdout = clock
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            est.fit(X, y)
            total = time.perf_counter() - t0
    finally:
        sys.stdout = old
    est.set_params(verbose=False)
    per_epoch = np.diff(np.concatenate([[t0], clock.stamps]))
    return total, per_epoch


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def certify(est, Xt, yt, local_points):
    res = {}
    pred = est.predict(Xt)
    ok = pred == yt
    res["test_error_pct"] = 100.0 * float(np.mean(~ok))
    t0 = time.perf_counter()
    r = est.certified_radius(Xt, bound="local_fast")
    res["certify_local_fast_s"] = time.perf_counter() - t0
    for eps in RADII:
        res[f"certified_acc_local_fast_{eps}"] = 100.0 * float(np.mean(ok & (r >= eps)))
        # the training-time criterion (positive shifted margin at the true class)
        res[f"shifted_margin_pos_{eps}"] = 100.0 * float(
            np.mean(shifted_margins(est, Xt, yt, eps) > 0))
    res["mean_certified_radius_local_fast"] = float(np.mean(np.where(ok, r, 0.0)))
    if local_points:
        m = min(local_points, Xt.shape[0])
        t0 = time.perf_counter()
        rl = est.certified_radius(Xt[:m], bound="local")
        res["certify_local_s"] = time.perf_counter() - t0
        res["local_points"] = m
        for eps in RADII:
            res[f"certified_acc_local_{eps}_first{m}"] = 100.0 * float(
                np.mean(ok[:m] & (rl >= eps)))
            res[f"certified_acc_local_fast_{eps}_first{m}"] = 100.0 * float(
                np.mean(ok[:m] & (r[:m] >= eps)))
        res[f"mean_certified_radius_local_first{m}"] = float(np.mean(np.where(ok[:m], rl, 0.0)))
    res["load_average_after_certify"] = load_average()
    return res


def report(res):
    print()
    print(f"clean test error              {res['test_error_pct']:6.2f} %   (target <= 2 %)")
    for eps in RADII:
        line = (f"certified accuracy L2 {eps:<5}    {res[f'certified_acc_local_fast_{eps}']:6.2f} %"
                f"   (local_fast; shifted margin > 0: {res[f'shifted_margin_pos_{eps}']:.2f} %)")
        if eps == 0.3:
            line += "   target >= 95 %"
        print(line)
    print(f"mean certified radius         {res['mean_certified_radius_local_fast']:.4f}"
          " (local_fast)")
    if "local_points" in res:
        m = res["local_points"]
        for eps in RADII:
            loc = res[f"certified_acc_local_{eps}_first{m}"]
            fast = res[f"certified_acc_local_fast_{eps}_first{m}"]
            print(f"  first {m}: L2 {eps:<5} local {loc:6.2f} %  local_fast {fast:6.2f} %")
        print(f"  first {m}: mean radius local {res[f'mean_certified_radius_local_first{m}']:.4f}")
    if "epoch_median_certified_s" in res:
        n_ep = res["n_epochs"] + res.get("finetune_epochs", 0)
        print(f"time/epoch certified          {res['epoch_median_certified_s']:.2f} s (median of "
              f"{n_ep} epochs)")
        if "epoch_cross_lipschitz_s" in res:  # not with --skip-cl
            print(f"time/epoch cross_lipschitz    {res['epoch_cross_lipschitz_s']:.2f} s")
            print(f"ratio certified / CL          {res['epoch_ratio']:.2f}x   (target <= 3x)")
        print(f"whole training                {res['train_total_s'] / 60:.1f} min   "
              "(target <= 45 min)")
    if res.get("under_load"):
        print("NOTE: measured under load (1-min load average > 2.5 at some point: "
              f"{res['load_averages']}); timings are pessimistic.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="certified_training_run",
                        help="directory for model.joblib and figures.json")
    parser.add_argument("--certify-only", default=None, metavar="MODEL",
                        help="certify a saved model (joblib) instead of training")
    parser.add_argument("--subset", default="full", choices=["full", "5k"])
    parser.add_argument("--holdout", type=int, default=0,
                        help="train on all but the last N training images and evaluate on "
                             "them instead of the test set")
    parser.add_argument("--eps", type=float, default=0.5, help="training radius")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--schedule", default="step", choices=["step", "constant"],
                        help="learning_rate of the first phase: 'step' divides it by 10 after "
                             "72 %% and by 100 after 88 %% of the updates (the authors' schedule)")
    parser.add_argument("--ema", type=float, default=None, metavar="DECAY",
                        help="return an exponential moving average of the weights "
                             "(ema_decay of MLPCrossLipClassifier)")
    parser.add_argument("--regularizer", default="none",
                        choices=["none", "weight_decay", "cross_lipschitz", "dropout"],
                        help="regulariser combined with certified training")
    parser.add_argument("--lam", type=float, default=None, help="its weight")
    parser.add_argument("--dropout-rate", type=float, default=0.5,
                        help="dropout_rate with --regularizer dropout")
    parser.add_argument("--augment-shift", type=float, default=0.0, metavar="PIXELS",
                        help="augment every mini-batch with random shifts of up to PIXELS "
                             "(AffineAugmenter without rotation or zoom; 0: none)")
    parser.add_argument("--alpha", type=float, default=10.0,
                        help="softplus_alpha of the hidden units (the paper's a)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--finetune-epochs", type=int, nargs="*", default=[],
                        help="epochs of further phases at lower learning rates (warm start, "
                             "full eps)")
    parser.add_argument("--finetune-lr-factor", type=float, nargs="*", default=[],
                        help="learning rate of each further phase, as a factor of --lr")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="skip the first phase: load DIR/model.joblib and DIR/figures.json")
    parser.add_argument("--local-points", type=int, default=10000,
                        help="test points also certified with bound='local' (0: none)")
    parser.add_argument("--skip-cl", action="store_true",
                        help="do not time the Cross-Lipschitz reference epoch")
    args = parser.parse_args()

    X, y, Xt, yt = load_mnist(subset=args.subset)
    if args.holdout:
        X, y, Xt, yt = X[:-args.holdout], y[:-args.holdout], X[-args.holdout:], y[-args.holdout:]
        print(f"holdout: evaluating on the last {args.holdout} training images", flush=True)
    print(f"MNIST train {X.shape}, test {Xt.shape}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    loads = [load_average()]
    if args.certify_only:
        est = joblib.load(args.certify_only)
        res = {"model": args.certify_only}
    elif args.resume:
        est = joblib.load(os.path.join(args.resume, "model.joblib"))
        with open(os.path.join(args.resume, "figures.json")) as fh:
            first = json.load(fh)
        keep = ("train_points", "eps_train", "epochs", "warmup", "batch_size", "lr",
                "schedule", "ema_decay", "regularizer", "lam", "softplus_alpha", "dropout_rate",
                "augment_shift",
                "epoch_cross_lipschitz_s",
                "train_total_s", "n_epochs",
                "epoch_median_certified_s", "epoch_times_s", "loss_curve", "epoch_ratio",
                "finetune", "finetune_epochs", "resumed_from")
        res = {k: first[k] for k in keep if k in first}
        prev = res.get("resumed_from", [])
        res["resumed_from"] = ([prev] if isinstance(prev, str) else prev) + [args.resume]
    else:
        common = dict(hidden_units=1024, solver="adam", batch_size=args.batch_size,
                      softplus_alpha=args.alpha,
                      learning_rate_init=args.lr, random_state=0)
        res = dict(train_points=int(X.shape[0]), holdout=args.holdout, eps_train=args.eps,
                   epochs=args.epochs,
                   warmup=args.warmup, batch_size=args.batch_size, lr=args.lr,
                   schedule=args.schedule, ema_decay=args.ema, regularizer=args.regularizer,
                   lam=args.lam, softplus_alpha=args.alpha,
                   dropout_rate=args.dropout_rate if args.regularizer == "dropout" else None,
                   augment_shift=args.augment_shift)
        if not args.skip_cl:
            cl = MLPCrossLipClassifier(regularizer="cross_lipschitz", max_iter=1, **common)
            _, cl_epochs = fit_timed(cl, X, y)
            res["epoch_cross_lipschitz_s"] = float(cl_epochs[0])
            loads.append(load_average())
            print(f"one cross_lipschitz epoch: {cl_epochs[0]:.2f} s", flush=True)
            del cl
        augmentation = None
        if args.augment_shift > 0:
            augmentation = AffineAugmenter(max_shift=args.augment_shift, max_rotation=0.0,
                                           max_scale=0.0)
        est = MLPCrossLipClassifier(regularizer=args.regularizer, lam=args.lam,
                                    dropout_rate=args.dropout_rate, augmentation=augmentation,
                                    max_iter=args.epochs, ema_decay=args.ema,
                                    certified_margin=args.eps, certified_warmup=args.warmup,
                                    learning_rate=args.schedule, **common)
        total, per_epoch = fit_timed(est, X, y)
        loads.append(load_average())
        res.update(train_total_s=total, n_epochs=int(est.n_iter_),
                   epoch_median_certified_s=float(np.median(per_epoch)),
                   epoch_times_s=[float(t) for t in per_epoch],
                   loss_curve=[float(v) for v in est.loss_curve_])
        if "epoch_cross_lipschitz_s" in res:
            res["epoch_ratio"] = res["epoch_median_certified_s"] / res["epoch_cross_lipschitz_s"]
        path = os.path.join(args.out, "model_phase1.joblib")
        joblib.dump(est, path)
        print(f"phase 1 trained in {total / 60:.1f} min; model saved to {path}", flush=True)
    if len(args.finetune_epochs) != len(args.finetune_lr_factor):
        parser.error("--finetune-epochs and --finetune-lr-factor need the same length")
    phases = [] if args.certify_only else list(zip(args.finetune_epochs,
                                                   args.finetune_lr_factor))
    for n_ep, factor in phases:
        # further phase: a lower learning rate (Adam restarted), full radius
        est.set_params(warm_start=True, max_iter=n_ep, certified_warmup=0,
                       learning_rate="constant",
                       learning_rate_init=args.lr * factor)
        total2, per2 = fit_timed(est, X, y)
        loads.append(load_average())
        res.setdefault("finetune", []).append(dict(
            epochs=int(est.n_iter_), total_s=total2, lr=args.lr * factor,
            loss_curve=[float(v) for v in est.loss_curve_]))
        res["finetune_epochs"] = res.get("finetune_epochs", 0) + int(est.n_iter_)
        res["train_total_s"] += total2
        res["epoch_times_s"] = res["epoch_times_s"] + [float(t) for t in per2]
        res["epoch_median_certified_s"] = float(np.median(res["epoch_times_s"]))
        if "epoch_cross_lipschitz_s" in res:
            res["epoch_ratio"] = (res["epoch_median_certified_s"]
                                  / res["epoch_cross_lipschitz_s"])
    if not args.certify_only:
        path = os.path.join(args.out, "model.joblib")
        joblib.dump(est, path)
        res["model"] = path
        print(f"trained in {res['train_total_s'] / 60:.1f} min in all; model saved to {path}",
              flush=True)
    res.update(certify(est, Xt, yt, args.local_points))
    loads.append(load_average())
    res["load_averages"] = loads
    res["under_load"] = bool(max(loads) > 2.5)
    res["bound_at_test_time"] = "local_fast (and local on the first --local-points)"
    name = "figures_certify.json" if args.certify_only else "figures.json"
    with open(os.path.join(args.out, name), "w") as fh:
        json.dump(res, fh, indent=1)
    report(res)


if __name__ == "__main__":
    main()
