"""`dabench train ...` end to end at smoke size: outputs, metadata, registration, evaluation, errors."""
from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from dabench.cli import app


def test_help_lists_stages_with_examples():
    r = CliRunner().invoke(app, ["train", "--help"])
    assert r.exit_code == 0
    for cmd in ("teacher", "pseudo-label", "student", "pipeline", "ablation"):
        assert cmd in r.output
        sub = CliRunner().invoke(app, ["train", cmd, "--help"])
        assert sub.exit_code == 0 and "Example: dabench train" in sub.output


def test_bad_key_is_a_one_line_error_naming_it(tmp_path):
    r = CliRunner().invoke(app, ["train", "teacher", "--preset", "smoke", "--out", str(tmp_path / "x"),
                                 "--set", "teacher.lrate=1"])
    assert r.exit_code == 2
    assert "teacher.lrate" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["train", "teacher", "--preset", "smoke", "--out", str(tmp_path / "x"),
                                 "--set", "teacher.steps=abc"])
    assert r.exit_code == 2 and "teacher.steps" in r.output


def test_cfg_option_and_flags_are_validated_before_the_folder_is_claimed(tmp_path):
    """`train` shares the fine-tuning vocabulary: --cfg-option (--set is the same list), --iters,
    --batch-size, --seed; each is a config key checked with the rest before --out is claimed."""
    out = tmp_path / "x"
    for args, words in ((["--cfg-option", "nonexistent.key=1"], ["nonexistent.key"]),
                        (["--cfg-option", "data.num_workers=-5"], ["'data.num_workers'", ">= 0"]),
                        (["--cfg-option", "teacher.lr=abc"], ["'teacher.lr'", "a number"]),
                        (["--iters", "0"], ["--iters"]),
                        (["--batch-size", "0"], ["--batch-size"])):
        r = CliRunner().invoke(app, ["train", "teacher", "--preset", "smoke", "--out", str(out), *args],
                               env={"COLUMNS": "300"})
        assert r.exit_code == 2, (args, r.output)
        for w in words:
            assert w in r.output, (args, r.output)
        assert "Traceback" not in r.output and not out.exists()
    from dabench.cli.train import _load

    cfg = _load(None, "smoke", ["teacher.lr=0.001"], False, stage="pipeline", iters=4, batch_size=3, seed=7)
    assert (cfg.teacher.steps, cfg.student.steps, cfg.teacher.batch_size, cfg.student.batch_size) == (4, 4, 3, 3)
    assert cfg.pseudo_label.batch_size == 3 and cfg.seed == 7 and cfg.teacher.lr == 0.001


def test_pipeline_smoke_end_to_end(tmp_path, _isolated_dabench_home):
    from dabench.models import create_model, load_model_from_checkpoint
    from dabench.models.checkpoint import read_metadata
    from dabench.provenance import checkpoints_dir

    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "pipeline", "--preset", "smoke", "--out", str(out),
                                 "--set", "run_name=smoke_student"])
    assert r.exit_code == 0, r.output
    for sub in ("teacher", "pseudo_labels", "student"):
        assert (out / sub / "config.py").is_file()
    for sub in ("teacher", "student"):
        d = out / sub
        assert (d / "final.safetensors").is_file() and (d / "tb").is_dir() and (d / "train.log").is_file()
        log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == 6 and "loss" in log[-1] and "images_per_s" in log[-1]
        meta = read_metadata(d / "final.safetensors")
        assert meta["dabench.arch"] == "da2_test" and meta["dabench.head"] == "relative"
        conf = json.loads(meta["dabench.config"])
        assert conf["stage"] == sub and conf["encoder_init"] == "random(init_seed=0)"
    s_log = json.loads((out / "student" / "log.jsonl").read_text().splitlines()[-1])
    assert {"loss_l", "loss_u", "loss_feat"} <= set(s_log)
    idx = json.loads((out / "pseudo_labels" / "index.json").read_text())
    assert idx["complete"] and idx["num_images"] == 16 and len(idx["shards"]) == 3
    # registered so `dabench run` without --model finds it; loads through the model zoo
    reg = checkpoints_dir() / "smoke_student.safetensors"
    assert reg.is_file()
    m = create_model("da2_test", checkpoint=reg).eval()
    m2 = load_model_from_checkpoint(out / "student" / "final.safetensors").eval()
    x = torch.randn(1, 3, 42, 56)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    # held-out evaluation: teacher, student and the horizon_prior baseline on both families
    ev = json.loads((out / "eval.json").read_text())["results"]
    assert set(ev) == {"teacher", "student", "horizon_prior"}
    for per in ev.values():
        assert set(per) == {"synthetic-indoor", "synthetic-outdoor"}
        for res in per.values():
            assert 0 < res["metrics"]["abs_rel"] < 10 and 0 <= res["metrics"]["delta1"] <= 1
            assert res["counts"]["used"] == 3
    assert "horizon_prior" in r.output and "AbsRel" in r.output
    # the registered checkpoint runs in a suite
    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    recs = run_suite("synthetic", EvalRequest(limit=2, results_dir=tmp_path / "res", show_progress=False),
                     models=["smoke_student"])
    assert {rec["dataset"] for rec in recs} == {"synthetic-indoor", "synthetic-outdoor"}
    assert all(rec["status"] == "ok" for rec in recs)
    # resuming a finished pipeline is a no-op that keeps the weights
    before = (out / "student" / "final.safetensors").read_bytes()
    r = CliRunner().invoke(app, ["train", "pipeline", "--preset", "smoke", "--out", str(out), "--resume",
                                 "--no-eval", "--set", "run_name=smoke_student"])
    assert r.exit_code == 0, r.output
    assert (out / "student" / "final.safetensors").read_bytes() == before


def test_student_with_teacher_checkpoint_of_other_arch_fails(tmp_path):
    r = CliRunner().invoke(app, ["train", "teacher", "--preset", "smoke", "--out", str(tmp_path / "teacher"),
                                 "--set", "teacher.steps=1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train", "pseudo-label", "--preset", "smoke", "--out", str(tmp_path / "pl"),
                                 "--teacher", str(tmp_path / "teacher" / "final.safetensors"),
                                 "--set", "model.arch=da1_test"])
    assert r.exit_code == 2 and "da2_test" in r.output and "da1_test" in r.output
