"""Protocol sensitivity (``dabench.results.sensitivity``, ``dabench sensitivity``): Kendall τ against
scipy, ranks, the JSON / table / figure, and the report section."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from cli_output import flat
from dabench.cli import app
from dabench.errors import DataError
from dabench.eval.suites import parse_suite
from dabench.results.sensitivity import (OVERALL, build_sensitivity, kendall_tau, load_sensitivity, rank_models,
                                         report_section)

from test_rescore import world  # noqa: F401  (fixture: tiny synthetic cards and suites)


def test_kendall_tau_matches_scipy():
    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # by hand: pairs (1,2) + (1,3) + (2,3) = +1 + +1 − 1 over 3 untied pairs
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 8, 13):
        for _ in range(40):
            x = rng.integers(0, 4, n).astype(float)  # many ties
            y = rng.integers(0, 4, n).astype(float)
            ref = stats.kendalltau(x, y).statistic  # tau-b, scipy's default
            ours = kendall_tau(list(x), list(y))
            assert (math.isnan(ref) and math.isnan(ours)) or ours == pytest.approx(ref, abs=1e-12)


def test_rank_models_direction_and_ties():
    assert rank_models({"a": 0.3, "b": 0.1, "c": 0.2}, higher_is_better=False) == {"b": 1, "c": 2, "a": 3}
    assert rank_models({"a": 0.3, "b": 0.1, "c": 0.2}, higher_is_better=True) == {"a": 1, "c": 2, "b": 3}
    assert rank_models({"a": 0.1, "b": 0.1, "c": 0.2, "d": None}, higher_is_better=False) == {"a": 1.5, "b": 1.5,
                                                                                               "c": 3}


def _rec(model, ds, abs_rel, delta1):
    return {"status": "ok", "model": model, "dataset": ds, "metrics": {"abs_rel": abs_rel, "delta1": delta1},
            "higher_is_better": {"abs_rel": False, "delta1": True}}


def test_build_sensitivity_ranks_and_agreement():
    a = parse_suite({"name": "a", "task": "relative", "datasets": ["x", "y"], "primary_metrics": ["abs_rel", "delta1"]})
    b = parse_suite({"name": "b", "task": "relative", "datasets": ["x", "y"], "primary_metrics": ["delta1", "abs_rel"]})
    ra = [_rec("m1", "x", 0.1, 0.9), _rec("m2", "x", 0.2, 0.8), _rec("m3", "x", 0.3, 0.7),
          _rec("m1", "y", 0.3, 0.5), _rec("m2", "y", 0.2, 0.6), _rec("m3", "y", 0.1, 0.7)]
    rb = [_rec("m1", "x", 0.1, 0.7), _rec("m2", "x", 0.2, 0.9), _rec("m3", "x", 0.3, 0.8),  # b ranks by delta1
          _rec("m1", "y", 0.3, 0.5), _rec("m2", "y", 0.2, 0.6), _rec("m3", "y", 0.1, 0.7)]
    s = build_sensitivity("run", {"a": (a, ra), "b": (b, rb)})
    assert s.ranking_metric == {"a": "abs_rel", "b": "delta1"}
    assert s.ranks["a"]["x"] == {"m1": 1, "m2": 2, "m3": 3}
    assert s.ranks["b"]["x"] == {"m2": 1, "m3": 2, "m1": 3}
    # a: m1 is 1st on x and 3rd on y, m3 the reverse: every mean rank is 2, so overall all tie
    assert s.ranks["a"][OVERALL] == {"m1": 2.0, "m2": 2.0, "m3": 2.0}
    assert s.rank_agreement["a"]["b"][OVERALL] is None  # τ of an all-tied ranking is undefined
    models = ["m1", "m2", "m3"]
    for ds in ("x", "y"):
        ref = stats.kendalltau([s.ranks["a"][ds][m] for m in models], [s.ranks["b"][ds][m] for m in models]).statistic
        assert s.rank_agreement["a"]["b"]["per_dataset"][ds] == pytest.approx(ref)
    assert s.rank_agreement["a"]["a"]["per_dataset"]["x"] == 1.0
    assert s.values["b"]["m2"]["x"] == {"abs_rel": 0.2, "delta1": 0.9}


def test_load_sensitivity_refuses_other_files(tmp_path):
    p = tmp_path / "sensitivity.json"
    for bad in ("[]", '{"schema": "x"}', '{"schema": "dabench.sensitivity/1", "protocols": [1]}', "{"):
        p.write_text(bad)
        with pytest.raises(DataError, match="sensitivity.json|dabench.sensitivity/1"):
            load_sensitivity(p)


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_sensitivity_command_json_table_figure_and_report(world):  # noqa: F811
    from dabench.results.report import generate_report
    from dabench.results.store import load_records

    results = world
    r = _invoke("run", "--suite", "tiny-a", "-m", "horizon_prior,constant,da2_test", "--random-init", "--limit", 2,
                "--log-samples=pred", "--bootstrap", 0, "--results", results, "--device", "cpu")
    assert r.exit_code == 0, r.output
    (run_dir,) = (results / "runs").iterdir()
    r = _invoke("sensitivity", "--run", run_dir.name, "--suites", "tiny-a,tiny-b,tiny-c", "--results", results)
    assert r.exit_code == 0, r.output
    out_dir = results / "sensitivity" / run_dir.name
    d = json.loads((out_dir / "sensitivity.json").read_text())
    assert d["protocols"] == ["tiny-a", "tiny-b", "tiny-c"] and set(d["models"]) == {"horizon_prior", "constant",
                                                                                     "da2_test"}
    # tiny-a is the run's own protocol: its values are the run's records
    for rec in load_records(run_dir):
        for m, v in rec["metrics"].items():
            assert d["values"]["tiny-a"][rec["model"]][rec["dataset"]][m] == pytest.approx(v, rel=1e-9, abs=1e-12)
    # every τ is scipy's on ranks rebuilt here from the values
    for a in d["protocols"]:
        for b in d["protocols"]:
            for ds in d["datasets"]:
                def ranks(p):
                    vals = [d["values"][p][m][ds]["abs_rel"] for m in d["models"]]
                    return stats.rankdata(vals)  # abs_rel: lower is better, rank 1 = best
                ref = stats.kendalltau(ranks(a), ranks(b)).statistic
                got = d["rank_agreement"][a][b]["per_dataset"][ds]
                assert (got is None and math.isnan(ref)) or got == pytest.approx(ref, abs=1e-12)
            mean = {p: [np.mean([stats.rankdata([d["values"][p][m][ds]["abs_rel"] for m in d["models"]])[i]
                                 for ds in d["datasets"]]) for i in range(len(d["models"]))] for p in (a, b)}
            ref = stats.kendalltau(mean[a], mean[b]).statistic
            got = d["rank_agreement"][a][b][OVERALL]
            assert (got is None and math.isnan(ref)) or got == pytest.approx(ref, abs=1e-12)
    assert "tiny-b AbsRel↓" in flat(r.output) and "rank agreement" in flat(r.output)
    md = (out_dir / "sensitivity.md").read_text()
    assert "| model | tiny-a AbsRel↓ | tiny-a δ1↑ | tiny-b AbsRel↓" in md
    png = out_dir / "sensitivity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # dabench report shows it
    res = generate_report(results.parent / "site", results, samples=0)
    page = res.index.read_text()
    assert "Protocol sensitivity" in page and f"Run {run_dir.name}" in page
    assert any(p.name.startswith("sensitivity_") for p in res.images)
    # bad input: one line, exit 2
    r = _invoke("sensitivity", "--run", run_dir.name, "--suites", "tiny-a", "--results", results)
    assert r.exit_code == 2 and "at least two" in flat(r.output)
    r = _invoke("sensitivity", "--run", run_dir.name, "--results", results)
    assert r.exit_code == 2 and "--all-presets" in flat(r.output)
    r = _invoke("sensitivity", "--run", run_dir.name, "--all-presets", "--results", results)
    assert r.exit_code == 2 and "only 0 protocol(s)" in flat(r.output)


def test_all_presets_on_the_synthetic_world(tmp_path):
    results = tmp_path / "results"
    r = _invoke("run", "--suite", "synthetic", "-m", "horizon_prior,constant", "--datasets", "synthetic-indoor",
                "--limit", 1, "--log-samples=pred", "--bootstrap", 0, "--results", results, "--device", "cpu")
    assert r.exit_code == 0, r.output
    (run_dir,) = (results / "runs").iterdir()
    out = tmp_path / "sens"
    r = _invoke("sensitivity", "--run", run_dir, "--all-presets", "--out", out)
    assert r.exit_code == 0, r.output
    d = json.loads((out / "sensitivity.json").read_text())
    # the relative presets that score synthetic-indoor (itself, or as the stand-in of nyu); the metric
    # presets score metric models only and are left out with a note
    assert {"synthetic", "zero-shot", "marigold"} <= set(d["protocols"])
    assert not {"metric-nyu", "moge", "da2k"} & set(d["protocols"])
    assert any("metric" in n for n in d["notes"])
    assert (out / "sensitivity.png").is_file() and Path(out / "sensitivity.md").is_file()
