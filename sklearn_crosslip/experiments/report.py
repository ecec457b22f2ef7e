"""Markdown report and figures of the reproduction (paper Section 5, Figures 2 and 3)."""

import os

import numpy as np

__all__ = ["write_report", "select_models"]

_REG_LABELS = {
    "none": "None",
    "rkhs": "RKHS (K-SVM row)",
    "cross_lipschitz": "Cross-Lipschitz",
    "weight_decay": "Weight decay",
    "dropout": "Dropout",
}


def _fmt(v, spec):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return format(v, spec)


def select_models(records):
    """Model selection: per (family, setting, regulariser), the lowest validation error.

    Parameters
    ----------
    records : list of dict
        Records written by :func:`~sklearn_crosslip.experiments.reproduce.run_reproduce`.

    Returns
    -------
    selected : dict
        ``(family, setting, group) -> record``; kernel records are those refit
        on the whole training set.
    """
    out = {}
    for r in records:
        if r["family"] == "kernel" and not r.get("selected"):
            continue
        key = (r["family"], r["setting"], r["group"])
        if key not in out or r["val_error"] < out[key]["val_error"]:
            out[key] = r
    return out


def _hyper(r):
    p = r["params"]
    if r["family"] == "kernel":
        return f"gamma_scale={p['gamma_scale']:g}, lam={p['lam']:g}"
    if r["group"] == "dropout":
        return f"dropout_rate={p.get('dropout_rate', 0):g}"
    return f"lam={p['lam']:g}"


