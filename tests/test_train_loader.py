"""DataLoader-fed training (dabench/train/loader.py): the same weights for any worker count."""
from __future__ import annotations

import torch
from safetensors.torch import load_file

from dabench.train import run_stage
from dabench.train.config import load_config, stage_fingerprint
from dabench.train.loader import EpochSampler, LoaderConfig, build_step_loader, default_num_workers, sample_generator


def _weights(path):
    return load_file(str(path))


def _assert_same(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_loader_yields_steps_in_order_for_any_worker_count():
    def batch_fn(step, g):
        return {"step": torch.tensor(step), "r": torch.rand(3, generator=g)}

    ref = [b for b in build_step_loader(batch_fn, start=3, stop=9, seed=5, rank=0, cfg=LoaderConfig(num_workers=0))]
    assert [int(b["step"]) for b in ref] == list(range(3, 9))
    state = torch.get_rng_state()
    got = list(build_step_loader(batch_fn, start=3, stop=9, seed=5, rank=0, cfg=LoaderConfig(num_workers=2)))
    assert torch.equal(torch.get_rng_state(), state), "building/iterating the loader must not draw from the global RNG"
    for a, b in zip(ref, got):
        assert torch.equal(a["r"], b["r"])


def test_sample_positions_shard_the_global_order_across_ranks():
    s0, s1 = EpochSampler(10, 3, seed=0, rank=0, world_size=2), EpochSampler(10, 3, seed=0, rank=1, world_size=2)
    one = EpochSampler(10, 6, seed=0)
    assert list(s0.positions(2)) + list(s1.positions(2)) == list(one.positions(2))
    assert s0.indices(2) + s1.indices(2) == one.indices(2)
    a, b = sample_generator(0, 1, 7), sample_generator(0, 1, 7)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=sample_generator(0, 1, 8)),
                           torch.rand(4, generator=sample_generator(0, 1, 7)))


def test_default_workers_follow_usable_cores(monkeypatch):
    import dabench.train.loader as L

    monkeypatch.setattr(L, "usable_cores", lambda: 16)
    assert default_num_workers(local_world_size=1) == 8
    assert default_num_workers(local_world_size=4) == 3
    monkeypatch.setattr(L, "usable_cores", lambda: 1)
    assert default_num_workers(local_world_size=1) == 0


def test_student_weights_identical_for_0_1_and_4_workers(tmp_path):
    """Every switch on (strong perturbations, CutMix, L_feat): the batches are made in 0, 1 or 4
    DataLoader workers and the final weights agree bit for bit; the worker count is not part of
    what a resume must match."""
    cfg0 = load_config(preset="smoke", overrides={"data.num_workers": 0, "teacher.steps": 3, "student.steps": 4})
    out = tmp_path / "run"
    run_stage("pipeline", cfg0, out, evaluate=False)
    ref = out / "student" / "final.safetensors"
    for workers in (1, 4):
        cfg = load_config(preset="smoke", overrides={"data.num_workers": workers, "teacher.steps": 3,
                                                     "student.steps": 4})
        assert stage_fingerprint(cfg, "student") == stage_fingerprint(cfg0, "student")
        dst = tmp_path / f"student_w{workers}"
        run_stage("student", cfg, dst, pseudo_labels=out / "pseudo_labels")
        _assert_same(ref, dst / "final.safetensors")
    t4 = load_config(preset="smoke", overrides={"data.num_workers": 4, "teacher.steps": 3})
    run_stage("teacher", t4, tmp_path / "teacher_w4")
    _assert_same(out / "teacher" / "final.safetensors", tmp_path / "teacher_w4" / "final.safetensors")


def test_workers_do_not_deadlock_after_the_parent_used_opencv_threads(tmp_path):
    """Forked workers of a process that already ran OpenCV's thread pool (a long test session, a
    notebook) must not touch that pool's settings: that deadlocks. Run in a subprocess so a
    regression fails instead of hanging."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "fork.py"
    script.write_text(
        "import cv2, numpy as np, torch\n"
        "from dabench.train.loader import LoaderConfig, build_step_loader\n"
        "img = np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)\n"
        "cv2.setNumThreads(4)\n"
        "for _ in range(3):\n"
        "    cv2.resize(img, (1000, 1000), interpolation=cv2.INTER_AREA)\n"
        "    cv2.GaussianBlur(img, (15, 15), 3)\n"
        "def batch_fn(step, g):\n"
        "    return torch.from_numpy(cv2.resize(img, (300, 300), interpolation=cv2.INTER_AREA)).float().mean()\n"
        "out = list(build_step_loader(batch_fn, start=0, stop=4, seed=0, rank=0, cfg=LoaderConfig(num_workers=2)))\n"
        "assert len(out) == 4\n")
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(script)], env={**__import__("os").environ, "PYTHONPATH": str(repo)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
