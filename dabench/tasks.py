"""The task registry and the evaluation request: what a suite's ``task:`` names, the one function
that runs it, the typed request it receives and which of its fields it honours.

Every task runner has one signature::

    def run_task(suite: Suite, runs: list[ModelRun], request: EvalRequest, ctx: RunContext) -> list[Record]

and returns the records it wrote (one per model × dataset). ``request`` is the user's
:class:`EvalRequest` exactly as built (frozen); ``ctx`` what ``run_suite`` resolved
for the run (data root, results folder, device, run id, consoles). ``dabench.eval.runner.run_suite``
resolves the suite and the models, refuses request fields the task does not honour, then dispatches
through ``TASKS`` — it never imports the code of a task itself, so ``dabench.eval`` does not depend on
``dabench.finetune``. Targets are lazy ``"module:attr"`` strings: listing tasks imports neither torch
nor mmseg.

Adding a task is one ``TASKS.register(name, "package.module:run_fn", metric_task=..., honours=...)``;
``metric_task`` names the metric family its suites may list (``dabench ls metrics --task``),
``honours`` the ``EvalRequest`` fields it applies (default: ``ALWAYS``).

The evaluation request
----------------------

``dabench run`` builds one :class:`EvalRequest` from its flags; the Python API builds it directly::

    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    records = run_suite("synthetic", EvalRequest(limit=4, random_init=True), models=["da2_test"])

``run_suite`` resolves what the request leaves open (the data root from ``$DABENCH_DATA``, the
results folder, ``device="auto"``, the dataset subset, the run id) once, into a :class:`RunContext`,
and hands the task (``TASKS``) the request unchanged together with that context.

Each field carries its meaning, the ``dabench run`` flag that sets it and, where a depth record
states it, its key in the record's ``config`` block (``record_config``). Each task declares which
fields it honours (``honours=`` at its registration below); a field a task does not honour, set to
anything but its default (or its ``inert`` value: asking for no cache, no progress bar, no
bootstrap), is refused before any work with one ``ConfigError`` naming the flags.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from dabench.errors import ConfigError
from dabench.registry import Registry

# ---------------------------------------------------------------------------------------------
# The evaluation request
# ---------------------------------------------------------------------------------------------
_UNSET = object()


def _opt(default: Any, flag: str, doc: str, *, record: str | None = None, inert: Any = _UNSET):
    meta = {"flag": flag, "doc": doc, "record": record}
    if inert is not _UNSET:
        meta["inert"] = inert
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class EvalRequest:
    """What the user asked one suite run for (see the module docstring). Frozen: tasks read it,
    never change it. Plain values are normalised on construction (a comma-separated ``datasets``
    string becomes a tuple, folders become ``Path``, ``model_options`` a read-only mapping or None)."""

    # --- what is scored (declared in the order a depth record's config lists them)
    data_root: Path | None = _opt(None, "--data-root", "datasets root (None: $DABENCH_DATA)", record="data_root")
    datasets: tuple[str, ...] | None = _opt(None, "--datasets", "subset of the suite's datasets (None: all)",
                                            record="datasets")
    limit: int | None = _opt(None, "--limit", "first N samples of each dataset (a partial record)", record="limit")
    batch_size: int | str = _opt(4, "--batch-size", "images per forward pass, or \"auto\": the largest that fits the "
                                 "device for each dataset's input size (depth suites; other tasks take 4)",
                                 record="batch_size")
    device: str = _opt("cpu", "--device", "auto | cpu | cuda | cuda:N", record="device")
    amp_dtype: str | None = _opt(None, "--precision", "autocast dtype: None (fp32) | bf16 | fp16", record="amp_dtype")
    flip_tta: bool | None = _opt(None, "--flip-tta/--no-flip-tta", "override the suite's flip TTA (None: keep)",
                                 record="flip_tta_override")
    use_cache: bool = _opt(True, "--no-cache", "read and write the prediction cache", record="cache", inert=False)
    skip_missing: bool = _opt(False, "--skip-missing", "skip (and count) split entries whose files are missing",
                              record="skip_missing")
    input_size: int | None = _opt(None, "--input-size", "shorter side fed to the network (None: suite / model "
                                  "default)", record="input_size_override")
    allow_fallback: bool = _opt(False, "--allow-fallback", "with a data root given, score a missing dataset's "
                                "synthetic stand-in", record="allow_fallback")
    bootstrap: int = _opt(1000, "--bootstrap", "bootstrap resamples of the per-image 95 % CIs (0: none)",
                          record="bootstrap", inert=0)
    log_samples: bool | str = _opt(False, "--log-samples", "keep every sample's prediction as .npz: True, float16 "
                                   "arrays to look at; \"pred\", float32 raw predictions for dabench rescore",
                                   record="log_samples")
    results_dir: Path | None = _opt(None, "--results", "results folder (None: $DABENCH_HOME/results)")
    seed: int = _opt(0, "--seed", "seed of random weights, synthetic data and the bootstrap")
    num_workers: int | None = _opt(None, "--workers", "DataLoader worker processes that read and crop samples "
                                   "(None: from the usable cores and local ranks, as training; 0: in this process)")
    # --- which models (``dabench.models.resolve.resolve_models``; the models themselves are run_suite's)
    checkpoint: str | None = _opt(None, "--checkpoint", "weights of the one dabench network among the models")
    random_init: bool = _opt(False, "--random-init", "random weights: tests the pipeline, numbers are meaningless")
    model_options: Mapping[str, Any] | None = _opt(None, "--model-option",
                                                   "KEY=VALUE options of hf:, diffusers: and plug-in models")
    name: str | None = _opt(None, "--name", "label of a single model's records")
    # --- presentation
    show_progress: bool = _opt(True, "(Python API)", "progress bars on the console", inert=False)
    print_table: bool = _opt(False, "(Python API)", "print the suite table at the end")

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if isinstance(self.datasets, str):
            put("datasets", tuple(d for d in self.datasets.split(",") if d) or None)
        elif self.datasets is not None:
            put("datasets", tuple(self.datasets) or None)
        for name in ("data_root", "results_dir"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Path):
                put(name, Path(v))
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            put("checkpoint", os.fspath(self.checkpoint))
        put("model_options", MappingProxyType(dict(self.model_options)) if self.model_options else None)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        put("batch_size", parse_batch_size(self.batch_size))
        if self.bootstrap < 0:
            raise ConfigError(f"--bootstrap must be >= 0 resamples, got {self.bootstrap}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.num_workers}")

    def unhonoured(self, honours: frozenset[str]) -> list[str]:
        """The flags of the fields set here (to neither their default nor their inert value) that a
        task honouring only ``honours`` would ignore."""
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in honours or v == f.default or ("inert" in f.metadata and v == f.metadata["inert"]):
                continue
            out.append(f.metadata["flag"] if f.metadata["flag"].startswith("-") else f.name)
        return out


def parse_batch_size(value) -> int | str:
    """``--batch-size``: a positive number or ``auto`` (``dabench.eval.batching``); ConfigError otherwise."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--batch-size must be a positive number or auto, got {value!r}") from None
    if n < 1 or (not isinstance(value, str) and n != value):
        raise ConfigError(f"--batch-size must be >= 1, got {value}")
    return n


