"""Checkpoints and exact resume (dabench/train/engine.py and the stages)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from dabench.errors import CheckpointError, ConfigError
from dabench.train import run_stage
from dabench.train.config import load_config
from dabench.train.checkpoint import latest_checkpoint
from dabench.train.engine import TrainConfig, Trainer
from dabench.train.loader import EpochSampler

REPO = Path(__file__).resolve().parents[1]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _rewind(out: Path, step: int) -> None:
    """Make ``out`` look like a run killed right after its step-``step`` checkpoint."""
    ck = out / "checkpoints"
    for p in ck.glob("step_*"):
        if int(p.name.split("_")[1]) > step:
            shutil.rmtree(p)
    (ck / "latest.json").write_text(json.dumps({"dir": f"step_{step:07d}", "step": step}))
    for f in ("final.safetensors", "DONE"):
        (out / f).unlink(missing_ok=True)


def _toy(out, steps=12, seed=0):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    x = torch.randn(40, 4)
    y = x.sum(1, keepdim=True)
    sampler = EpochSampler(40, 6, seed=seed)

    def batch_fn(step, g):
        i = sampler.indices(step)
        return {"x": x[i] + 0.01 * torch.randn(len(i), 4, generator=g), "y": y[i]}

    def step_fn(model, b, ctx):
        return {"loss": ((model(b["x"]) - b["y"]) ** 2).mean()}

    groups = [dict(params=m[0].parameters(), lr=1e-2), dict(params=m[3].parameters(), lr=1e-1)]
    return m, Trainer(m, groups, step_fn, batch_fn, TrainConfig(steps=steps, checkpoint_every=4, keep_checkpoints=5,
                                                                seed=seed, progress=False, tensorboard=False), out)


def test_engine_resume_is_bit_exact_and_state_is_weights_only(tmp_path):
    m1, t1 = _toy(tmp_path / "a")
    t1.fit()
    ref = {k: v.clone() for k, v in m1.state_dict().items()}
    state = torch.load(tmp_path / "a" / "checkpoints" / "step_0000008" / "state.pt", weights_only=True)
    assert state["step"] == 8 and state["data"]["next_step"] == 8 and "optimizer" in state and "rng" in state
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _rewind(tmp_path / "b", 4)
    m2, t2 = _toy(tmp_path / "b")
    t2.fit(resume=True)
    assert t2.step == 12
    for k, v in m2.state_dict().items():
        assert torch.equal(v, ref[k]), k  # dropout (global RNG) and per-step generators restored
    # the lr schedule decays linearly to 0
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["lr"] == [0.0, 0.0]


@pytest.mark.parametrize("damaged", ["state.pt", "model.safetensors"])
def test_resume_falls_back_from_a_corrupt_newest_checkpoint(tmp_path, caplog, damaged):
    m1, t1 = _toy(tmp_path / "a")
    t1.fit()
    ref = {k: v.clone() for k, v in m1.state_dict().items()}
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _rewind(tmp_path / "b", 8)
    newest = tmp_path / "b" / "checkpoints" / "step_0000008" / damaged
    newest.write_bytes(newest.read_bytes()[:50])  # truncated, as by a full disk
    m2, t2 = _toy(tmp_path / "b")
    with caplog.at_level("WARNING", logger="dabench.train"):
        t2.fit(resume=True)
    assert t2.step == 12
    assert any(damaged in r.getMessage() and "falling back" in r.getMessage() for r in caplog.records)
    for k, v in m2.state_dict().items():
        assert torch.equal(v, ref[k]), k  # resumed from step 4: still the uninterrupted result


def test_engine_refuses_existing_run_without_resume(tmp_path):
    _, t = _toy(tmp_path / "a", steps=4)
    t.fit()
    _, t2 = _toy(tmp_path / "a", steps=4)
    with pytest.raises(ConfigError, match="--resume"):
        t2.fit()


def test_student_resume_bit_exact_with_every_switch(tmp_path):
    cfg = load_config(preset="smoke")
    assert cfg.student.strong_perturb and cfg.student.feat_align
    out = tmp_path / "run"
    run_stage("pipeline", cfg, out, evaluate=False)
    full = out / "student" / "final.safetensors"
    shutil.copytree(out / "student", tmp_path / "student_b")
    _rewind(tmp_path / "student_b", 3)
    run_stage("student", cfg, tmp_path / "student_b", resume=True, pseudo_labels=out / "pseudo_labels")
    _same_weights(full, tmp_path / "student_b" / "final.safetensors")
    # pseudo-label stage: a lost shard is redone identically on resume
    pl = out / "pseudo_labels"
    shard = pl / "shard_00001.safetensors"
    before = load_file(str(shard))
    shard.unlink()
    idx = json.loads((pl / "index.json").read_text())
    idx["complete"] = False
    (pl / "index.json").write_text(json.dumps(idx))
    run_stage("pseudo-label", cfg, pl, resume=True, teacher=out / "teacher" / "final.safetensors")
    after = load_file(str(shard))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((pl / "index.json").read_text())["complete"] is True


def test_resume_with_another_config_or_architecture_says_what_differs(tmp_path):
    cfg = load_config(preset="smoke", overrides={"teacher.steps": 3})
    run_stage("teacher", cfg, tmp_path / "t")
    other = load_config(preset="smoke", overrides={"teacher.steps": 3, "teacher.lr": 1e-3})
    with pytest.raises(CheckpointError, match=r"teacher\.lr"):
        run_stage("teacher", other, tmp_path / "t", resume=True)
    arch = load_config(preset="smoke", overrides={"teacher.steps": 3, "model.arch": "da1_test"})
    with pytest.raises(CheckpointError, match=r"model\.arch: 'da2_test' in the checkpoint vs 'da1_test' now"):
        run_stage("teacher", arch, tmp_path / "t", resume=True)


def _cli(out: Path, extra=(), home: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    if home:
        env["DABENCH_HOME"] = str(home)
    cmd = [sys.executable, "-m", "dabench", "train", "teacher", "--preset", "smoke", "--out", str(out),
           "--set", "teacher.steps=150", "--set", "runtime.checkpoint_every=10", "--set", "runtime.log_every=50",
           "--set", "runtime.tensorboard=false", "--set", "data.num_workers=2", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    """A CLI run killed with SIGKILL after its first checkpoint, then resumed, ends with exactly the
    weights of an uninterrupted run."""
    full = _cli(tmp_path / "full")
    out_full, _ = full.communicate(timeout=400)
    assert full.returncode == 0, out_full.decode()[-2000:]

    killed = tmp_path / "killed"
    p = _cli(killed)
    deadline = time.time() + 300
    while latest_checkpoint(killed) is None:
        assert p.poll() is None, p.communicate()[0].decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (killed / "final.safetensors").exists(), "the run finished before it could be killed"
    step_killed = int(latest_checkpoint(killed).name.split("_")[1])
    assert 10 <= step_killed < 150
    r = _cli(killed, ["--resume"])
    out_r, _ = r.communicate(timeout=400)
    assert r.returncode == 0, out_r.decode()[-2000:]
    _same_weights(tmp_path / "full" / "final.safetensors", killed / "final.safetensors")
