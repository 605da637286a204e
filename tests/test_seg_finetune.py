"""`dabench finetune seg` end to end on the synthetic world (tiny preset, shortened), resume, the
seg-synthetic suite on its checkpoint, and the CLI's errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("mmseg")


from dabench.cli import app  # noqa: E402

runner = CliRunner()
# a shortened tiny preset: fewer scenes and iterations (the full preset: see docs/finetune.md, "Semantic segmentation")
SMALL = ["--batch-size", "4",
         "--cfg-option", "train_dataloader.dataset.datasets.0.num_samples=64",
         "--cfg-option", "train_dataloader.dataset.datasets.1.num_samples=64",
         "--cfg-option", "val_dataloader.dataset.datasets.0.num_samples=4",
         "--cfg-option", "val_dataloader.dataset.datasets.1.num_samples=4",
         "--cfg-option", "test_dataloader.dataset.datasets.0.num_samples=8",
         "--cfg-option", "test_dataloader.dataset.datasets.1.num_samples=8",
         "--cfg-option", "train_cfg.val_interval=1000",
         "--cfg-option", "default_hooks.checkpoint.interval=20",
         "--cfg-option", "default_hooks.checkpoint.max_keep_ckpts=3"]


def _invoke(args):
    res = runner.invoke(app, args, catch_exceptions=False)
    return res


def test_finetune_tiny_resume_and_suite(tmp_path):
    out = tmp_path / "run"
    args = ["finetune", "seg", "--dataset", "synthetic", "--preset", "tiny", "--random-init", "--arch", "da2_test",
            "--iters", "60", "--out", str(out), *SMALL]
    res = _invoke([*args, "--no-eval"])
    assert res.exit_code == 0, res.output
    assert (out / "iter_20.pth").is_file() and (out / "final.safetensors").is_file()

    # simulate a run killed after iteration 20, then resume it (mmengine's own checkpoint: trusted
    # because it lies in --out) and finish iterations 21..60
    for name in ("iter_40.pth", "iter_60.pth", "final.safetensors"):
        (out / name).unlink()
    (out / "last_checkpoint").write_text(str(out / "iter_20.pth"))
    res = _invoke([*args, "--resume", "--results", str(tmp_path / "ft-results")])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    logs = "".join(p.read_text() for p in out.rglob("*.log"))
    assert "resumed epoch: 0, iter: 20" in logs
    # the console: one line per validation, the summary; mmengine's log (environment, config,
    # iterations) and third-party warnings stay in the run's log file
    flat_out = res.output.replace("\n", "")  # the log path may wrap
    run_log = Path(flat_out.split("full log: ")[1].split(".log")[0] + ".log")
    vals = [line for line in res.output.splitlines() if line.startswith("iter ") and ": val mIoU " in line]
    assert run_log.parent.parent == out and len(vals) == run_log.read_text().count("Iter(val)") >= 1, res.output
    assert "Iter(train)" not in res.output and "System environment" not in res.output
    assert "Warning" not in res.output and len(res.output.splitlines()) < 30, res.output
    assert (out / "iter_60.pth").is_file() and summary["iters"] == 60
    # it learned: far above predicting the training set's majority class everywhere, same test images
    model, base = summary["test"], summary["test_majority_baseline"]
    assert summary["majority_class"] == _majority_of_training_scenes(64)  # both families' training scenes
    assert model["miou"] > base["miou"] + 10, (model, base)
    assert model["aacc"] > base["aacc"] + 25, (model, base)

    from dabench.models import checkpoint as ckpt

    meta = ckpt.read_metadata(out / "final.safetensors")
    assert meta["dabench.arch"] == "da2_test" and meta["dabench.head"] == "seg_upernet"
    assert Path(summary["registered"]).is_file()

    # the held-out split holds both families: indoor-only classes are scored, not null
    held = summary["held_out"]
    assert sorted(held["families"]) == ["indoor", "outdoor"] and held["split"] == "test"
    assert "synthetic families scored: outdoor, indoor" in " ".join(res.output.split())
    ft_records = sorted((tmp_path / "ft-results" / "finetune-seg").glob("*/synthetic*.json"))
    assert len(ft_records) == 2, ft_records
    for path in ft_records:
        rec = json.loads(path.read_text())
        assert rec["dataset"] == "synthetic" and sorted(rec["held_out"]["families"]) == ["indoor", "outdoor"]
        for cls in ("floor", "wall", "ceiling", "road", "sky"):
            assert rec["per_class"][cls] is not None, (path, cls)
        # every held-out image counted (8 outdoor + 8 indoor scenes): the whole split, a complete record
        assert rec["samples"]["used"] == 16 and rec["selection"]["complete"], (path, rec["samples"])
    # a finished run: `results ls --history` says so (its manifest is written), with both records
    res = _invoke(["results", "ls", "--history", "--format", "json", "--results", str(tmp_path / "ft-results")])
    (run,) = json.loads(res.output)
    assert run["finished"] and run["complete"] and run["records"] == 2 and run["suite"] == "finetune-seg", run
    res = _invoke(["results", "ls", "--results", str(tmp_path / "ft-results")])
    assert res.exit_code == 0 and "partial" not in res.output and " 16 " in res.output, res.output

    # `dabench run --suite seg-synthetic --checkpoint final.safetensors` scores it and the baseline
    results = tmp_path / "results"
    res = _invoke(["run", "--suite", "seg-synthetic", "--checkpoint", str(out / "final.safetensors"),
                   "--limit", "16", "--datasets", "synthetic-outdoor", "--results", str(results)])
    assert res.exit_code == 0, res.output
    labels = sorted(p.name for p in (results / "seg-synthetic").iterdir())
    assert len(labels) == 2 and "majority_class" in labels, labels
    label = next(x for x in labels if x != "majority_class")
    rec = json.loads((results / "seg-synthetic" / label / "synthetic-outdoor.partial.json").read_text())
    base_rec = json.loads((results / "seg-synthetic" / "majority_class" / "synthetic-outdoor.partial.json").read_text())
    assert rec["task"] == "segmentation" and rec["status"] == "ok"
    assert set(rec["metrics"]) == {"miou", "macc", "aacc"} and rec["higher_is_better"]["miou"] is True
    assert rec["samples"]["used"] == 16 and rec["protocol"]["inference"] == "slide"
    assert "road" in rec["per_class"] and base_rec["config"]["majority_class"] == "road"
    # the fine-tune's own test score is the saved weights re-scored on the same mixed held-out scenes
    assert _rescore(out)["miou"] == pytest.approx(model["miou"], abs=1e-6)


def _majority_of_training_scenes(n: int) -> str:
    """The class covering most labelled pixels of ``n`` outdoor + ``n`` indoor training scenes (numpy)."""
    import numpy as np

    from dabench.data.synthetic import SEMANTIC_CLASSES, SyntheticDataset

    counts = np.zeros(len(SEMANTIC_CLASSES), np.int64)
    for family in ("outdoor", "indoor"):
        ds = SyntheticDataset(family, n, (84, 84), 0, "train")
        for i in range(n):
            lab = ds[i]["labels"]
            counts += np.bincount(lab[lab != 255].ravel(), minlength=len(SEMANTIC_CLASSES))
    return SEMANTIC_CLASSES[int(counts.argmax())]


def _rescore(out: Path) -> dict:
    """Score ``out/final.safetensors`` on the test loader of the run's saved config, in this process."""
    from dabench.finetune.seg.checkpoint import build_seg_model, read_seg_checkpoint
    from dabench.finetune.seg.config import load_config
    from dabench.finetune.seg.evaluate import evaluate
    from dabench.finetune.seg.metric import split_metrics

    cfg = load_config(out / "config.py")
    config, state = read_seg_checkpoint(out / "final.safetensors")
    model = build_seg_model(config, state, source=str(out / "final.safetensors"))
    model.eval()
    model.test_cfg = cfg.model.test_cfg
    model.dataset_meta = {"classes": tuple(config["classes"])}
    return split_metrics(evaluate(model, cfg.test_dataloader.to_dict()))[0]