#: every field of the request
ALL_FIELDS = frozenset(f.name for f in fields(EvalRequest))
#: what ``run_suite`` itself applies for every task (dataset subset, models, folders, the table)
#: plus what every built-in task reads; a task registered without ``honours`` honours these only
ALWAYS = frozenset({"data_root", "datasets", "results_dir", "limit", "device", "seed", "checkpoint",
                    "random_init", "model_options", "name", "print_table"})


def check_honoured(request: EvalRequest, task: str, honours: frozenset[str]) -> None:
    """Refuse (``ConfigError``, exit 2) a request that sets fields a ``task`` suite would ignore."""
    bad = request.unhonoured(honours)
    if bad:
        raise ConfigError(f"the {task} task does not apply {', '.join(bad)}; leave "
                          f"{'it' if len(bad) == 1 else 'them'} out")


@dataclass(frozen=True)
class RunContext:
    """What ``run_suite`` resolved once for one run (facts, not choices: those stay in the request).

    ``datasets``: the selected datasets in suite order; ``root``: the data root (or None);
    ``results_dir``: the results folder; ``device``: a concrete device (``auto`` resolved; under
    torch.distributed each rank's own); ``run_id``: the run's id (records under ``runs/<run_id>/``);
    ``console``: messages and progress (stderr); ``table_console``: the table (stdout unless given);
    ``world_size``: processes scoring the run."""

    datasets: tuple[str, ...]
    root: Path | None
    results_dir: Path
    device: str
    run_id: str
    console: Any = None
    table_console: Any = None
    world_size: int = 1


