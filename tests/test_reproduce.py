"""End-to-end run of the reproduction command on a tiny configuration."""

import json

import numpy as np
import pytest

from sklearn_crosslip.__main__ import main
from sklearn_crosslip.experiments.reproduce import (
    KERNEL_REGULARIZERS,
    NETWORK_GROUPS,
    MLP_SETTINGS,
    ReproduceConfig,
    run_reproduce,
)


def _tiny_config():
    return ReproduceConfig(
        quick=True, n_train=160, n_val=40, n_test=120, n_eval=12, n_eval_kernel_cert=4,
        kernel_gamma_scales=(1.0, 2.0),
        kernel_lams={"none": (0.0,), "rkhs": (1e-4,), "cross_lipschitz": (1e-1, 1e-2)},
        kernel_max_iter=20, mlp_hidden_units=8,
        mlp_lams={"none": (0.0,), "weight_decay": (1e-4,), "dropout": (0.5,),
                  "cross_lipschitz": (1e-2,), "certified": (0.3,)},
        mlp_max_iter=2, mlp_batch_size=40,
    )


def test_run_reproduce_tiny_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    cfg = _tiny_config()
    records = run_reproduce(str(tmp_path), config=cfg)
    n_mlp = len(MLP_SETTINGS) * len(NETWORK_GROUPS)
    n_grid = sum(len(cfg.kernel_gamma_scales) * len(cfg.kernel_lams[r])
                 for r in KERNEL_REGULARIZERS)
    assert len(records) == n_grid + len(KERNEL_REGULARIZERS) + n_mlp
    # one line per model, written as each finished
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [r["name"] for r in records]
    kern = [r for r in records if r["family"] == "kernel" and r["selected"]]
    assert {r["group"] for r in kern} == set(KERNEL_REGULARIZERS)
    # the refit model of each regulariser is the grid point with the lowest validation error
    for r in kern:
        grid = [g for g in records if g["kind"] == "kernel-grid" and g["group"] == r["group"]]
        assert r["params"] == min(grid, key=lambda g: g["val_error"])["params"]
    for r in kern + [r for r in records if r["family"] == "mlp"]:
        assert 0.0 <= r["test_error"] <= 100.0
        assert r["certificate_violations"] == 0
        # the attack's mean change is an upper bound, the certified radius a lower bound
        assert np.isfinite(r["upper"]) and r["upper"] > 0
        assert 0.0 <= r["lower"] <= r["upper"]
        assert 0.0 <= r["global_local_ratio"] <= 1.0 + 1e-12
        acc = r["certified_accuracy"]
        assert set(acc) == {"0.3", "0.5", "1"}
        # certified accuracy falls with the radius and never exceeds the clean accuracy
        assert r["cert_points_accuracy"] >= acc["0.3"] >= acc["0.5"] >= acc["1"] >= 0.0
        if r["family"] == "mlp":  # L-infinity columns: attack and certificate in that norm
            assert r["linf_certificate_violations"] == 0
            assert 0.0 <= r["linf_lower"] <= r["linf_upper"] <= r["upper"]
            assert 0.0 <= r["linf_certified_accuracy"]["0.1"] <= r["cert_points_accuracy"]
    assert {r["setting"] for r in records if r["family"] == "mlp"} == set(MLP_SETTINGS)
    cert = [r for r in records if r["group"] == "certified"]
    assert len(cert) == len(MLP_SETTINGS)
    assert all(r["params"]["certified_margin"] == 0.3 for r in cert)
    text = (tmp_path / "report.md").read_text()
    assert "Wall time:" in text and "(complete)" in text
    assert "none lay inside it" in text
    assert "Table 1" in text
    assert "## Which claims of the paper hold" in text and "Wong & Kolter" in text
    assert "| plain | Certified training | eps=0.3 |" in text
    assert "L-inf cert. acc. 0.1" in text and "certified accuracy at L-infinity 0.1" in text
    assert (tmp_path / "figure2_bounds.png").stat().st_size > 1000
    assert (tmp_path / "figure3_adversarial.png").stat().st_size > 1000
    assert json.loads((tmp_path / "config.json").read_text())["n_train"] == 160


def test_reproduce_command_line_parts(tmp_path, monkeypatch, capsys):
    import sklearn_crosslip.experiments.reproduce as rep

    cfg = _tiny_config()
    monkeypatch.setattr(rep.ReproduceConfig, "from_mode", classmethod(lambda cls, quick: cfg))
    main(["reproduce", "--quick", "--out", str(tmp_path), "--parts", "kernel"])
    out = capsys.readouterr().out
    assert "kernel final" in out and "| K-CL |" in out
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sum(r["selected"] for r in recs) == len(KERNEL_REGULARIZERS)
    assert {r["family"] for r in recs} == {"kernel"}