def write_report(records, out_dir, cfg, deltas=None, X_eval=None, y_eval=None, progress=None):
    """Write ``report.md`` (and PNG figures when matplotlib is available).

    Parameters
    ----------
    records : list of dict
        One record per trained model.
    out_dir : str
        Output directory.
    cfg : ReproduceConfig
        Settings of the run (printed in the report).
    deltas : dict, optional
        ``name -> (delta, adversarial_prediction)`` on the evaluation points,
        for Figure 3.
    X_eval, y_eval : ndarray, optional
        The evaluation points, for Figure 3.
    progress : dict, optional
        ``{"elapsed": seconds, "total": number of models planned}``: the
        report then states the wall time so far and whether the run is complete.

    Returns
    -------
    path : str
        Path of the written report.
    """
    from .reproduce import MLP_REGULARIZERS, MLP_SETTINGS, PAPER_KERNEL_TABLE, PAPER_TABLE1_MNIST

    sel = select_models(records)
    figures = _write_figures(records, sel, out_dir, deltas or {}, X_eval, y_eval)
    n_fit = cfg.n_train - cfg.n_val
    lines = [
        "# Reproduction of Hein & Andriushchenko (2017), Section 5, on bundled MNIST",
        "",
        f"Mode: **{'quick' if cfg.quick else 'full'}**. Regenerate with "
        f"`python -m sklearn_crosslip reproduce{' --quick' if cfg.quick else ''} --out DIR`.",
        "",
        f"Data: {cfg.n_train} training images of the bundled MNIST subset ({n_fit} to fit, "
        f"{cfg.n_val} for model selection; the selected kernel models are refit on all "
        f"{cfg.n_train}), the first {cfg.n_test} images of the official test set for the test "
        f"error. The paper trains on the full 60000 images, so its test errors are lower.",
        "",
        f"Robustness columns on the first {cfg.n_eval} test points, over the correctly classified "
        "ones: **upper** = mean L2 norm of the Section 4 adversarial change (L2, boundary search, "
        "inputs kept in [0, 1]^d); **lower** = mean certified radius of Theorem 2.1 (local bound, "
        "no box, as in the paper); **global/local** = mean ratio of the radius from the global "
        "cross-Lipschitz constant to the local one (the paper's Table 1). Every lower bound is a "
        "formal guarantee; every upper bound is a real adversarial example.",
        "",
    ]
    if progress is not None:
        done, total = len(records), progress["total"]
        state = "complete" if done >= total else f"in progress, {done} of {total} models"
        lines += [
            f"Wall time: {progress['elapsed']:.0f} s ({state}) on {os.cpu_count()} CPU cores.",
            "",
        ]
    checked = [r for r in records if "certificate_violations" in r]
    if checked:
        n_viol = sum(r["certificate_violations"] for r in checked)
        n_pts = sum(r["n_cert"] for r in checked)
        lines += [
            f"Certificate check: for {len(checked)} models, the adversarial example of each of "
            f"{n_pts} certified points was compared with its certified radius; "
            + ("**none lay inside it**." if n_viol == 0 else
               f"**{n_viol} lay inside it: this is a bug, please report it**."),
            "",
        ]
    kern = [sel[k] for k in sorted(sel) if k[0] == "kernel"]
    if kern:
        lines += [
            "## Kernel methods (paper: table of Section 5)",
            "",
            f"Certified radii of kernel models use exact Proposition 2.1 on the first "
            f"{cfg.n_eval_kernel_cert} evaluation points.",
            "",
            "| regulariser | selected | val. error | test error | upper | lower "
            "| paper test error | paper upper | paper lower |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for reg in ("none", "rkhs", "cross_lipschitz"):
            r = sel.get(("kernel", "plain", reg))
            if r is None:
                continue
            pk = PAPER_KERNEL_TABLE[reg]
            lines.append(
                f"| {pk['label']} | {_hyper(r)} | {r['val_error']:.2f} % | {r['test_error']:.2f} % "
                f"| {_fmt(r.get('upper'), '.3f')} | {_fmt(r.get('lower'), '.4f')} "
                f"| {pk['test_error']:.2f} % | {pk['upper']:.2f} | {pk['lower']:.3f} |"
            )
        lines.append("")
    mlp = [r for r in records if r["family"] == "mlp"]
    if mlp:
        lines += [f"## One-hidden-layer networks ({cfg.mlp_hidden_units} softplus units, a = 10, "
                  f"Adam, {cfg.mlp_max_iter} epochs)", ""]
        lines += [
            "Selected model per regulariser and setting (lowest validation error):",
            "",
            "| setting | regulariser | selected | test error | upper | lower | global/local |",
            "|---|---|---|---|---|---|---|",
        ]
        for setting in MLP_SETTINGS:
            for reg in MLP_REGULARIZERS:
                r = sel.get(("mlp", setting, reg))
                if r is None:
                    continue
                lines.append(
                    f"| {setting} | {_REG_LABELS[reg]} | {_hyper(r)} | {r['test_error']:.2f} % "
                    f"| {_fmt(r.get('upper'), '.3f')} | {_fmt(r.get('lower'), '.4f')} "
                    f"| {_fmt(r.get('global_local_ratio'), '.2f')} |"
                )
        lines += ["", "### Table 1: mean ratio global / local certified radius (plain setting)", "",
                  "| | " + " | ".join(_REG_LABELS[r] for r in MLP_REGULARIZERS) + " |",
                  "|---" * (len(MLP_REGULARIZERS) + 1) + "|"]
        ours = [sel.get(("mlp", "plain", reg)) for reg in MLP_REGULARIZERS]
        lines.append("| this run | " + " | ".join(
            _fmt(r.get("global_local_ratio"), ".2f") if r else "n/a" for r in ours) + " |")
        lines.append("| paper (MNIST) | " + " | ".join(
            f"{PAPER_TABLE1_MNIST[reg]:.2f}" for reg in MLP_REGULARIZERS) + " |")
        lines += ["", "### All trained networks", "",
                  "| setting | regulariser | hyperparameter | val. error | test error | upper "
                  "| lower | global/local | fit time |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in mlp:
            lines.append(
                f"| {r['setting']} | {_REG_LABELS[r['group']]} | {_hyper(r)} | "
                f"{r['val_error']:.2f} % | {r['test_error']:.2f} % | {_fmt(r.get('upper'), '.3f')} "
                f"| {_fmt(r.get('lower'), '.4f')} | {_fmt(r.get('global_local_ratio'), '.2f')} "
                f"| {r['fit_time']:.0f} s |")
        lines.append("")
    kall = [r for r in records if r["family"] == "kernel" and not r.get("selected")]
    if figures:
        lines += ["## Figures", ""]
        for title, fname in figures:
            lines += [f"**{title}**", "", f"![{title}]({fname})", ""]
    if kall:
        lines += ["## Kernel grid (validation errors)", "",
                  "| regulariser | hyperparameters | val. error |", "|---|---|---|"]
        for r in kall:
            lines.append(f"| {_REG_LABELS[r['group']]} | {_hyper(r)} | {r['val_error']:.2f} % |")
        lines.append("")
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path


def _write_figures(records, sel, out_dir, deltas, X_eval, y_eval):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional
        return []
    from .reproduce import MLP_REGULARIZERS, MLP_SETTINGS

    figures = []
    mlp = [r for r in records if r["family"] == "mlp" and "upper" in r]
    settings = [s for s in MLP_SETTINGS if any(r["setting"] == s for r in mlp)]
    if settings:
        # Figure 2 in spirit: test error against the upper and lower bounds, per hyperparameter.
        fig, axes = plt.subplots(len(settings), 2, figsize=(10, 3.2 * len(settings)), squeeze=False)
        colors = dict(zip(MLP_REGULARIZERS, ["tab:gray", "tab:blue", "tab:green", "tab:red"]))
        for row, setting in enumerate(settings):
            for col, key in enumerate(("upper", "lower")):
                ax = axes[row, col]
                for reg in MLP_REGULARIZERS:
                    rs = [r for r in mlp if r["setting"] == setting and r["group"] == reg]
                    if rs:
                        ax.scatter([r[key] for r in rs], [r["test_error"] for r in rs],
                                   color=colors[reg], label=_REG_LABELS[reg], s=30)
                ax.set_xlabel("mean ||delta||_2 of adversarial changes" if key == "upper"
                              else "mean certified radius (Theorem 2.1)")
                ax.set_ylabel("test error (%)")
                ax.set_title(f"{setting}: {'upper' if key == 'upper' else 'lower'} bounds")
                ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "figure2_bounds.png"), dpi=90)
        plt.close(fig)
        figures.append(("Figure 2 (in spirit): test error against upper and lower bounds",
                        "figure2_bounds.png"))
    chosen = [(k, r) for k, r in sorted(sel.items()) if r["name"] in deltas
              and (k[0] == "kernel" or k[1] == "plain")]
    if chosen and X_eval is not None:
        # Figure 3: one test digit and each model's adversarial image.
        ok = np.ones(X_eval.shape[0], dtype=bool)
        for _, r in chosen:
            delta, adv_pred = deltas[r["name"]]
            ok &= np.isfinite(delta).all(axis=1)
        ones = np.flatnonzero(ok & (y_eval == 1))
        idx = int(ones[0]) if ones.size else (int(np.flatnonzero(ok)[0]) if ok.any() else None)
        if idx is not None:
            n = len(chosen) + 1
            fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6))
            side = int(round(np.sqrt(X_eval.shape[1])))
            axes[0].imshow(X_eval[idx].reshape(side, side), cmap="gray", vmin=0, vmax=1)
            axes[0].set_title(f"original, class {y_eval[idx]}", fontsize=8)
            for ax, (key, r) in zip(axes[1:], chosen):
                delta, adv_pred = deltas[r["name"]]
                ax.imshow((X_eval[idx] + delta[idx]).reshape(side, side), cmap="gray", vmin=0,
                          vmax=1)
                label = f"{key[0]}-{_REG_LABELS[key[2]]}"
                ax.set_title(f"{label}\npred {adv_pred[idx]}, "
                             f"||d||={np.linalg.norm(delta[idx]):.2f}", fontsize=7)
            for ax in axes:
                ax.axis("off")
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, "figure3_adversarial.png"), dpi=90)
            plt.close(fig)
            figures.append(("Figure 3: a test digit and each model's adversarial image",
                            "figure3_adversarial.png"))
    return figures
