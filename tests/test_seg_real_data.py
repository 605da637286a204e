"""Segmentation on tiny datasets in the real Cityscapes / ADE20K layouts (tests/real_layouts.py):
`dabench data check`, the tiny presets of `dabench finetune seg` (real pipelines and label maps
through mmseg, non-square frames), what the after-training evaluation says about its split, and
the seg-ade20k suite reading the card's split names."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("mmseg")

from dabench.cli import app  # noqa: E402
from real_layouts import write_ade20k, write_cityscapes  # noqa: E402

runner = CliRunner()


def _run(args):
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return res.exit_code, re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─┃┏┓┗┛━]", " ", res.output))


def test_data_check_reads_segmentation_sets(tmp_path):
    city = write_cityscapes(tmp_path, {"train": 2, "val": 1})
    write_ade20k(tmp_path, {"training": 2, "validation": 1})
    code, out = _run(["data", "check", "cityscapes", "--data-root", tmp_path])
    assert code == 0, out
    assert "48x96" in out and "ok" in out and "classes seen (of 19) 3 3" in out
    code, out = _run(["data", "check", "ade20k", "--data-root", tmp_path])
    assert code == 0, out
    assert "63x84 (1), 84x63 (1)" in out  # landscape and portrait frames
    # an id outside the 19 train ids, and a frame without its label map: named, exit 1
    bad = next((city / "gtFine" / "val").rglob("*_labelTrainIds.png"))
    lab = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    lab[5, 5] = 25
    cv2.imwrite(str(bad), lab)
    next((city / "gtFine" / "train").rglob("*_labelTrainIds.png")).unlink()
    code, out = _run(["data", "check", "cityscapes", "--data-root", tmp_path])
    assert code == 1
    assert bad.name in out and "[25]" in out and "has no label map" in out


def _finetune(tmp_path, dataset, iters=3):
    out = tmp_path / f"run-{dataset}"
    code, text = _run(["finetune", "seg", "--dataset", dataset, "--preset", "tiny", "--random-init", "--arch",
                       "da2_test", "--data-root", tmp_path, "--iters", iters, "--batch-size", 2, "--out", out,
                       "--results", tmp_path / f"results-{dataset}"])
    assert code == 0, text
    return out, json.loads((out / "summary.json").read_text()), text


def test_tiny_preset_on_cityscapes_layout(tmp_path):
    write_cityscapes(tmp_path)
    out, summary, text = _finetune(tmp_path, "cityscapes")
    assert summary["preset"] == "tiny" and summary["iters"] == 3 and summary["arch"] == "da2_test"
    assert summary["config"].endswith("upernet_da2-test_1xb4-300_cityscapes-70x70.py")
    # the "held-out" split is the validation split (Cityscapes publishes no test labels): said so
    held = summary["held_out"]
    assert held["same_as_val"] is True and held["split"] == "leftImg8bit/val" and "validation split" in held["note"]
    assert "val split = held-out split" in text and "not an unseen test set" in text
    assert 0 <= summary["test"]["miou"] <= 100 and set(summary["test"]["per_class"]) >= {"road", "sky"}
    # majority class over the training label maps: building and road bands are the widest
    assert summary["majority_class"] in ("road", "building")
    from dabench.models import checkpoint as ckpt

    cfg = json.loads(ckpt.read_metadata(out / "final.safetensors")["dabench.config"])
    assert cfg["num_classes"] == 19 and len(cfg["classes"]) == 19 and cfg["dataset"] == "cityscapes"
    # the evaluation is also in the results store (suite finetune-seg), saying what split it scored
    recs = {p.parent.name: json.loads(p.read_text())
            for p in (tmp_path / "results-cityscapes" / "finetune-seg").glob("*/cityscapes*.json")}
    assert set(recs) == {Path(summary["registered"]).stem, "majority_class"}, recs
    for rec in recs.values():
        assert rec["task"] == "segmentation" and rec["held_out"]["same_as_val"] is True
        assert rec["protocol"]["split"] == "leftImg8bit/val" and rec["protocol"]["same_as_val"] is True
    assert recs["majority_class"]["metrics"]["miou"] == pytest.approx(summary["test_majority_baseline"]["miou"])


def test_tiny_preset_on_ade20k_layout_and_suite(tmp_path):
    write_ade20k(tmp_path)
    out, summary, _ = _finetune(tmp_path, "ade20k")
    assert summary["held_out"]["split"] == "images/validation" and summary["held_out"]["same_as_val"]
    # reduce_zero_label: raw ids 1 (wall), 4 (floor), 6 (ceiling) are classes 0, 3, 5; 0 ("other") ignored
    per_class = summary["test"]["per_class"]
    assert {k for k, v in per_class.items() if v is not None} <= {"wall", "floor", "ceiling"} | {
        k for k, v in per_class.items() if v == 0.0}
    assert summary["majority_class"] in ("wall", "floor", "ceiling")
    # the seg-ade20k suite reads the card's split names (validation) and scores the checkpoint
    res = tmp_path / "results"
    code, text = _run(["run", "--suite", "seg-ade20k", "--checkpoint", out / "final.safetensors", "--data-root",
                       tmp_path, "--results", res, "--limit", 1])
    assert code == 0, text
    recs = {p.parent.name: json.loads(p.read_text()) for p in (res / "seg-ade20k").glob("*/ade20k*.json")}
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs.values()), recs
    assert {r["protocol"]["split"] for r in recs.values()} == {"validation"}
    assert recs["majority_class"]["samples"]["used"] == 1