def _error(args) -> str:
    """Exit code 2 and the one-line message (rich panel borders and wrapping removed)."""
    res = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert res.exit_code == 2, res.output
    return " ".join(res.output.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", " ").split())


def test_cli_errors_are_clear(tmp_path):
    assert "--random-init" in _error(["finetune", "seg", "--dataset", "synthetic", "--out", str(tmp_path)])
    assert "nope.pth" in _error(["finetune", "seg", "--dataset", "synthetic", "--init", str(tmp_path / "nope.pth")])
    msg = _error(["finetune", "seg", "--dataset", "cityscapes", "--preset", "tiny", "--head", "mask2former",
                  "--random-init"])
    assert "no tiny config for mask2former on cityscapes" in msg and "--preset tiny --dataset cityscapes" in msg
    # the synthetic preset's config cannot read real data: one clear message
    from dabench.finetune.seg.config import heads_dir

    cfg = str(heads_dir() / "upernet_da2-test_1xb8-600_synthetic-70x70.py")
    msg = _error(["finetune", "seg", "--dataset", "cityscapes", "--config", cfg, "--random-init", "--data-root",
                  str(tmp_path), "--out", str(tmp_path / "o2")])
    assert "synthetic world" in msg
    assert "data root" in _error(["finetune", "seg", "--dataset", "cityscapes", "--random-init", "--out", str(tmp_path)])
    msg = _error(["finetune", "seg", "--dataset", "cityscapes", "--random-init", "--data-root", str(tmp_path),
                  "--out", str(tmp_path / "o")])
    assert "cityscapes/leftImg8bit/train" in msg and "does not exist" in msg

    from dabench.finetune.seg.mmcv_compat import full_mmcv_available

    if not full_mmcv_available():
        msg = _error(["finetune", "seg", "--dataset", "synthetic", "--head", "mask2former", "--random-init",
                      "--out", str(tmp_path)])
        assert "mmcv-full" in msg and "--head upernet" in msg


def test_suite_skips_depth_checkpoints_and_baselines(tmp_path):
    from dabench.finetune.seg.suite import run_seg_suite
    from dabench.models import create_model, save_checkpoint

    depth = save_checkpoint(create_model("da2_test"), tmp_path / "depth.safetensors", arch="da2_test")
    assert run_seg_suite("seg-synthetic", "depth", checkpoint=str(depth), results_dir=tmp_path / "r") == []
    assert run_seg_suite("seg-synthetic", "constant", checkpoint=None, results_dir=tmp_path / "r") == []


def test_torchrun_two_processes(tmp_path):
    """DDP on CPU (gloo) through torchrun; the distributed test evaluation (results gathered from
    both ranks) equals a single-process evaluation of the saved checkpoint on the same images."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dabench",
           "finetune", "seg", "--dataset", "synthetic", "--preset", "tiny", "--random-init", "--arch", "da2_test",
           "--iters", "4", "--batch-size", "2", "--out", str(out),
           "--cfg-option", "train_dataloader.dataset.datasets.0.num_samples=4",
           "--cfg-option", "train_dataloader.dataset.datasets.1.num_samples=4",
           "--cfg-option", "val_dataloader.dataset.datasets.0.num_samples=2",
           "--cfg-option", "val_dataloader.dataset.datasets.1.num_samples=2",
           "--cfg-option", "test_dataloader.dataset.datasets.0.num_samples=2",
           "--cfg-option", "test_dataloader.dataset.datasets.1.num_samples=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs = "".join(p.read_text() for p in out.rglob("*.log"))
    assert "Distributed training: True" in logs and "MMDistributedDataParallel" in logs
    summary = json.loads((out / "summary.json").read_text())

    ref = _rescore(out)  # both families' held-out scenes, one process
    assert ref["miou"] == pytest.approx(summary["test"]["miou"], abs=1e-6)
    assert ref["aacc"] == pytest.approx(summary["test"]["aacc"], abs=1e-6)


@pytest.mark.parametrize("option,words", [
    ("optim_wrapper.optimizer.lr=abc", ["'optim_wrapper.optimizer.lr'", "a number", "'abc'"]),
    ("optim_wrapper.optimizer.lr=0", ["'optim_wrapper.optimizer.lr'", "> 0"]),
    ("nonexistent.key=1", ["unknown config key 'nonexistent.key'"]),
    ("train_dataloader.num_workers=-5", ["'train_dataloader.num_workers'", ">= 0"]),
    ("train_dataloader.dataset.datasets.7.num_samples=4", ["unknown config key", "list of 2 items"]),
    ("train_cfg.max_iters=ten", ["'train_cfg.max_iters'", "an integer"]),
])
def test_bad_cfg_option_fails_before_any_folder_is_claimed(tmp_path, option, words):
    out = tmp_path / "run"
    msg = _error(["finetune", "seg", "--dataset", "synthetic", "--preset", "tiny", "--random-init", "--out", str(out),
                  "--no-eval", "--cfg-option", option])
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg and not out.exists()


def test_options_are_typed(tmp_path):
    out = tmp_path / "run"
    msg = _error(["finetune", "seg", "--dataset", "synthetic", "--random-init", "--iters", "0", "--out", str(out)])
    assert "'iters'" in msg and ">= 1" in msg and not out.exists()
    msg = _error(["finetune", "seg", "--dataset", "synthetic", "--random-init", "--seed", "-1", "--out", str(out)])
    assert "'seed'" in msg and not out.exists()
    # a new argument of a registry component is allowed, and checked as the value it replaces elsewhere
    from dabench.finetune.seg.config import check_cfg_options, heads_dir, load_config

    cfg = load_config(heads_dir() / "upernet_da2-test_1xb8-600_synthetic-70x70.py")
    check_cfg_options(cfg, {"optim_wrapper.optimizer.eps": 1e-8, "train_dataloader.batch_size": 2}, "<cfg>")
