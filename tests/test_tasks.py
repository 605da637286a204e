"""The task registry (dabench.tasks): suites dispatch through it, with one signature; layers stay one-way."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

import dabench
from dabench.errors import ConfigError
from dabench.eval.runner import run_suite
from dabench.tasks import TASKS, TaskRequest

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

    def fake_task(suite, runs, request):
        calls.append((suite.name, [r.label for r in runs], request))
        return [{"model": r.label, "dataset": d} for r in runs for d in request.datasets]

    TASKS.register("fake-task", fake_task, metric_task="depth")
    try:
        path = tmp_path / "fake-suite.yaml"
        path.write_text(yaml.safe_dump({"task": "fake-task", "datasets": ["synthetic-indoor", "synthetic-outdoor"]}))
        recs = run_suite(path, models=["constant"], datasets="synthetic-outdoor", limit=2, device="cpu",
                         results_dir=tmp_path, seed=3, input_size=98, skip_missing=True)
    finally:
        TASKS.unregister("fake-task")
    assert recs == [{"model": "constant", "dataset": "synthetic-outdoor"}]
    (name, labels, req), = calls
    assert name == "fake-suite" and labels == ["constant"] and isinstance(req, TaskRequest)
    assert (req.limit, req.seed, req.input_size, req.skip_missing, req.results_dir) == (2, 3, 98, True, tmp_path)
    assert "fake-task" not in TASKS
    with pytest.raises(ConfigError, match="task must be one of"):  # gone from the registry: no longer a valid task
        run_suite(path, models=["constant"], results_dir=tmp_path)


def test_segmentation_suite_goes_to_the_seg_task(tmp_path, monkeypatch):
    import dabench.finetune.seg.suite as seg_suite

    seen = []

    def fake_run_seg_suite(suite, model_name, **kw):
        seen.append((suite.name, model_name, kw["checkpoint"], kw["limit"], kw["datasets"], kw["print_table"]))
        return [{"model": model_name}]

    monkeypatch.setattr(seg_suite, "run_seg_suite", fake_run_seg_suite)
    seg = tmp_path / "seg-x.yaml"
    seg.write_text(yaml.safe_dump({"task": "segmentation", "datasets": ["cityscapes"], "metrics": ["miou"]}))
    recs = run_suite(seg, models=["constant"], limit=2, device="cpu", results_dir=tmp_path)
    assert recs == [{"model": "constant"}]
    assert seen == [("seg-x", "constant", None, 2, ["cityscapes"], False)]
