"""torchrun DDP (gloo on CPU): two ranks with batch 1 each train the same weights as one process
with batch 2 (same images, gradients averaged), and checkpoints hold every rank's RNG state."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]

_SQUARE = ('[{"name":"synthetic-indoor","split":"train","kwargs":{"num_samples":4,"size":[42,42],"seed":0}},'
           '{"name":"synthetic-outdoor","split":"train","kwargs":{"num_samples":4,"size":[42,42],"seed":0}}]')


def _args(out: Path, batch: int) -> list[str]:
    return ["-m", "dabench", "train", "teacher", "--preset", "smoke", "--out", str(out), "--no-progress",
            "--set", f"data.labelled={_SQUARE}", "--set", "data.flip=false", "--set", "teacher.steps=5",
            "--set", f"teacher.batch_size={batch}", "--set", "runtime.checkpoint_every=5", "--set", "runtime.log_every=1"]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def test_ddp_two_ranks_match_one_process_with_double_batch(tmp_path):
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *_args(tmp_path / "ddp", 1)], cwd=REPO, env=_env(), capture_output=True, text=True,
                         timeout=400)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    # the reference: one process, batch 2, run in-process through the same CLI
    from typer.testing import CliRunner

    from dabench.cli import app

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = CliRunner().invoke(app, _args(tmp_path / "single", 2)[2:])
    finally:
        torch.set_num_threads(n)
    assert single.exit_code == 0, single.output
    a = load_file(str(tmp_path / "ddp" / "final.safetensors"))
    b = load_file(str(tmp_path / "single" / "final.safetensors"))
    # the first step sees the same images: the rank-averaged loss equals the single-process loss
    la = [json.loads(x) for x in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "single" / "log.jsonl").read_text().splitlines()]
    assert la[0]["step"] == lb[0]["step"] == 1
    assert abs(la[0]["loss"] - lb[0]["loss"]) < 1e-5
    # the weights agree up to float reduction order (Adam amplifies it on near-zero gradients):
    # the difference is small next to how far training moved them
    from dabench.train.common import build_model
    from dabench.train.config import load_config

    init = build_model(load_config(preset="smoke")).state_dict()
    diff = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()
    moved = torch.cat([(a[k] - init[k]).flatten() for k in a]).norm()
    assert moved > 1e-2
    assert diff < 0.05 * moved, (float(diff), float(moved))
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "step_0000005" / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2 and state["data"]["world_size"] == 2
    assert (tmp_path / "ddp" / "tb").is_dir() and not (tmp_path / "ddp" / "final.safetensors.tmp").exists()
