"""End-to-end run of the reproduction command on a tiny configuration."""

import json

import numpy as np
import pytest

from sklearn_crosslip.__main__ import main
from sklearn_crosslip.experiments.reproduce import (
    KERNEL_REGULARIZERS,
    MLP_REGULARIZERS,
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
                  "cross_lipschitz": (1e-2,)},
        mlp_max_iter=2, mlp_batch_size=40,
    )


def test_run_reproduce_tiny_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    cfg = _tiny_config()
    records = run_reproduce(str(tmp_path), config=cfg)
    n_mlp = len(MLP_SETTINGS) * len(MLP_REGULARIZERS)
    assert len(records) == len(KERNEL_REGULARIZERS) + n_mlp
    # one line per model, written as each finished
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [r["name"] for r in records]
    kern = [r for r in records if r["family"] == "kernel"]
    assert {r["group"] for r in kern} == set(KERNEL_REGULARIZERS)
    for r in records:
        assert 0.0 <= r["test_error"] <= 100.0
        assert r["certificate_violations"] == 0
        # the attack's mean change is an upper bound, the certified radius a lower bound
        assert np.isfinite(r["upper"]) and r["upper"] > 0
        assert 0.0 <= r["lower"] <= r["upper"]
        assert 0.0 <= r["global_local_ratio"] <= 1.0 + 1e-12
    assert {r["setting"] for r in records if r["family"] == "mlp"} == set(MLP_SETTINGS)
    text = (tmp_path / "report.md").read_text()
    assert "Wall time:" in text and "(complete)" in text
    assert "none lay inside it" in text
    assert "Table 1" in text
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
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(KERNEL_REGULARIZERS)


def test_reproduce_command_rejects_unknown_part(tmp_path):
    with pytest.raises(SystemExit):
        main(["reproduce", "--out", str(tmp_path), "--parts", "svm"])
