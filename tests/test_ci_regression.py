"""The CI gate: a tiny, seeded suite run (dabench.results.ci) must not regress against the baseline
committed in dabench/configs/ci-baseline. After an intended change of numbers regenerate it with
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
    assert all(r["selection"]["n_selected"] == ci.CI_LIMIT and not r["selection"]["complete"] for r in records)
    report = tmp_path / "report.md"
    res = CliRunner().invoke(app, ["regress", "--baseline", str(ci.ci_baseline_dir()), "--current", str(out),
                                   "--out", str(report)])
    assert res.exit_code == 0, (res.output + "\nIf this change of numbers is intended (new synthetic data, model "
                                "or metric code), regenerate the baseline: python -m dabench.results.ci "
                                "--update-baseline, and commit dabench/configs/ci-baseline.")
    assert report.read_text().startswith("**✅ PASS")
    assert json.loads(report.with_suffix(".json").read_text())["counts"]["unchanged"] == 36


def test_regress_ci_runs_the_suite_and_compares_with_the_shipped_baseline(ci_run, tmp_path, monkeypatch):
    """`dabench regress --ci` = run_ci_suite into --current (or a temp folder) + regress against the shipped
    baseline. The suite's own run is the module's (the same seeded run; its records are copied), so this
    checks the wiring: where the records go, which baseline, the verdict and the exit code."""
    out, _ = ci_run
    calls = []

    def same_run(results_dir):
        calls.append(results_dir)
        shutil.copytree(out, results_dir, dirs_exist_ok=True)

    monkeypatch.setattr(ci, "run_ci_suite", same_run)
    res = CliRunner().invoke(app, ["regress", "--ci", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("✅ PASS") and "36 unchanged" in res.output, res.output
    assert len(calls) == 1 and not calls[0].exists()  # a temporary folder, removed afterwards
    kept = tmp_path / "ci-run"
    res = CliRunner().invoke(app, ["regress", "--ci", "--current", str(kept), "--out", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    assert calls[-1] == kept and {r["model"] for r in load_records(kept)} == set(ci.CI_MODELS)
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["unchanged"] == 36
    # without --ci both sides are needed: one clear error, exit 2
    res = CliRunner().invoke(app, ["regress", "--current", str(kept)])
    assert res.exit_code == 2 and "--baseline and --current" in res.output


def _perturb_abs_rel(src, dst, factors):
    """Copy the run and multiply da2_test/synthetic-indoor's per-image AbsRel by ``factors`` (one per
    image), keeping the record's AbsRel the mean of its per-image values, as a real run would."""
    import numpy as np
    import pandas as pd

    shutil.copytree(src, dst)
    path = dst / ci.CI_SUITE / "da2_test" / "synthetic-indoor.partial.json"  # a --limit run: partial
    csv = path.with_name("synthetic-indoor.partial.samples.csv")
    rows = pd.read_csv(csv)
    rows["abs_rel"] = rows["abs_rel"].to_numpy(float) * np.asarray(factors, float)
    rows.to_csv(csv, index=False)
    rec = json.loads(path.read_text())
    old = rec["metrics"]["abs_rel"]
    rec["metrics"]["abs_rel"] = float(rows.loc[rows["status"] == "ok", "abs_rel"].mean())
    path.write_text(json.dumps(rec))
    return old, rec["metrics"]["abs_rel"]


def test_ci_gate_catches_a_genuine_regression(ci_run, tmp_path):
    """Every image 5 % worse in AbsRel: beyond tolerance and the paired test says it is not noise."""
    out, _ = ci_run
    old, new = _perturb_abs_rel(out, tmp_path / "worse", [1.05] * ci.CI_LIMIT)
    assert new == pytest.approx(old * 1.05)
    res = CliRunner().invoke(app, ["regress", "--baseline", str(ci.ci_baseline_dir()), "--current",
                                   str(tmp_path / "worse"), "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output
    assert "| synthetic | da2_test | synthetic-indoor | AbsRel↓ |" in res.output
    (reg,) = [c for c in json.loads((tmp_path / "r.json").read_text())["comparisons"] if c["status"] == "regressed"]
    assert reg["metric"] == "abs_rel" and reg["p_value"] == pytest.approx(2 / 2 ** ci.CI_LIMIT)


def test_ci_gate_does_not_flag_reseeded_noise(ci_run, tmp_path):
    """Zero-mean per-image noise (a reseeded, equally good run) moves the mean beyond the tolerance, but the
    paired test says noise: not a regression."""
    import numpy as np

    from dabench.results import regress as rg

    out, _ = ci_run
    factors = 1.0 + np.random.default_rng(11).normal(0.0, 0.05, size=ci.CI_LIMIT)
    old, new = _perturb_abs_rel(out, tmp_path / "noisy", factors)
    assert new - old > rg.DEFAULT_ABS_TOL + rg.DEFAULT_REL_TOL * abs(old)  # tolerance alone would flag it
    res = CliRunner().invoke(app, ["regress", "--baseline", str(ci.ci_baseline_dir()), "--current",
                                   str(tmp_path / "noisy"), "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    (row,) = [c for c in json.loads((tmp_path / "r.json").read_text())["comparisons"]
              if c["model"] == "da2_test" and c["dataset"] == "synthetic-indoor" and c["metric"] == "abs_rel"]
    assert row["status"] == "unchanged" and row["p_value"] >= 0.05 and "within noise" in row["reason"]


def test_ci_gate_judges_an_edited_record_by_tolerance(ci_run, tmp_path):
    """A record whose number no longer matches its per-sample values cannot be paired: tolerance decides."""
    out, _ = ci_run
    worse = tmp_path / "worse"
    shutil.copytree(out, worse)
    path = worse / ci.CI_SUITE / "da2_test" / "synthetic-indoor.partial.json"
    rec = json.loads(path.read_text())
    rec["metrics"]["abs_rel"] *= 1.05
    path.write_text(json.dumps(rec))
    res = CliRunner().invoke(app, ["regress", "--baseline", str(ci.ci_baseline_dir()), "--current", str(worse)])
    assert res.exit_code == 1
    assert "| synthetic | da2_test | synthetic-indoor | AbsRel↓ |" in res.output
    assert "do not reproduce the record" in res.output


def test_regress_refuses_different_sample_sets(ci_run, tmp_path):
    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    other = tmp_path / "two"
    run_suite(ci.CI_SUITE, EvalRequest(limit=2, seed=ci.CI_SEED, device="cpu", results_dir=other, use_cache=False,
              show_progress=False, bootstrap=0), models=["horizon_prior"])
    out, _ = ci_run
    base = tmp_path / "base"
    shutil.copytree(out, base)
    args = ["regress", "--baseline", str(base), "--current", str(other), "--allow-missing"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "different sample sets" in res.output
    res = CliRunner().invoke(app, [*args, "--allow-different-samples"])
    assert res.exit_code in (0, 1) and "REFUSED" not in res.output


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