def test_report_counts_every_part_of_the_run(tmp_path):
    # a run done in pieces (--parts kernel, then --parts mlp) is "complete" only at the end,
    # and the count is of models, whichever part is running
    cfg = _tiny_config()
    cfg.mlp_settings = ("plain",)
    n_kernel = 2 * (1 + 1 + 2) + len(KERNEL_REGULARIZERS)
    n_mlp = len(NETWORK_GROUPS)
    run_reproduce(str(tmp_path), config=cfg, parts=("kernel",))
    text = (tmp_path / "report.md").read_text()
    assert f"in progress, {n_kernel} of {n_kernel + n_mlp} models" in text
    run_reproduce(str(tmp_path), config=cfg, parts=("mlp",))
    text = (tmp_path / "report.md").read_text()
    assert "(complete)" in text and "in progress" not in text


def test_reproduce_command_rejects_unknown_part(tmp_path):
    with pytest.raises(SystemExit):
        main(["reproduce", "--out", str(tmp_path), "--parts", "svm"])


def _strip_times(records):
    drop = {"fit_time", "robustness_time", "wall_time"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_killed_run_resumes_to_the_same_report(tmp_path):
    """Kill a tiny run mid-way (SIGKILL), resume it: same records and report as a clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = _tiny_config()
    cfg.mlp_settings = ("plain",)
    clean = run_reproduce(str(tmp_path / "clean"), config=cfg, parts=("kernel", "mlp"))
    out = tmp_path / "killed"
    code = (
        "import sys, json\n"
        "from sklearn_crosslip.experiments.reproduce import ReproduceConfig, run_reproduce\n"
        "cfg = ReproduceConfig(**json.loads(sys.argv[2]))\n"
        "run_reproduce(sys.argv[1], config=cfg)\n"
    )
    args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), json.dumps(args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 5:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [json.loads(line) for line in results.read_text().splitlines()]  # no torn line
    assert 5 <= len(done) < len(clean)
    resumed = run_reproduce(str(out), config=ReproduceConfig(**args))
    assert _strip_times(resumed) == _strip_times(clean)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]

    def body(path):  # the report without its wall-time line
        return [line for line in path.read_text().splitlines() if "Wall time" not in line]

    assert body(out / "report.md") == body(tmp_path / "clean" / "report.md")
    # a second resume has nothing left to do and leaves the records as they are
    again = run_reproduce(str(out), config=ReproduceConfig(**args))
    assert _strip_times(again) == _strip_times(clean)


def test_resume_refuses_other_settings_and_restart_discards(tmp_path):
    cfg = _tiny_config()
    cfg.mlp_settings = ("plain",)
    run_reproduce(str(tmp_path), config=cfg, parts=("kernel",))
    other = _tiny_config()
    other.n_eval = 10
    with pytest.raises(ValueError, match="other settings"):
        run_reproduce(str(tmp_path), config=other, parts=("kernel",))
    recs = run_reproduce(str(tmp_path), config=other, parts=("kernel",), restart=True)
    assert all(r.get("n_eval", 10) == 10 for r in recs)
    assert json.loads((tmp_path / "config.json").read_text())["n_eval"] == 10


def test_networks_side_by_side_give_the_same_models(tmp_path):
    cfg = _tiny_config()
    cfg.mlp_settings = ("plain",)
    serial = run_reproduce(str(tmp_path / "serial"), config=cfg, parts=("mlp",))
    side = run_reproduce(str(tmp_path / "jobs"), config=cfg, parts=("mlp",), jobs=2)
    assert sorted(r["name"] for r in side) == sorted(r["name"] for r in serial)
    by_name = {r["name"]: r for r in serial}
    for r in side:  # same seeds, same data: the same networks up to BLAS summation order
        ref = by_name[r["name"]]
        assert abs(r["test_error"] - ref["test_error"]) <= 1.0
        assert r["certificate_violations"] == 0
        assert np.isclose(r["lower"], ref["lower"], rtol=0.05)
    with pytest.raises(ValueError, match="jobs"):
        run_reproduce(str(tmp_path / "bad"), config=cfg, parts=("mlp",), jobs=0)


def test_modes_and_the_paper_scale_settings():
    paper = ReproduceConfig.from_mode(False)
    assert paper.mode == "paper" and paper.data == "full" and paper.n_train == 60000
    assert paper.kernel_n_centers == 10000 and paper.kernel_cache
    assert paper.mlp_solver == "sgd" and paper.mlp_schedule == "step"
    # the same effort for every regulariser: two values each (one for "none" and certified)
    assert {len(v) for k, v in paper.mlp_lams.items() if k not in ("none", "certified")} == {2}
    assert ReproduceConfig.from_mode(True).mode == "quick"
    assert ReproduceConfig.from_mode("subset") == ReproduceConfig()
    with pytest.raises(ValueError, match="mode"):
        ReproduceConfig.from_mode("huge")
