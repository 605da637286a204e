"""The model side of a depth suite run: which checkpoints a depth suite cannot score (segmentation
heads; relative models in a metric suite), and the facts its records carry about a built model."""
from __future__ import annotations

from dataclasses import dataclass

from dabench.errors import ConfigError
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


def camera_mismatch(model, card: dict, protocol, dataset: str) -> str | None:
    """Why ``model`` cannot be scored on ``dataset`` under ``protocol``: it gives metres only with each
    image's camera K (``needs_intrinsics``: Depth Anything 3's metric model), metres are scored
    (``alignment: none``) and the card gives no intrinsics (no ``intrinsics_source``); else None."""
    from dabench.models.contract import unwrap
    from dabench.models.outputs import needs_intrinsics

    if not needs_intrinsics(model) or protocol.alignment != "none" or card.get("intrinsics_source"):
        return None
    arch = getattr(unwrap(model), "arch", None) or type(unwrap(model)).__name__
    return (f"{arch} gives metric depth only with the camera's focal length (metres = output x f_px / 300) "
            f"and the {dataset} card gives no intrinsics")


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


def start_model(run: ModelRun, seed: int, suite: Suite, results_dir, datasets, console=None):
    """Build ``run``'s model for a task: ``(model, model_fields, facts)``, with the model's revision filled
    in (:func:`model_facts`), a label already used by a different model refused
    (:func:`check_label_clash`) and the random-weights warning printed on ``console``."""
    from dabench.models.resolve import build_model, model_provenance

    model = build_model(run, seed)
    model_fields = model_provenance(run, model)
    facts = model_facts(run, model, model_fields)  # model_revision filled in before the clash check
    check_label_clash(results_dir, suite, run, datasets, model_fields)
    if run.random_init and console is not None:
        console.print(f"[bold red]WARNING: {run.label} runs with RANDOM weights (--random-init): its numbers are "
                      "meaningless and only test the pipeline.[/bold red]")
    return model, model_fields, facts


def check_label_clash(results_dir, suite: Suite, run: ModelRun, datasets, model_fields: dict) -> None:
    """``ConfigError`` before ``run`` is evaluated when the results store already holds a record under
    the same label (suite, dataset) from a *different* ``hf:``/``diffusers:``/plug-in model: two
    checkpoints in folders both named ``model`` are both ``hf:model``, and the second run would
    silently replace the first. Models are told apart by ``model_revision`` (hub commit or weights
    sha256) and, for local folders, where they were read. ``--name`` (``run.named``) is the way to
    label such a model; with it the label is the user's choice and nothing is refused."""
    from pathlib import Path

    from dabench.results.store import record_path

    if run.named or run.source in (None, "dabench") or run.baseline:
        return
    new_rev, new_loc = model_fields.get("model_revision"), _where(run.location)
    for ds in datasets:
        for partial in (False, True):
            p = record_path(results_dir, suite.name, run.label, ds, partial=partial)
            if not p.is_file():
                continue
            try:
                import json

                from dabench.results.store import MAX_RECORD_BYTES
                from dabench.safety import read_text_bounded

                old = json.loads(read_text_bounded(p, "result record", MAX_RECORD_BYTES))
            except Exception:  # noqa: BLE001 - an unreadable record is reported by the store itself
                continue
            if not isinstance(old, dict):
                continue
            old_rev = old.get("model_revision")
            old_loc = _where((old.get("config") or {}).get("model_location") or old.get("model_location"))
            differs = (old_rev and new_rev and old_rev != new_rev) or (old_loc and new_loc and old_loc != new_loc)
            if differs:
                from dabench.errors import excerpt

                raise ConfigError(
                    f"--results {results_dir} already holds {run.label!r} on {ds} from another model "
                    f"({excerpt(old_loc, 120)}, revision {excerpt(old_rev, 30)}); this one is {excerpt(new_loc, 120)} "
                    f"(revision {excerpt(new_rev, 30)}) and would replace it under the same label. Pass --name to "
                    f"label it (e.g. --name {Path(str(run.location)).parent.name or 'model'}-{run.label.split(':')[-1]})")


def _where(location) -> str | None:
    """A local folder's resolved path (so ``./m`` and ``/abs/m`` agree), or the hub id as given."""
    import os

    if not location:
        return None
    p = os.path.expanduser(str(location))
    return os.path.realpath(p) if os.path.exists(p) else str(location)
