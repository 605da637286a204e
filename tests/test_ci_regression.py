"""The CI gate: a tiny, seeded suite run (dabench.results.ci) must not regress against the baseline
committed in leaderboards/ci-baseline. After an intended change of numbers regenerate it with
`python -m dabench.results.ci --update-baseline` and commit the new records."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.results import ci
from dabench.results.store import load_records


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci_current")
    records = ci.run_ci_suite(out)
    return out, records


def test_ci_suite_does_not_regress(ci_run, tmp_path):
    out, records = ci_run
    assert {(r["model"], r["dataset"]) for r in records} == {
        (m, d) for m in ci.CI_MODELS for d in ("synthetic-indoor", "synthetic-outdoor")}
    assert all(r["status"] == "ok" and r["samples"]["used"] == ci.CI_LIMIT for r in records)
    report = tmp_path / "report.md"
    res = CliRunner().invoke(app, ["regress", "--baseline", str(ci.ci_baseline_dir()), "--current", str(out),
                                   "--out", str(report)])
    assert res.exit_code == 0, (res.output + "\nIf this change of numbers is intended (new synthetic data, model "
                                "or metric code), regenerate the baseline: python -m dabench.results.ci "
                                "--update-baseline, and commit leaderboards/ci-baseline.")
    assert report.read_text().startswith("**✅ PASS")
    assert json.loads(report.with_suffix(".json").read_text())["counts"]["unchanged"] == 36


def test_ci_gate_catches_a_worse_model(ci_run, tmp_path):
    """The same comparison fails when one metric of the current run gets worse (a copy is edited)."""
    out, _ = ci_run
    worse = tmp_path / "worse"
    shutil.copytree(out, worse)
    path = worse / ci.CI_SUITE / "da2_test" / "synthetic-indoor.partial.json"  # a --limit run: partial
    rec = json.loads(path.read_text())
    rec["metrics"]["abs_rel"] *= 1.05
    path.write_text(json.dumps(rec))
    res = CliRunner().invoke(app, ["regress", "--baseline", str(ci.ci_baseline_dir()), "--current", str(worse)])
    assert res.exit_code == 1
    assert "| synthetic | da2_test | synthetic-indoor | AbsRel↓ |" in res.output


def test_ci_network_output_is_not_constant():
    """The gate can only see a change of the network if the random-init network's output varies
    (with seeds 0 and 1 the DPT head's final ReLU is 0 everywhere on these images)."""
    import numpy as np
    import torch

    from dabench.data import build_dataset
    from dabench.models import create_model
    from dabench.models.inference import predict_batch

    torch.manual_seed(ci.CI_SEED)  # as dabench.eval.runner.build_model
    model = create_model("da2_test")
    sample = build_dataset("synthetic-indoor", split="test", limit=1)[0]
    (pred,) = predict_batch(model, [sample["image"]], input_size=518)
    assert np.isfinite(pred).all() and pred.std() > 1e-3 * abs(pred.mean())


def test_committed_baseline_matches_the_ci_configuration():
    records = load_records(ci.ci_baseline_dir())
    assert {(r["suite"], r["model"]) for r in records} == {(ci.CI_SUITE, m) for m in ci.CI_MODELS}
    for r in records:
        assert r["seed"] == ci.CI_SEED and r["config"]["limit"] == ci.CI_LIMIT