def record_config(suite, request: EvalRequest, ctx: RunContext, honours: frozenset[str], **extra: Any) -> dict:
    """A record's ``config`` block, derived from the request: ``suite``, ``suite_path`` and, for each
    honoured field with a record key, its value (data root, datasets and device as resolved),
    then ``extra`` (task facts such as ``world_size``)."""
    resolved = {"data_root": str(ctx.root) if ctx.root else None, "datasets": list(ctx.datasets),
                "device": str(ctx.device)}
    out: dict[str, Any] = {"suite": suite.name, "suite_path": suite.path}
    for f in fields(request):
        key = f.metadata.get("record")
        if key and f.name in honours:
            out[key] = resolved.get(f.name, getattr(request, f.name))
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------------------
# The task registry
# ---------------------------------------------------------------------------------------------
# the DA-2K task reads no prediction cache, runs no DataLoader workers, computes no bootstrap CIs
# and keeps no per-sample arrays or progress bar
ORDINAL_HONOURS = ALWAYS | {"batch_size", "amp_dtype", "flip_tta", "skip_missing", "input_size", "allow_fallback"}
# the geometry and boundary tasks: the same (no cache, workers, bootstrap CIs or per-sample arrays)
GEOMETRY_HONOURS = ORDINAL_HONOURS
# mmseg's test loop: its own loader (no workers), fp32, slide windows instead of an input size, no
# missing-file or synthetic fallback handling, no bootstrap or per-sample arrays
SEGMENTATION_HONOURS = ALWAYS | {"batch_size", "flip_tta"}

TASKS = Registry("task")
TASKS.register("relative", "dabench.eval.runner:run_depth_task", metric_task="depth", honours=ALL_FIELDS,
               description="affine-invariant depth: each prediction aligned to the ground truth before scoring")
TASKS.register("metric", "dabench.eval.runner:run_depth_task", metric_task="depth", honours=ALL_FIELDS,
               description="metric depth in metres, scored without alignment")
TASKS.register("metric_da2", "dabench.eval.runner:run_depth_task", metric_task="depth_da2", honours=ALL_FIELDS,
               description="metric depth scored as Depth-Anything-V2 metric_depth does (inclusive range, no clamp, "
                           "no crop), reported as da2_* metrics")
TASKS.register("ordinal", "dabench.eval.ordinal:run_ordinal_task", metric_task="ordinal", honours=ORDINAL_HONOURS,
               description="pairwise relative depth on annotated point pairs (DA-2K), no alignment")
TASKS.register("geometry", "dabench.eval.geometry:run_geometry_task", metric_task="geometry",
               honours=GEOMETRY_HONOURS,
               description="MoGe's invariance ladder: depth, disparity, point maps, local points, field of view and "
                           "boundary F1 at every level the model's outputs admit")
TASKS.register("boundary", "dabench.eval.geometry:run_geometry_task", metric_task="boundary",
               honours=GEOMETRY_HONOURS,
               description="Depth Pro's scale-invariant boundary F1 (dense depth) and recall (object masks)")
TASKS.register("segmentation", "dabench.finetune.seg.suite:run_seg_task", metric_task="segmentation",
               honours=SEGMENTATION_HONOURS, description="semantic segmentation with a fine-tuned head (mmseg)")


def task_honours(task: str) -> frozenset[str]:
    """The ``EvalRequest`` fields a ``task`` suite applies (``ALWAYS`` when its registration names none)."""
    return frozenset(TASKS.meta(task).get("honours") or ALWAYS)


METRIC_DEPTH_TASKS = ("metric", "metric_da2")  # tasks that score metres: they need a metric-depth model


def metric_task(task: str) -> str:
    """The metric family (``depth`` / ``segmentation``) a suite of ``task`` reports."""
    return TASKS.meta(task)["metric_task"]
