"""Suites, protocol resolution, per-sample scoring and the runner end to end (tiny synthetic data)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from dabench.errors import ConfigError, DataError
from dabench.eval.loop import evaluate_dataset
from dabench.eval.runner import run_suite
from dabench.eval.scoring import score_sample
from dabench.eval.suites import Protocol, list_suites, load_suite, parse_suite, resolve_protocol
from dabench.metrics import DEPTH_METRICS
from dabench.tasks import EvalRequest

from test_metrics import ref_depth


def write_suite(tmp_path, name="tiny", **over):
    data = {"name": name, "task": "relative", "description": "tiny test suite", "source": "tests",
            "defaults": {"alignment": "scale_shift_disparity", "score_space": "disparity", "input_size": 56},
            "datasets": ["synthetic-indoor", "synthetic-outdoor"],
            "metrics": ["abs_rel", "delta1", "rmse"], "primary_metrics": ["abs_rel", "delta1"]}
    data.update(over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ---------------------------------------------------------------------------------------- schema
def test_every_shipped_suite_loads():
    names = list_suites()
    assert "zero-shot" in names and "synthetic" in names
    for n in names:
        s = load_suite(n)
        assert s.name == n and s.datasets and set(s.primary_metrics) <= set(s.metrics)
    z = load_suite("zero-shot")
    assert z.dataset_names == ["kitti", "nyu", "sintel", "ddad", "eth3d", "diode-indoor"]
    assert z.primary_metrics == ["abs_rel", "delta1"] and z.task == "relative"


@pytest.mark.parametrize("bad, match", [
    ({"colour": "red"}, "unknown suite key 'colour'"),
    ({"task": "detection"}, "task must be one of"),
    ({"metrics": ["abs_rel", "mae"]}, "unknown metric 'mae'.*abs_rel"),
    ({"metrics": ["miou"]}, "does not belong to a relative suite"),
    ({"datasets": [{"dataset": "nyu", "alignment": "affine"}]}, "unknown alignment 'affine'"),
    ({"datasets": [{"dataset": "nyu", "crop_size": 3}]}, "unknown key 'crop_size'"),
    ({"datasets": [{"dataset": "nyu", "input_size": 0}]}, "positive number of pixels"),
    ({"datasets": [{"dataset": "nyu", "flip_tta": "yes"}]}, "flip_tta must be bool"),
    ({"datasets": ["nyu", "nyu"]}, "listed twice"),
    ({"primary_metrics": ["silog"]}, "not in metrics"),
])
def test_suite_schema_errors_name_file_and_value(bad, match):
    data = {"name": "x", "task": "relative", "datasets": ["synthetic-indoor"], "metrics": ["abs_rel", "delta1"]}
    data.update(bad)
    with pytest.raises(ConfigError, match=match):
        parse_suite(data, "suites/x.yaml")


def test_unknown_suite_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid suites: .*zero-shot"):
        load_suite("zero-shoot")


def test_protocol_precedence(tmp_path):
    from dabench.data import load_card

    suite = load_suite(write_suite(tmp_path, datasets=[{"dataset": "synthetic-indoor", "max_depth": 8.0},
                                                       "synthetic-outdoor"]))
    card = load_card("synthetic-indoor")
    p = resolve_protocol(suite, "synthetic-indoor", card, overrides={"flip_tta": True, "crop": None})
    assert p.max_depth == 8.0  # suite entry beats the card (10)
    assert p.min_depth == card["min_depth"] and p.split == card["default_split"]  # card beats task defaults
    assert p.input_size == 56  # suite defaults
    assert p.flip_tta is True and p.crop == "none"  # explicit override; None keeps
    metric = parse_suite({"task": "metric", "datasets": ["synthetic-indoor"]}, "<m>")
    q = resolve_protocol(metric, "synthetic-indoor", None)
    assert q.alignment == "none" and q.score_space == "depth"


# ---------------------------------------------------------------------------------------- one sample
def _sample(rng, h=16, w=20):
    depth = rng.uniform(1.0, 9.0, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.2
    return {"image": np.zeros((h, w, 3), np.uint8), "depth": depth, "valid": valid, "name": "room_07"}


def test_score_sample_disparity_protocol_vs_numpy():
    rng = np.random.default_rng(0)
    s = _sample(rng)
    pred = rng.uniform(0.1, 2.0, s["depth"].shape).astype(np.float32)  # raw "disparity"
    proto = Protocol(min_depth=0.5, max_depth=10.0)
    status, m, info = score_sample(pred, s, proto, "disparity")
    v = s["valid"] & (s["depth"] > 0.5) & (s["depth"] < 10.0)
    p, g = pred[v].astype(np.float64), s["depth"][v].astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), 1 / g, rcond=None)
    ref = ref_depth(np.clip(a * p + b, 1 / 10.0, 1 / 0.5), 1 / g)
    assert status == "ok" and info["valid_pixels"] == v.sum()
    assert m == pytest.approx(ref, rel=1e-9)


def test_score_sample_midas_depth_cap_vs_numpy():
    rng = np.random.default_rng(1)
    s = _sample(rng)
    pred = rng.uniform(-0.5, 2.0, s["depth"].shape)
    proto = Protocol(score_space="depth", depth_cap=5.0, min_depth=0.5, max_depth=10.0)
    status, m, _ = score_sample(pred, s, proto, "disparity")
    v = s["valid"] & (s["depth"] > 0.5) & (s["depth"] < 10.0)
    p, g = pred[v], s["depth"][v].astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), 1 / g, rcond=None)
    disp = np.maximum(a * p + b, 1 / 5.0)  # MiDaS: clamp at 1/depth_cap, invert, score in depth
    assert m == pytest.approx(ref_depth(np.maximum(1 / disp, 0.5), g), rel=1e-9)


def test_score_sample_metric_protocol_clamps():
    rng = np.random.default_rng(2)
    s = _sample(rng)
    pred = s["depth"] * rng.uniform(0.5, 1.5, s["depth"].shape)
    pred[0, :] = 50.0  # beyond max_depth: clamped
    proto = Protocol(alignment="none", score_space="depth", min_depth=1e-3, max_depth=10.0)
    _, m, _ = score_sample(pred, s, proto, "depth")
    v = s["valid"] & (s["depth"] > 1e-3) & (s["depth"] < 10.0)
    assert m == pytest.approx(ref_depth(np.clip(pred, 1e-3, 10.0)[v], s["depth"][v].astype(np.float64)), rel=1e-9)


def test_score_sample_bad_input_policy():
    rng = np.random.default_rng(3)
    s = _sample(rng)
    pred = np.ones(s["depth"].shape)
    pred[2, 3] = np.inf
    with pytest.raises(DataError, match="room_07.*NaN/inf"):
        score_sample(pred, s, Protocol(), "disparity")
    s2 = dict(s, valid=np.zeros_like(s["valid"]))
    assert score_sample(np.ones(s["depth"].shape), s2, Protocol(), "disparity")[0] == "skipped_no_valid"
    one = np.zeros_like(s["valid"])
    one[1, 1] = True
    assert score_sample(np.ones(s["depth"].shape), dict(s, valid=one), Protocol(), "disparity")[0] == "skipped_degenerate"


# ---------------------------------------------------------------------------------------- runner
@pytest.fixture(scope="module")
def synth_samples():
    """Three synthetic samples, rendered once (a plain list works as a dataset)."""
    from dabench.data import build_dataset

    ds = build_dataset("synthetic-indoor", limit=3)
    return [ds[i] for i in range(len(ds))]


def test_evaluate_dataset_equals_independent_pipeline(synth_samples):
    """horizon_prior on 3 synthetic samples: runner == predict_batch + lstsq + numpy metrics, averaged per image."""
    from dabench.models import create_model
    from dabench.models.inference import predict_batch

    model = create_model("horizon_prior")
    proto = Protocol(min_depth=1.0, max_depth=8.0, input_size=56)
    metrics, counts = evaluate_dataset(model, synth_samples, proto, batch_size=2)
    refs = []
    for s in synth_samples:
        pred = predict_batch(model, [s["image"]], input_size=56)[0].astype(np.float64)
        v = s["valid"] & (s["depth"] > 1.0) & (s["depth"] < 8.0)
        p, g = pred[v], s["depth"][v].astype(np.float64)
        (a, b), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), 1 / g, rcond=None)
        refs.append(ref_depth(np.clip(a * p + b, 1 / 8.0, 1 / 1.0), 1 / g))
    assert counts == {"used": 3, "skipped_no_valid": 0, "skipped_degenerate": 0, "skipped_missing": 0, "total": 3}
    for k in DEPTH_METRICS:
        assert metrics[k] == pytest.approx(np.mean([r[k] for r in refs]), rel=1e-6), k


def test_evaluate_dataset_counts_skips_and_rejects_nan(synth_samples):
    from dabench.models import create_model

    blank = dict(synth_samples[1], valid=np.zeros_like(synth_samples[1]["valid"]), name="blank")
    samples = [synth_samples[0], blank, synth_samples[2]]
    proto = Protocol(min_depth=1.0, max_depth=80.0, input_size=56)
    model = create_model("horizon_prior").train()
    metrics, counts = evaluate_dataset(model, samples, proto, batch_size=3)
    assert model.training  # a model evaluated mid-training is handed back in train mode
    ref, _ = evaluate_dataset(model, [synth_samples[0], synth_samples[2]], proto, batch_size=1)
    assert counts["used"] == 2 and counts["skipped_no_valid"] == 1
    assert metrics == pytest.approx(ref, rel=1e-12)  # the blank sample changes nothing, no NaN

    from dabench.models.depth_anything import default_data_config

    class NaNModel(torch.nn.Module):
        output_space = "disparity"
        data_config = default_data_config()  # the model contract: every model says how it wants its input

        def forward(self, x):
            out = torch.ones(x.shape[0], x.shape[2], x.shape[3])
            out[:, 0, 0] = float("nan")
            return out

    with pytest.raises(DataError, match="synthetic-indoor/test/000000.*NaN/inf"):
        evaluate_dataset(NaNModel(), synth_samples[:1], proto)


def test_run_suite_records_csv_cache_and_table(tmp_path, capsys):
    suite = write_suite(tmp_path, datasets=["synthetic-outdoor"])
    out = tmp_path / "results"
    from rich.console import Console

    recs = run_suite(suite, EvalRequest(limit=3, results_dir=out, show_progress=False, print_table=True),
                     models=["constant", "horizon_prior"], console=Console(stderr=True, width=160))
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    r = json.loads((out / "tiny" / "horizon_prior" / "synthetic-outdoor.partial.json").read_text())
    assert r["schema"] == "dabench.result/2" and r["samples"]["used"] == 3
    assert set(r["metrics"]) == set(DEPTH_METRICS) and r["higher_is_better"]["delta1"] is True
    assert r["protocol"]["alignment"] == "scale_shift_disparity" and r["protocol"]["input_size"] == 56
    for key in ("seed", "config", "versions", "git_commit", "date"):
        assert key in r
    assert r["config"]["limit"] == 3 and r["cache"] == {"hits": 0, "misses": 3}
    rows = list(csv.DictReader((out / "tiny" / "horizon_prior" / "synthetic-outdoor.partial.samples.csv").open()))
    assert len(rows) == 3 and rows[0]["status"] == "ok"
    assert np.mean([float(x["abs_rel"]) for x in rows]) == pytest.approx(r["metrics"]["abs_rel"], rel=1e-12)
    # the horizon prior beats the constant floor outdoors
    const = json.loads((out / "tiny" / "constant" / "synthetic-outdoor.partial.json").read_text())
    assert r["metrics"]["abs_rel"] < const["metrics"]["abs_rel"]
    # rerun: every prediction comes from the cache and the numbers are identical
    again = run_suite(suite, EvalRequest(limit=3, results_dir=out, show_progress=False), models=["horizon_prior"])
    assert [a["cache"] for a in again] == [{"hits": 3, "misses": 0}]
    assert again[0]["metrics"] == r["metrics"]
    err = capsys.readouterr().err
    assert "AbsRel" in err and "horizon_prior" in err


def test_random_init_da_model_runs_and_is_flagged(tmp_path, capsys):
    recs = run_suite(write_suite(tmp_path, datasets=["synthetic-indoor"]),
                     EvalRequest(random_init=True, limit=2, results_dir=tmp_path / "r", show_progress=False),
                     models=["da2_test"])
    assert recs[0]["random_init"] is True and recs[0]["config"]["random_init"] is True
    assert recs[0]["status"] == "ok" and recs[0]["model_params"] > 0
    assert "RANDOM weights" in capsys.readouterr().err


def test_model_resolution_errors(tmp_path):
    suite = write_suite(tmp_path)
    with pytest.raises(ConfigError, match="needs weights.*--checkpoint.*--random-init"):
        run_suite(suite, EvalRequest(results_dir=tmp_path), models=["da2_vits14"])
    with pytest.raises(ConfigError, match="unknown model 'dav2'.*horizon_prior"):
        run_suite(suite, EvalRequest(results_dir=tmp_path), models=["dav2"])
    with pytest.raises(ConfigError, match="has no dataset 'nyu'.*synthetic-indoor"):
        run_suite(suite, EvalRequest(datasets="nyu", results_dir=tmp_path), models=["constant"])
    metric = write_suite(tmp_path, name="m", task="metric", defaults={"alignment": "none"})
    with pytest.raises(ConfigError, match="relative disparity"):
        run_suite(metric, EvalRequest(results_dir=tmp_path), models=["constant"])


def test_default_models_are_local_checkpoints_plus_baselines(tmp_path):
    from dabench.models.resolve import resolve_models
    from dabench.models import create_model, save_checkpoint
    from dabench.provenance import checkpoints_dir

    assert [r.label for r in resolve_models(None)] == ["constant", "horizon_prior"]
    save_checkpoint(create_model("da2_test"), checkpoints_dir() / "tiny-student.safetensors", arch="da2_test")
    runs = resolve_models(None)
    assert [r.label for r in runs] == ["tiny-student", "constant", "horizon_prior"]
    assert runs[0].checkpoint.endswith("tiny-student.safetensors")
    assert resolve_models(["tiny-student"])[0].checkpoint == runs[0].checkpoint
    assert resolve_models(None, checkpoint=tmp_path / "nyu" / "final.safetensors")[0].label == "nyu-final"
    with pytest.raises(ConfigError, match="one model"):
        run_suite(write_suite(tmp_path), EvalRequest(name="x", results_dir=tmp_path),
                  models=["constant", "horizon_prior"])


def test_cli_run_and_ls(tmp_path):
    from dabench.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["run", "--suite", str(write_suite(tmp_path, datasets=["synthetic-indoor"])),
                              "--model", "constant", "--limit", "1",
                              "--device", "cpu", "--results", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "tiny" / "constant" / "synthetic-indoor.partial.json").is_file()
    res = runner.invoke(app, ["run", "--suite", "nope", "--model", "constant"])
    assert res.exit_code == 2 and "valid suites" in res.output
    res = runner.invoke(app, ["ls", "metrics"])
    assert res.exit_code == 0 and "abs_rel" in res.output and "miou" in res.output
    res = runner.invoke(app, ["ls", "suites"])
    assert res.exit_code == 0 and "zero-shot" in res.output


def test_kb_crop_cuts_before_inference_and_masks_like_full_frame():
    from dabench.data.crops import crop_mask
    from dabench.eval.scoring import eval_valid_mask, prepare_sample

    h, w = 375, 1242
    depth = np.linspace(1, 70, h * w, dtype=np.float32).reshape(h, w)
    s = {"image": np.zeros((h, w, 3), np.uint8), "depth": depth, "valid": np.ones((h, w), bool), "name": "k"}
    proto = Protocol(crop="kb+garg", min_depth=1e-3, max_depth=80.0)
    out = prepare_sample(s, proto)
    assert out["image"].shape == (352, 1216, 3) and out["depth"].shape == (352, 1216)
    top, left = h - 352, (w - 1216) // 2
    np.testing.assert_array_equal(out["depth"], depth[top:, left:left + 1216])
    full = crop_mask((h, w), "kb+garg") & (depth > 1e-3) & (depth < 80)
    assert eval_valid_mask(out, proto).sum() == full.sum()
    assert prepare_sample(s, Protocol(crop="garg")) is s  # mask-only crops leave the sample alone


def test_zero_shot_falls_back_to_synthetic_never_silently(tmp_path, capsys):
    data = yaml.safe_load(load_suite("zero-shot").path and open(load_suite("zero-shot").path).read())
    data["defaults"]["input_size"] = 56  # same suite, CPU-sized
    path = tmp_path / "zero-shot.yaml"
    path.write_text(yaml.safe_dump(data))
    recs = run_suite(path, EvalRequest(limit=1, results_dir=tmp_path / "r", show_progress=False, print_table=True),
                     models=["constant"])
    by = {r["dataset"]: r for r in recs}
    for real in ("kitti", "nyu", "sintel", "ddad", "eth3d", "diode-indoor"):
        assert by[real]["status"] == "skipped" and "not found" in by[real]["skip_reason"]
        assert (tmp_path / "r" / "zero-shot" / "constant" / f"{real}.partial.json").is_file()
    assert sorted(by["synthetic-outdoor"]["fallback_for"]) == ["ddad", "eth3d", "kitti"]
    assert sorted(by["synthetic-indoor"]["fallback_for"]) == ["diode-indoor", "nyu", "sintel"]
    assert by["synthetic-indoor"]["status"] == "ok" and len(recs) == 8
    out = capsys.readouterr().out  # the table (and its notes) go to stdout
    assert "kitti: skipped" in out and "stands in for kitti, ddad, eth3d" in out


def test_input_size_defaults_to_the_models_native_size(tmp_path):
    """A dabench checkpoint records the size it was trained at; suites without an explicit input_size run it
    there (official weights: 518), `--input-size` overrides, and the record holds the size actually used."""
    from dabench.models import create_model, save_checkpoint
    from dabench.models.checkpoint import META_INPUT_SIZE, read_metadata

    m = create_model("da2_test")
    assert m.input_size == 518
    m.input_size = 70
    ck = save_checkpoint(m, tmp_path / "tiny70.safetensors", arch="da2_test")
    assert read_metadata(ck)[META_INPUT_SIZE] == "70"
    assert create_model("da2_test", checkpoint=ck).input_size == 70

    kw = dict(checkpoint=ck, datasets=["synthetic-indoor"], limit=1, show_progress=False, use_cache=False)
    (rec,) = run_suite("synthetic", EvalRequest(results_dir=tmp_path / "a", **kw), models=["da2_test"])
    assert rec["protocol"]["input_size"] == 70
    (rec,) = run_suite("synthetic", EvalRequest(results_dir=tmp_path / "b", input_size=98, **kw), models=["da2_test"])
    assert rec["protocol"]["input_size"] == 98
    (rec,) = run_suite("synthetic", EvalRequest(datasets=["synthetic-indoor"], limit=1, show_progress=False,
                       use_cache=False, results_dir=tmp_path / "c"), models=["horizon_prior"])
    assert rec["protocol"]["input_size"] == 518
