"""Reproduce the MNIST experiments of Hein & Andriushchenko (2017), Section 5.

``python -m sklearn_crosslip reproduce [--quick] [--out DIR]`` runs, on the
bundled MNIST data (5000 training images, the official 10000 test images):

* kernel methods (Gaussian kernel, KNN40 bandwidth rule): no regularisation,
  the RKHS regulariser (the paper's K-SVM / Kernel-LogReg row) and
  Cross-Lipschitz, with the paper's grids, model selection on a validation
  split of the training set and final numbers on the test set;
* one-hidden-layer softplus networks (1024 units, a = 10) with no
  regularisation, weight decay, dropout and Cross-Lipschitz, each in the three
  settings plain, data augmentation and adversarial training.

For every model it reports the test error, the mean L2 norm of the adversarial
changes of Section 4 (an upper bound on the distance to the decision boundary),
the mean certified radius of Theorem 2.1 (a lower bound) and the mean ratio of
the global to the local certified radius (the paper's Table 1). Results are
appended to ``results.jsonl`` as each model finishes, and ``report.md`` plus
the plots are rewritten after each model, so an interrupted run keeps what it
did.

Definitions used in the tables. The robustness columns are computed on the
first ``n_eval`` test points; "upper" is the mean ``||delta||_2`` over those
points that the model classifies correctly (L2 attack with boundary search,
inputs kept in ``[0, 1]^d``), "lower" is the mean certified radius (no box, as
in the paper) over the same points, and "global/local" is the mean of
``alpha_global / alpha_local`` over them.
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["ReproduceConfig", "run_reproduce", "PAPER_KERNEL_TABLE", "PAPER_TABLE1_MNIST"]

# Published figures (paper Section 5): kernel table on full MNIST (60k train) and Table 1.
PAPER_KERNEL_TABLE = {
    "none": {"test_error": 2.23, "upper": 2.39, "lower": 0.037, "label": "No Reg. (lambda = 0)"},
    "rkhs": {"test_error": 1.48, "upper": 1.91, "lower": 0.058, "label": "K-SVM"},
    "cross_lipschitz": {"test_error": 1.44, "upper": 3.12, "lower": 0.045, "label": "K-CL"},
}
PAPER_TABLE1_MNIST = {"none": 0.69, "dropout": 0.48, "weight_decay": 0.68, "cross_lipschitz": 0.21}

KERNEL_REGULARIZERS = ("none", "rkhs", "cross_lipschitz")
MLP_REGULARIZERS = ("none", "weight_decay", "dropout", "cross_lipschitz")
MLP_SETTINGS = ("plain", "augmentation", "adversarial")


@dataclass
class ReproduceConfig:
    """Settings of one reproduction run (see :func:`ReproduceConfig.from_mode`)."""

    quick: bool = False
    data: str = "5k"  # training set: load_mnist(subset=data)
    n_train: int = 5000
    n_val: int = 1000
    n_test: int = 10000
    n_eval: int = 1000
    n_eval_kernel_cert: int = 100
    kernel_gamma_scales: tuple = (0.5, 1.0, 2.0, 4.0)
    kernel_lams: dict = field(default_factory=lambda: {
        "none": (0.0,),
        "rkhs": (1e-5, 1e-6, 1e-7, 1e-8),
        "cross_lipschitz": (1.0, 1e-1, 1e-2, 1e-3),
    })
    kernel_max_iter: int = 500
    mlp_hidden_units: int = 1024
    mlp_lams: dict = field(default_factory=lambda: {
        "none": (0.0,),
        "weight_decay": (1e-3, 1e-4, 1e-5),
        "dropout": (0.3, 0.5),  # dropout rates
        "cross_lipschitz": (1e-1, 1e-2, 1e-3),
    })
    mlp_settings: tuple = MLP_SETTINGS
    mlp_max_iter: int = 40
    mlp_batch_size: int = 128
    mlp_learning_rate: float = 1e-3
    random_state: int = 0

    @classmethod
    def from_mode(cls, quick):
        """Full settings, or the ``--quick`` ones (under 10 minutes on 2 cores)."""
        if not quick:
            return cls()
        return cls(
            quick=True,
            n_train=2000,
            n_val=500,
            n_test=10000,
            n_eval=200,
            n_eval_kernel_cert=20,
            kernel_gamma_scales=(1.0, 2.0),
            kernel_lams={"none": (0.0,), "rkhs": (1e-6,), "cross_lipschitz": (1e-1, 1e-2)},
            kernel_max_iter=200,
            mlp_hidden_units=1024,
            mlp_lams={"none": (0.0,), "weight_decay": (1e-4,), "dropout": (0.5,),
                      "cross_lipschitz": (1e-2,)},
            mlp_max_iter=16,
        )


def _log(msg):
    print(time.strftime("[%H:%M:%S] ") + msg, flush=True)


def _split(cfg):
    from ..datasets import load_mnist

    X_train, y_train, X_test, y_test = load_mnist(subset=cfg.data)
    X_train, y_train = X_train[: cfg.n_train], y_train[: cfg.n_train]
    X_test, y_test = X_test[: cfg.n_test], y_test[: cfg.n_test]
    n_fit = X_train.shape[0] - cfg.n_val
    return (X_train[:n_fit], y_train[:n_fit], X_train[n_fit:], y_train[n_fit:],
            X_train, y_train, X_test, y_test)


def _batched(fn, X, batch, label):
    """Apply ``fn`` to row batches of ``X`` with progress lines."""
    out = []
    t0 = time.perf_counter()
    for start in range(0, X.shape[0], batch):
        out.append(fn(X[start:start + batch]))
        done = min(start + batch, X.shape[0])
        _log(f"    {label}: {done}/{X.shape[0]} points ({time.perf_counter() - t0:.1f} s)")
    return np.concatenate(out, axis=0)


def evaluate_robustness(est, X, y, *, cert_points=None, cert_bound="local", batch=250):
    """Upper bound, lower bound and global/local ratio on the points ``X``.

    Parameters
    ----------
    est : fitted estimator with the robustness protocol
    X, y : evaluation points and labels
    cert_points : int or None
        Certify only the first ``cert_points`` points (exact kernel bounds are slow).
    cert_bound : str
        ``bound`` passed to ``certified_radius`` for the lower bound.
    batch : int
        Points per progress line.

    Returns
    -------
    dict
        ``upper``, ``lower``, ``global_local_ratio`` (means over correctly
        classified points) and the per-point arrays used for plots.
    """
    import warnings

    pred = est.predict(X)
    correct = pred == y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN rows are counted below
        delta = _batched(lambda Z: est.adversarial_perturbation(Z, norm=2, box=(0.0, 1.0)),
                         X, batch, "attack")
    adv_norm = np.linalg.norm(delta, axis=1)
    n_c = X.shape[0] if cert_points is None else min(cert_points, X.shape[0])
    Xc, cc = X[:n_c], correct[:n_c]
    local = _batched(lambda Z: est.certified_radius(Z, bound=cert_bound), Xc, batch, "certify")
    glob = est.certified_radius(Xc, bound="global")
    # every adversarial example is a check of the certificate: none may lie inside it
    violations = int(np.sum(cc & (local > adv_norm[:n_c])))
    if violations:
        warnings.warn(f"{violations} adversarial examples lie strictly inside their certified "
                      "radius: please report this bug.", RuntimeWarning)
    ok = cc & (local > 0)
    ratio = float(np.mean(glob[ok] / local[ok])) if ok.any() else float("nan")
    found = correct & np.isfinite(adv_norm)
    return {
        "upper": float(np.mean(adv_norm[found])) if found.any() else float("nan"),
        "attack_failures": int(np.sum(correct & ~np.isfinite(adv_norm))),
        "certificate_violations": violations,
        "lower": float(np.mean(local[cc])) if cc.any() else float("nan"),
        "lower_global": float(np.mean(glob[cc])) if cc.any() else float("nan"),
        "global_local_ratio": ratio,
        "n_eval": int(X.shape[0]),
        "n_cert": int(n_c),
        "cert_bound": cert_bound,
        "_delta": delta,
    }


def _kernel_grid(cfg):
    for reg in KERNEL_REGULARIZERS:
        for gs in cfg.kernel_gamma_scales:
            for lam in cfg.kernel_lams[reg]:
                yield reg, {"regularizer": reg, "gamma_scale": gs, "lam": lam,
                            "max_iter": cfg.kernel_max_iter}


def _mlp_params(cfg, reg, setting, value):
    params = {
        "hidden_units": cfg.mlp_hidden_units,
        "softplus_alpha": 10.0,
        "regularizer": reg,
        "solver": "adam",
        "max_iter": cfg.mlp_max_iter,
        "batch_size": cfg.mlp_batch_size,
        "learning_rate_init": cfg.mlp_learning_rate,
        "random_state": cfg.random_state,
    }
    if reg == "dropout":
        params["dropout_rate"] = value
        params["lam"] = 0.0
    else:
        params["lam"] = value
    if setting == "augmentation":
        params["augmentation"] = "affine"
    elif setting == "adversarial":
        params["adversarial_fraction"] = 0.5
        params["input_box"] = (0.0, 1.0)
    return params


def _mlp_grid(cfg):
    for setting in cfg.mlp_settings:
        for reg in MLP_REGULARIZERS:
            for value in cfg.mlp_lams[reg]:
                yield setting, reg, _mlp_params(cfg, reg, setting, value)


class _Run:
    """Bookkeeping of one reproduction: results file, report and plots."""

    def __init__(self, out_dir, cfg, X_eval, y_eval, n_total=None):
        self.t_start = time.perf_counter()
        self.n_total = n_total
        self.out_dir = out_dir
        self.cfg = cfg
        self.X_eval, self.y_eval = X_eval, y_eval
        os.makedirs(out_dir, exist_ok=True)
        self.results_path = os.path.join(out_dir, "results.jsonl")
        self.records = []
        self.deltas = {}
        with open(self.results_path, "w") as fh:
            fh.write("")
        with open(os.path.join(out_dir, "config.json"), "w") as fh:
            json.dump(asdict(cfg), fh, indent=1, default=str)

    def add(self, record, delta=None):
        self.records.append(record)
        if delta is not None:
            self.deltas[record["name"]] = delta
        with open(self.results_path, "a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")
        self.write()

    def write(self):
        from .report import write_report

        progress = None
        if self.n_total is not None:
            progress = {"elapsed": time.perf_counter() - self.t_start, "total": self.n_total}
        write_report(self.records, self.out_dir, self.cfg, self.deltas, self.X_eval, self.y_eval,
                     progress=progress)


def _params_str(params, keys):
    return ", ".join(f"{k}={params[k]!r}" for k in keys if k in params)


def run_reproduce(out_dir="reproduce-results", quick=False, *, parts=("kernel", "mlp"),
                  config=None):
    """Run the reproduction and write ``report.md``, ``results.jsonl`` and plots.

    Parameters
    ----------
    out_dir : str, default="reproduce-results"
        Output directory (created if needed).
    quick : bool, default=False
        Smaller grids, fewer points and epochs: under 10 minutes on 2 cores.
    parts : tuple of {"kernel", "mlp"}, default=("kernel", "mlp")
        Which model families to run.
    config : ReproduceConfig, default=None
        Explicit settings; overrides ``quick``.

    Returns
    -------
    records : list of dict
        One record per trained model (also written to ``results.jsonl``).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ..kernel import KernelCrossLipClassifier
    from ..mlp import MLPCrossLipClassifier

    # fixed iteration / epoch budgets are part of the protocol: do not warn about them
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    cfg = ReproduceConfig.from_mode(quick) if config is None else config
    quick = cfg.quick
    X_fit, y_fit, X_val, y_val, X_train, y_train, X_test, y_test = _split(cfg)
    X_eval, y_eval = X_test[: cfg.n_eval], y_test[: cfg.n_eval]
    mlp_grid = list(_mlp_grid(cfg)) if "mlp" in parts else []
    n_total = (len(KERNEL_REGULARIZERS) if "kernel" in parts else 0) + len(mlp_grid)
    run = _Run(out_dir, cfg, X_eval, y_eval, n_total=n_total)
    _log(f"reproduce ({'quick' if quick else 'full'}): train {X_fit.shape[0]} + val "
         f"{X_val.shape[0]}, test {X_test.shape[0]}, robustness on {cfg.n_eval} test points; "
         f"writing to {out_dir}")

    def finish(family, group, setting, name, est, params, val_err, fit_time, selected):
        test_err = 100.0 * (1.0 - est.score(X_test, y_test))
        rec = {"family": family, "group": group, "setting": setting, "name": name,
               "params": {k: v for k, v in params.items()}, "val_error": val_err,
               "test_error": test_err, "fit_time": fit_time, "selected": selected}
        delta = None
        if selected or family == "mlp":
            cert_points = cfg.n_eval_kernel_cert if family == "kernel" else None
            t0 = time.perf_counter()
            rob = evaluate_robustness(est, X_eval, y_eval, cert_points=cert_points)
            delta = rob.pop("_delta")
            with np.errstate(invalid="ignore"):
                adv_pred = est.predict(np.nan_to_num(X_eval + delta, nan=0.0))
            delta = (delta, adv_pred)
            rec.update(rob)
            rec["robustness_time"] = time.perf_counter() - t0
        run.add(rec, delta)
        _log(f"  -> {name}: test error {test_err:.2f} %"
             + (f", upper {rec['upper']:.3f}, lower {rec['lower']:.4f}, global/local "
                f"{rec['global_local_ratio']:.2f}" if "upper" in rec else ""))
        return rec

    if "kernel" in parts:
        grid = list(_kernel_grid(cfg))
        best = {}
        for i, (reg, params) in enumerate(grid, 1):
            _log(f"[kernel {i}/{len(grid)}] {reg}: {_params_str(params, ['gamma_scale', 'lam'])}")
            t0 = time.perf_counter()
            est = KernelCrossLipClassifier(**params).fit(X_fit, y_fit)
            val_err = 100.0 * (1.0 - est.score(X_val, y_val))
            _log(f"  fitted in {time.perf_counter() - t0:.1f} s, validation error {val_err:.2f} %")
            if reg not in best or val_err < best[reg][0]:
                best[reg] = (val_err, params)
        for reg in KERNEL_REGULARIZERS:
            val_err, params = best[reg]
            _log(f"[kernel final] {reg}: refit on {X_train.shape[0]} points with "
                 f"{_params_str(params, ['gamma_scale', 'lam'])}")
            t0 = time.perf_counter()
            est = KernelCrossLipClassifier(**params).fit(X_train, y_train)
            finish("kernel", reg, "plain", f"kernel-{reg}", est, params, val_err,
                   time.perf_counter() - t0, True)

    if "mlp" in parts:
        for i, (setting, reg, params) in enumerate(mlp_grid, 1):
            _log(f"[mlp {i}/{len(mlp_grid)}] {setting} / {reg}: "
                 f"{_params_str(params, ['lam', 'dropout_rate'])}")
            t0 = time.perf_counter()
            est = MLPCrossLipClassifier(**params).fit(X_fit, y_fit)
            fit_time = time.perf_counter() - t0
            val_err = 100.0 * (1.0 - est.score(X_val, y_val))
            _log(f"  fitted in {fit_time:.1f} s, validation error {val_err:.2f} %")
            value = params.get("dropout_rate") if reg == "dropout" else params["lam"]
            finish("mlp", reg, setting, f"mlp-{setting}-{reg}-{value:g}", est, params, val_err,
                   fit_time, False)
    report = os.path.join(out_dir, "report.md")
    _log(f"done in {time.perf_counter() - run.t_start:.0f} s; report: {report}")
    if os.path.exists(report):
        with open(report) as fh:  # the result tables, as written to the report
            print("\n" + "\n".join(line for line in fh.read().splitlines()
                                    if line.startswith(("|", "#"))), flush=True)
    return run.records
