"""The task registry (dabench.tasks): suites dispatch through it, with one signature; layers stay one-way."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

import dabench
from dabench.errors import ConfigError
from dabench.eval.runner import run_suite
from dabench.tasks import ALWAYS, TASKS, EvalRequest, RunContext, task_honours

PKG = Path(dabench.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_builtin_tasks_are_lazy_module_attr_targets():
    assert {"relative", "metric", "segmentation"} <= set(TASKS.names())
    # metadata is readable without importing the (mmseg-heavy) target
    assert TASKS.meta("segmentation")["metric_task"] == "segmentation"
    assert TASKS.meta("relative")["metric_task"] == TASKS.meta("metric")["metric_task"] == "depth"
    assert TASKS.get("relative").__name__ == "run_depth_task"


def test_eval_never_imports_finetune_or_train():
    bad = []
    for sub in ("eval", "models", "metrics", "data"):
        for f in sorted((PKG / sub).rglob("*.py")):
            for mod in _imports(f):
                if mod.startswith(("dabench.finetune", "dabench.train")):
                    bad.append(f"{f.relative_to(PKG)} imports {mod}")
    assert not bad, bad


def test_a_registered_task_receives_suite_runs_and_request(tmp_path):
    calls = []

    def fake_task(suite, runs, request, ctx):
        calls.append((suite.name, [r.label for r in runs], request, ctx))
        return [{"model": r.label, "dataset": d} for r in runs for d in ctx.datasets]

    TASKS.register("fake-task", fake_task, metric_task="depth", honours=ALWAYS | {"input_size", "skip_missing"})
    request = EvalRequest(datasets="synthetic-outdoor", limit=2, device="cpu", results_dir=tmp_path, seed=3,
                          input_size=98, skip_missing=True)
    try:
        path = tmp_path / "fake-suite.yaml"
        path.write_text(yaml.safe_dump({"task": "fake-task", "datasets": ["synthetic-indoor", "synthetic-outdoor"]}))
        recs = run_suite(path, request, models=["constant"])
        with pytest.raises(ConfigError, match=r"fake-task task does not apply --log-samples, --workers; leave them"):
            run_suite(path, EvalRequest(results_dir=tmp_path, log_samples=True, num_workers=2), models=["constant"])
    finally:
        TASKS.unregister("fake-task")
    assert recs == [{"model": "constant", "dataset": "synthetic-outdoor"}]
    (name, labels, req, ctx), = calls
    assert name == "fake-suite" and labels == ["constant"] and req is request  # the request, unchanged
    assert (req.limit, req.seed, req.input_size, req.skip_missing, req.results_dir) == (2, 3, 98, True, tmp_path)
    assert isinstance(ctx, RunContext) and ctx.datasets == ("synthetic-outdoor",) and ctx.device == "cpu"
    assert ctx.results_dir == tmp_path and ctx.run_id
    assert "fake-task" not in TASKS
    with pytest.raises(ConfigError, match="task must be one of"):  # gone from the registry: no longer a valid task
        run_suite(path, EvalRequest(results_dir=tmp_path), models=["constant"])


def test_segmentation_suite_goes_to_the_seg_task(tmp_path, monkeypatch):
    import dabench.finetune.seg.suite as seg_suite

    seen = []

    def fake_run_seg_suite(suite, model_name, **kw):
        seen.append((suite.name, model_name, kw["checkpoint"], kw["limit"], kw["datasets"], kw["print_table"]))
        return [{"model": model_name}]

    monkeypatch.setattr(seg_suite, "run_seg_suite", fake_run_seg_suite)
    seg = tmp_path / "seg-x.yaml"
    seg.write_text(yaml.safe_dump({"task": "segmentation", "datasets": ["cityscapes"], "metrics": ["miou"]}))
    # device "auto": mmengine's test loop places the model itself (CUDA when there is one)
    recs = run_suite(seg, EvalRequest(limit=2, device="auto", results_dir=tmp_path), models=["constant"])
    assert recs == [{"model": "constant"}]
    assert seen == [("seg-x", "constant", None, 2, ["cityscapes"], False)]


@pytest.mark.parametrize("field, value, flag", [
    ("log_samples", True, "--log-samples"), ("bootstrap", 200, "--bootstrap"), ("skip_missing", True, "--skip-missing"),
    ("input_size", 98, "--input-size"), ("allow_fallback", True, "--allow-fallback"), ("num_workers", 2, "--workers"),
    ("amp_dtype", "bf16", "--precision")])
def test_segmentation_suite_refuses_what_it_does_not_apply(tmp_path, monkeypatch, field, value, flag):
    import dabench.finetune.seg.suite as seg_suite

    monkeypatch.setattr(seg_suite, "run_seg_suite", lambda *a, **k: pytest.fail("ran despite an unapplied flag"))
    seg = tmp_path / "seg-x.yaml"
    seg.write_text(yaml.safe_dump({"task": "segmentation", "datasets": ["cityscapes"], "metrics": ["miou"]}))
    request = EvalRequest(device="auto", results_dir=tmp_path, **{field: value})
    with pytest.raises(ConfigError, match=f"segmentation task does not apply {flag}; leave it out"):
        run_suite(seg, request, models=["constant"])
    # what asks nothing of the task (no cache, no bootstrap, no progress bar) and the defaults pass
    assert not EvalRequest(use_cache=False, bootstrap=0, show_progress=False).unhonoured(task_honours("segmentation"))


def test_cli_refuses_a_flag_the_suite_does_not_apply(tmp_path):
    from typer.testing import CliRunner

    from dabench.cli import app

    res = CliRunner().invoke(app, ["run", "--suite", "seg-synthetic", "--log-samples", "--bootstrap", "10",
                                   "--results", str(tmp_path)], env={"COLUMNS": "300"})
    assert res.exit_code == 2, res.output
    out = res.output.replace("\n", "").replace("│", "")
    assert "segmentation task does not apply --bootstrap, --log-samples; leave them out" in " ".join(out.split())
    res = CliRunner().invoke(app, ["run", "--suite", "da2k", "--log-samples", "--results", str(tmp_path)],
                             env={"COLUMNS": "300"})
    out = " ".join(res.output.replace("│", "").split())
    assert res.exit_code == 2 and "ordinal task does not apply --log-samples; leave it out" in out


def test_honours_name_request_fields_and_the_depth_config_is_derived_from_the_request(tmp_path):
    from dataclasses import fields

    from dabench.tasks import ALL_FIELDS, record_config
    from dabench.eval.suites import load_suite

    for task in TASKS.names():
        assert task_honours(task) <= ALL_FIELDS, task
    assert task_honours("relative") == ALL_FIELDS
    assert {"log_samples", "bootstrap", "num_workers"}.isdisjoint(task_honours("ordinal"))
    assert all(f.metadata["flag"] for f in fields(EvalRequest))
    req = EvalRequest(data_root=tmp_path, datasets="a,b", limit=3, flip_tta=True, input_size=70, use_cache=False)
    assert req.datasets == ("a", "b") and req.data_root == tmp_path
    ctx = RunContext(datasets=("synthetic-indoor",), root=tmp_path, results_dir=tmp_path, device="cpu", run_id="x")
    suite = load_suite("synthetic")
    cfg = record_config(suite, req, ctx, task_honours("relative"), world_size=1)
    assert cfg == {"suite": "synthetic", "suite_path": suite.path, "data_root": str(tmp_path),
                   "datasets": ["synthetic-indoor"], "limit": 3, "batch_size": 4, "device": "cpu", "amp_dtype": None,
                   "flip_tta_override": True, "world_size": 1, "cache": False, "skip_missing": False,
                   "input_size_override": 70, "allow_fallback": False, "bootstrap": 1000, "log_samples": False}
    ordinal = record_config(load_suite("da2k"), req, ctx, task_honours("ordinal"))
    assert set(cfg) - set(ordinal) == {"world_size", "cache", "bootstrap", "log_samples"}
    with pytest.raises(ConfigError, match="--limit must be >= 1"):
        EvalRequest(limit=0)
    with pytest.raises(Exception):  # frozen: a task cannot change what the user asked for
        req.limit = 5
