"""`dabench finetune metric` on a tiny NYUv2 in its real layout (tests/real_layouts.py): the
fine-tune scores itself at its training size (as `dabench run --suite metric-nyu --input-size`
would), a partial train split needs --skip-missing and is counted, and warm-up fits short runs."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dabench.cli import app
from dabench.finetune import metric as fm
from real_layouts import write_nyu

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parents[1] / "dabench" / "configs"
FAST = ["--cfg-option", "data.train_limit=4", "--cfg-option", "train.batch_size=2",
        "--cfg-option", "train.checkpoint_every=0"]


def _run(args):
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return res.exit_code, re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─┃┏┓┗┛━]", " ", res.output))


@pytest.fixture
def nyu(tmp_path, monkeypatch):
    """A private copy of the cards (DABENCH_CONFIG_PATH) whose nyu split lists name a tiny NYU under data/,
    with one training entry missing on disk."""
    root = tmp_path / "repo"
    shutil.copytree(CONFIGS / "datasets", root / "datasets")
    shutil.copytree(CONFIGS / "suites", root / "suites")
    shutil.copytree(CONFIGS / "heads", root / "heads")
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(root))
    data = tmp_path / "data"
    train, test = write_nyu(data, train=4, test=2)
    train.insert(1, ["/kitchen_9999/rgb_00099.jpg", "/kitchen_9999/sync_depth_00099.png", "518.8579"])
    for name, rows in (("nyu_train_tiny.txt", train), ("nyu_test_tiny.txt", test)):
        (root / "datasets" / "splits" / name).write_text("\n".join(" ".join(r) for r in rows) + "\n")
    card = yaml.safe_load((root / "datasets" / "nyu.yaml").read_text())
    card["split_file"] = {"train": "splits/nyu_train_tiny.txt", "test": "splits/nyu_test_tiny.txt"}
    (root / "datasets" / "nyu.yaml").write_text(yaml.safe_dump(card))
    return data


@pytest.fixture(scope="module")
def relative_ckpt(tmp_path_factory) -> Path:
    from dabench.models import create_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rel") / "rel.safetensors"
    save_checkpoint(create_model("da2_test"), path, arch="da2_test")
    return path


def test_nyu_tiny_run_is_scored_at_its_training_size(tmp_path, nyu, relative_ckpt):
    args = ["finetune", "metric", "--dataset", "nyu", "--head", "zoe", "--init", relative_ckpt, "--preset", "tiny",
            "--data-root", nyu, "--steps", 2, "--results", tmp_path / "r", *FAST]
    # a partial train split: an error naming the entry and the flag that exists
    code, out = _run([*args, "--out", tmp_path / "run0"])
    assert code == 2 and "rgb_00099.jpg" in out and "--skip-missing" in out
    code, out = _run([*args, "--out", tmp_path / "run", "--skip-missing"])
    assert code == 0, out
    assert "1 training entries are missing" in out and "input 98 px as trained" in out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train_skipped_missing"] == 1
    recs = [json.loads(p.read_text()) for p in (tmp_path / "r" / "metric-nyu").glob("*/nyu*.json")]
    assert len(recs) == 1
    rec = recs[0]
    # the tiny preset trains at 98x126: scored at 98, not the suite's pinned 392; the record says so
    assert rec["protocol"]["input_size"] == 98 and rec["config"]["input_size_override"] == 98
    assert rec["config"]["train_skipped_missing"] == 1 and rec["samples"]["used"] == 2
    assert rec["protocol"]["crop"] == "eigen" and rec["split"] == "test"
    # the same numbers as the metric-nyu suite at --input-size 98 on the same checkpoint
    code, out = _run(["run", "--suite", "metric-nyu", "--checkpoint", tmp_path / "run" / "final.safetensors",
                      "--data-root", nyu, "--input-size", 98, "--batch-size", 8, "--results", tmp_path / "r2",
                      "--no-cache"])
    assert code == 0, out
    (again,) = [json.loads(p.read_text()) for p in (tmp_path / "r2" / "metric-nyu").glob("*/nyu*.json")]
    assert again["protocol"] == rec["protocol"]
    for k in ("delta1", "abs_rel", "rmse"):
        assert again["metrics"][k] == pytest.approx(rec["metrics"][k], rel=1e-6), k


@pytest.mark.parametrize("warmup,steps,expected", [(500, 10, 0), (500, 100, 10), (20, 1000, 20), (0, 50, 0),
                                                   (15, 20, 2)])
def test_warmup_fits_short_runs(warmup, steps, expected):
    assert fm.effective_warmup(warmup, steps) == expected


def test_short_poly_run_reaches_its_base_rate():
    """A poly recipe with a 500-step warm-up run for --steps 10: the learning rate the engine gives
    reaches the base rate at the start and decays, instead of climbing to 2% of it (issue #20)."""
    from dabench.train.engine import TrainConfig, build_scheduler

    def trace(warmup):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = build_scheduler(opt, TrainConfig(steps=10, schedule="poly", warmup_steps=warmup, poly_power=0.9))
        lrs = []
        for _ in range(10):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs

    assert max(trace(500)) <= 0.03  # the recipe's warm-up as given: the run never leaves it
    lrs = trace(fm.effective_warmup(500, 10))
    assert lrs[0] == pytest.approx(1.0) and lrs[-1] < 0.2 and all(a >= b for a, b in zip(lrs, lrs[1:]))
