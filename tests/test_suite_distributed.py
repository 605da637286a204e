"""A 2-process gloo run (torchrun) equals a 1-process run: shards are disjoint and sums are reduced exactly."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dabench.metrics import DEPTH_METRICS


def _tiny_suite(tmp_path):
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "ddp", "task": "relative", "datasets": ["synthetic-indoor"],
        "defaults": {"alignment": "scale_shift_disparity", "score_space": "disparity", "input_size": 56},
        "metrics": ["abs_rel", "delta1"]}))
    return path


def _run(args, nproc, env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "dabench", "run", *args] if nproc > 1 else [sys.executable, "-m", "dabench", "run", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def test_two_process_gloo_equals_one_process(tmp_path):
    suite = _tiny_suite(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DABENCH_HOME": str(tmp_path / "home")}
    common = ["--suite", str(suite), "--model", "horizon_prior,da2_test", "--random-init", "--limit", "5",
              "--device", "cpu", "--batch-size", "2", "--no-cache"]
    _run([*common, "--results", str(tmp_path / "one")], 1, env)
    _run([*common, "--results", str(tmp_path / "two")], 2, env)
    for model in ("horizon_prior", "da2_test"):
        one = json.loads((tmp_path / "one" / "ddp" / model / "synthetic-indoor.partial.json").read_text())
        two = json.loads((tmp_path / "two" / "ddp" / model / "synthetic-indoor.partial.json").read_text())
        assert one["samples"] == two["samples"] and one["samples"]["used"] == 5  # 5 samples: uneven shards 3 + 2
        assert two["config"]["world_size"] == 2 and one["config"]["world_size"] == 1
        for k in DEPTH_METRICS:
            assert two["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-6, abs=1e-9), (model, k)
            assert two["metrics_pixel_pooled"][k] == pytest.approx(one["metrics_pixel_pooled"][k], rel=1e-6, abs=1e-9)
            # bootstrap CIs are drawn from every rank's per-sample values gathered on rank 0: the same interval
            assert two["ci"][k] == pytest.approx(one["ci"][k], rel=1e-6, abs=1e-9), (model, k)
        rows1 = list(csv.DictReader((tmp_path / "one" / "ddp" / model / "synthetic-indoor.partial.samples.csv").open()))
        rows2 = list(csv.DictReader((tmp_path / "two" / "ddp" / model / "synthetic-indoor.partial.samples.csv").open()))
        assert [r["name"] for r in rows1] == [r["name"] for r in rows2]
        np.testing.assert_allclose([float(r["abs_rel"]) for r in rows2], [float(r["abs_rel"]) for r in rows1], rtol=1e-6)


def _reduce_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    from dabench.metrics import DepthMetricState, SegMetricState

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    rng = np.random.default_rng(0)
    cases = [(rng.uniform(0.5, 9, (6, 7)), rng.uniform(0.5, 9, (6, 7)), rng.random((6, 7)) > 0.3) for _ in range(5)]
    state = DepthMetricState()
    seg = SegMetricState(3)
    for i in range(rank, len(cases), world):
        state.update(*cases[i])
        seg.update((cases[i][0] > 4).astype(int), (cases[i][1] > 4).astype(int) + (cases[i][2]).astype(int))
    state.all_reduce()
    seg.all_reduce()
    np.save(os.path.join(out_dir, f"rank{rank}.npy"), np.concatenate([state.to_vector(), seg.to_vector()]))
    dist.destroy_process_group()


def test_state_all_reduce_is_exact_under_gloo(tmp_path):
    import socket

    import torch.multiprocessing as mp

    from dabench.metrics import DepthMetricState, SegMetricState

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_reduce_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    rng = np.random.default_rng(0)
    cases = [(rng.uniform(0.5, 9, (6, 7)), rng.uniform(0.5, 9, (6, 7)), rng.random((6, 7)) > 0.3) for _ in range(5)]
    state, seg = DepthMetricState(), SegMetricState(3)
    for c in cases:
        state.update(*c)
        seg.update((c[0] > 4).astype(int), (c[1] > 4).astype(int) + c[2].astype(int))
    ref = np.concatenate([state.to_vector(), seg.to_vector()])
    for r in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"rank{r}.npy"), ref, rtol=1e-14)
