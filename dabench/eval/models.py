"""The model side of a depth suite run: which checkpoints a depth suite cannot score (segmentation
heads; relative models in a metric suite), and the facts its records carry about a built model."""
from __future__ import annotations

from dataclasses import dataclass

from dabench.eval.suites import Suite
from dabench.models.resolve import ModelRun
from dabench.tasks import METRIC_DEPTH_TASKS


def is_seg_checkpoint(path) -> bool:
    """A `dabench finetune seg` checkpoint (metadata dabench.head = seg_*): not a depth model."""
    from dabench.models import checkpoint as ckpt

    try:
        return str(ckpt.read_metadata(path).get(ckpt.META_HEAD, "")).startswith("seg_")
    except Exception:  # unreadable files fail later with their own clear error
        return False


def metric_mismatch(suite: Suite, run: ModelRun, model_fields: dict) -> str | None:
    """Why a metric-depth suite cannot score this model (it does not output metres), else None."""
    space = model_fields["output_space"]
    if suite.task in METRIC_DEPTH_TASKS and not (space == "depth" and model_fields["is_metric"]):
        kind = "relative disparity" if space == "disparity" else "affine-invariant (not metric) depth"
        return (f"model {run.label!r} outputs {kind}; the {suite.name} suite (task metric) scores "
                "metric depth in metres. Fine-tune a metric head first (dabench finetune metric)")
    return None


@dataclass
class ModelFacts:
    """What every record of a built model carries: parameter count, checkpoint hash, and the
    prediction cache's fingerprint of its weights."""

    n_params: int
    checkpoint_sha256: str | None
    fingerprint: str


def model_facts(run: ModelRun, model, model_fields: dict) -> ModelFacts:
    """The facts of ``model`` (built from ``run``); a local checkpoint without a revision gets
    ``model_revision = "sha256:<file hash>"`` in ``model_fields``."""
    from dabench.eval.cache import model_fingerprint
    from dabench.provenance import sha256_file

    n_params = int(sum(p.numel() for p in model.parameters()))
    ck_sha = sha256_file(run.checkpoint) if run.checkpoint else None
    if ck_sha and not model_fields["model_revision"]:
        model_fields["model_revision"] = f"sha256:{ck_sha}"
    return ModelFacts(n_params, ck_sha, model_fingerprint(model, run.arch or run.label, run.checkpoint))
