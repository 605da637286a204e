"""`dabench train ablation --seeds`: per-seed runs and the mean ± std summary (dabench/train/ablation.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.errors import ConfigError
from dabench.train.ablation import parse_seeds, summarise
from dabench.train.config import load_config


def _res(a, d, n=4):
    return {"metrics": {"abs_rel": a, "delta1": d}, "counts": {"used": n}}


def test_summary_statistics_match_numpy():
    fam = {"synthetic-indoor": "indoor", "synthetic-outdoor": "outdoor", "other": "outdoor"}
    per_seed = {
        0: {"teacher": {"synthetic-indoor": _res(0.10, 0.90), "synthetic-outdoor": _res(0.30, 0.50, 4),
                        "other": _res(0.50, 0.30, 12)},
            "+L_u": {"synthetic-indoor": _res(0.12, 0.88), "synthetic-outdoor": _res(0.20, 0.60, 4),
                     "other": _res(0.40, 0.40, 12)}},
        1: {"teacher": {"synthetic-indoor": _res(0.14, 0.86), "synthetic-outdoor": _res(0.34, 0.46, 4),
                        "other": _res(0.50, 0.30, 12)},
            "+L_u": {"synthetic-indoor": _res(0.13, 0.87), "synthetic-outdoor": _res(0.26, 0.56, 4),
                     "other": _res(0.44, 0.36, 12)}},
    }
    arms = summarise(per_seed, fam)
    # outdoor is the image-weighted mean of its two sets: (4 * 0.30 + 12 * 0.50) / 16 = 0.45
    assert arms["teacher"]["per_seed"]["0"]["outdoor"]["abs_rel"] == pytest.approx(0.45)
    t_out = [0.45, (4 * 0.34 + 12 * 0.50) / 16]
    s_out = [(4 * 0.20 + 12 * 0.40) / 16, (4 * 0.26 + 12 * 0.44) / 16]
    assert arms["teacher"]["mean"]["outdoor"]["abs_rel"] == pytest.approx(np.mean(t_out))
    assert arms["teacher"]["std"]["outdoor"]["abs_rel"] == pytest.approx(np.std(t_out, ddof=1))
    d = np.subtract(s_out, t_out)
    assert arms["+L_u"]["minus_teacher"]["mean"]["outdoor"]["abs_rel"] == pytest.approx(d.mean())
    assert arms["+L_u"]["minus_teacher"]["std"]["outdoor"]["abs_rel"] == pytest.approx(d.std(ddof=1))
    assert arms["+L_u"]["mean"]["indoor"]["delta1"] == pytest.approx(0.875)
    assert "minus_teacher" not in arms["teacher"]


def test_parse_seeds_rejects_bad_lists():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("", "a,b", "1,1", "-1"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_tiny_shift_preset_separates_the_domains():
    cfg = load_config(preset="tiny-shift")
    assert [d.name for d in cfg.data.labelled] == ["synthetic-indoor"]
    assert [d.name for d in cfg.data.unlabelled] == ["synthetic-outdoor"]
    assert {d.name for d in cfg.evaluation.datasets} == {"synthetic-indoor", "synthetic-outdoor"}
    assert all(d.split == "test" for d in cfg.evaluation.datasets)


def test_ablation_cli_with_seeds_writes_summary(tmp_path):
    from dabench.cli import app

    out = tmp_path / "abl"
    r = CliRunner().invoke(app, ["train", "ablation", "--preset", "smoke", "--seeds", "0,1", "--out", str(out),
                                 "--no-progress", "--set", "teacher.steps=2", "--set", "student.steps=2",
                                 "--set", "runtime.tensorboard=false", "--set", "data.num_workers=0"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["seeds"] == [0, 1] and s["schema"] == "dabench.train_ablation_summary/1"
    assert set(s["arms"]) == {"teacher", "L_l", "+L_u", "+strong perturbation", "+L_feat", "horizon_prior"}
    for seed in ("0", "1"):
        per = json.loads((out / f"seed_{seed}" / "ablation.json").read_text())["results"]
        assert s["arms"]["teacher"]["per_seed"][seed]["indoor"]["abs_rel"] == pytest.approx(
            per["teacher"]["synthetic-indoor"]["metrics"]["abs_rel"])
    assert s["arms"]["teacher"]["per_seed"]["0"] != s["arms"]["teacher"]["per_seed"]["1"]  # seeds really differ
    assert (out / "summary.md").is_file() and "git_commit" in s
