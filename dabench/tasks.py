"""The task registry: what a suite's ``task:`` names, and the one function that runs it.

Every task runner has one signature::

    def run_task(suite: Suite, runs: list[ModelRun], request: TaskRequest) -> list[dict]

and returns the records it wrote (one per model × dataset). ``dabench.eval.runner.run_suite``
resolves the suite and the models, then dispatches through ``TASKS`` — it never imports the
code of a task itself, so ``dabench.eval`` does not depend on ``dabench.finetune``.
Targets are lazy ``"module:attr"`` strings: listing tasks imports neither torch nor mmseg.

Adding a task is one ``TASKS.register(name, "package.module:run_fn", metric_task=...)``;
``metric_task`` names the metric family its suites may list (``dabench ls metrics --task``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dabench.registry import Registry

TASKS = Registry("task")
TASKS.register("relative", "dabench.eval.runner:run_depth_task", metric_task="depth",
               description="affine-invariant depth: each prediction aligned to the ground truth before scoring")
TASKS.register("metric", "dabench.eval.runner:run_depth_task", metric_task="depth",
               description="metric depth in metres, scored without alignment")
TASKS.register("metric_da2", "dabench.eval.runner:run_depth_task", metric_task="depth_da2",
               description="metric depth scored as Depth-Anything-V2 metric_depth does (inclusive range, no clamp, "
                           "no crop), reported as da2_* metrics")
TASKS.register("ordinal", "dabench.eval.ordinal:run_ordinal_task", metric_task="ordinal",
               description="pairwise relative depth on annotated point pairs (DA-2K), no alignment")
TASKS.register("geometry", "dabench.eval.geometry:run_geometry_task", metric_task="geometry",
               description="MoGe's invariance ladder: depth, disparity, point maps, local points, field of view and "
                           "boundary F1 at every level the model's outputs admit")
TASKS.register("boundary", "dabench.eval.geometry:run_geometry_task", metric_task="boundary",
               description="Depth Pro's scale-invariant boundary F1 (dense depth) and recall (object masks)")
TASKS.register("segmentation", "dabench.finetune.seg.suite:run_seg_task", metric_task="segmentation",
               description="semantic segmentation with a fine-tuned head (mmseg)")


@dataclass
class TaskRequest:
    """What the user asked ``run_suite`` for, shared by every task (each uses what applies to it).

    ``datasets`` is the resolved subset of the suite's datasets (suite order); ``root`` the resolved
    data root (or None); ``limit`` the first N samples per dataset; ``input_size`` the shorter side
    in pixels fed to the network (None: suite / model default). Tasks write their records with
    ``run_id`` (``dabench.results.record.make_record``) and honour ``allow_fallback``.
    """

    datasets: list[str]
    root: Path | None = None
    results_dir: Path | None = None
    limit: int | None = None
    batch_size: int = 4
    device: str = "cpu"
    flip_tta: bool | None = None
    seed: int = 0
    amp_dtype: str | None = None
    use_cache: bool = True
    num_workers: int = 0
    show_progress: bool = True
    print_table: bool = False
    console: Any = None
    skip_missing: bool = False
    input_size: int | None = None
    allow_fallback: bool = False  # with a data root given, score a missing set's synthetic stand-in
    bootstrap: int = 1000  # resamples of the per-image 95 % CIs (0: none)
    log_samples: bool = False  # keep per-sample predictions (.npz) under runs/<run_id>/samples/
    run_id: str | None = None  # the run's id; records are kept under runs/<run_id>/
    table_console: Any = None  # where the table goes (None: stdout)


METRIC_DEPTH_TASKS = ("metric", "metric_da2")  # tasks that score metres: they need a metric-depth model


def metric_task(task: str) -> str:
    """The metric family (``depth`` / ``segmentation``) a suite of ``task`` reports."""
    return TASKS.meta(task)["metric_task"]
