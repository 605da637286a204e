"""`dabench compare`, `dabench table --ci` and typo-proof table filters."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from dabench.cli import app
from dabench.results.record import make_record, make_selection
from dabench.results.stats import bootstrap_ci
from dabench.results.store import samples_csv_path, write_record

runner = CliRunner()
WIDE = {"COLUMNS": "400"}


def _write(results, model, abs_rel, delta1, names=None):
    """A complete record with its per-sample CSV (the runner's layout), metrics = per-image means."""
    names = names or [f"img{i:02d}" for i in range(len(abs_rel))]
    rec = make_record(task="relative", suite="s", model=model, dataset="d", metric_names=["abs_rel", "delta1"],
                      seed=0, config={"limit": None}, primary_metrics=["abs_rel", "delta1"],
                      metrics={"abs_rel": float(np.mean(abs_rel)), "delta1": float(np.mean(delta1))},
                      selection=make_selection(None, names, len(names), len(names)),
                      ci={"abs_rel": list(bootstrap_ci(abs_rel, 200, 0))})
    path = write_record(rec, results)
    with samples_csv_path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "name", "status", "abs_rel", "delta1"])
        for i, (n, a, d) in enumerate(zip(names, abs_rel, delta1)):
            w.writerow([i, n, "ok", repr(float(a)), repr(float(d))])
    return path


@pytest.fixture()
def two_models(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, size=8)
    d1 = rng.uniform(0.5, 0.9, size=8)
    _write(tmp_path, "better", base - 0.02, d1)  # every image better in AbsRel, same δ1
    _write(tmp_path, "worse", base, d1 + rng.normal(0, 0.01, size=8))
    return tmp_path, base, d1


def test_compare_paired_difference_ci_and_wilcoxon(two_models, tmp_path):
    results, base, d1 = two_models
    out = tmp_path / "cmp.json"
    res = runner.invoke(app, ["compare", "better", "worse", "--suite", "s", "--results", str(results),
                              "--format", "json", "--out", str(out), "--bootstrap", "500"])
    assert res.exit_code == 0, res.output
    rows = {r["metric"]: r for r in json.loads(out.read_text())["rows"]}
    ar = rows["abs_rel"]
    assert ar["n"] == 8 and ar["mean_diff"] == pytest.approx(-0.02)
    assert ar["p_value"] == pytest.approx(stats.wilcoxon(np.full(8, -0.02) + 0 * base).pvalue)
    assert ar["p_value"] == pytest.approx(2 / 2 ** 8) and ar["winner"] == "better"
    assert ar["ci_low"] == pytest.approx(-0.02) and ar["ci_high"] == pytest.approx(-0.02)  # constant difference
    assert rows["delta1"]["winner"] is None and rows["delta1"]["p_value"] > 0.05
    md = runner.invoke(app, ["compare", "better", "worse", "--suite", "s", "--results", str(results)], env=WIDE)
    assert md.exit_code == 0
    line_ar = next(x for x in md.output.splitlines() if x.startswith("| d | AbsRel"))
    line_d1 = next(x for x in md.output.splitlines() if x.startswith("| d | δ1"))
    assert "**" in line_ar and "**" not in line_d1  # bold only where significant


def test_compare_refuses_different_samples_and_unknown_names(two_models):
    results, base, d1 = two_models
    _write(results / "other", "third", base[:6], d1[:6])
    res = runner.invoke(app, ["compare", "better", str(results / "other"), "--suite", "s", "--results",
                              str(results)], env=WIDE)
    assert res.exit_code == 2 and "different sample sets" in res.output
    res = runner.invoke(app, ["compare", "better", str(results / "other"), "--suite", "s", "--results",
                              str(results), "--allow-different-samples", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.output)["rows"][0]["n"] == 6
    res = runner.invoke(app, ["compare", "better", "nope", "--suite", "s", "--results", str(results)], env=WIDE)
    assert res.exit_code == 2 and "better" in res.output and "worse" in res.output


def test_table_ci_in_every_format(two_models):
    results, base, _ = two_models
    lo, hi = bootstrap_ci(base - 0.02, 200, 0)
    cell = f"**{base.mean() - 0.02:.3f}** [{lo:.3f}, {hi:.3f}]"  # bold: the better AbsRel
    md = runner.invoke(app, ["table", "--results", str(results), "--suite", "s", "--ci"])
    assert md.exit_code == 0 and cell in md.output
    tex = runner.invoke(app, ["table", "--results", str(results), "--suite", "s", "--ci", "--format", "latex"])
    assert f"\\scriptsize[{lo:.3f}, {hi:.3f}]" in tex.output
    html = runner.invoke(app, ["table", "--results", str(results), "--suite", "s", "--ci", "--format", "html"])
    assert f"<small>[{lo:.3f}, {hi:.3f}]</small>" in html.output
    csv_out = runner.invoke(app, ["table", "--results", str(results), "--suite", "s", "--ci", "--format", "csv"])
    header = csv_out.output.splitlines()[0].split(",")
    assert "d/abs_rel/ci_low" in header and "d/abs_rel/ci_high" in header
    plain = runner.invoke(app, ["table", "--results", str(results), "--suite", "s"])
    assert f"[{lo:.3f}" not in plain.output


@pytest.mark.parametrize("flag,value,valid", [("--metrics", "abs_rell", "abs_rel"), ("--datasets", "dd", "d"),
                                              ("--models", "da3*", "better")])
def test_table_filters_matching_nothing_are_errors(two_models, flag, value, valid):
    results, _, _ = two_models
    res = runner.invoke(app, ["table", "--results", str(results), "--suite", "s", flag, value], env=WIDE)
    assert res.exit_code == 2, res.output
    assert value in res.output and valid in res.output
