"""One model resolver: ``--model`` / ``--checkpoint`` / ``--random-init`` / ``--model-option`` → models.

Used by ``dabench run`` (through ``dabench.eval.runner.run_suite``), ``dabench predict`` and the paper
figures (which rebuild a record's model), so a name means the same thing everywhere:

- a registered name (``dabench ls models``): a dabench network (needs ``checkpoint`` or
  ``random_init``), a weight-free baseline, or a user / plug-in model;
- the stem of a weights file under ``$DABENCH_HOME/checkpoints``;
- ``hf:<folder or hub id>``: a transformers ``AutoModelForDepthEstimation`` checkpoint;
- ``diffusers:<folder or hub id>``: a diffusers Marigold depth pipeline;
- nothing: every local checkpoint plus the baselines (or the one ``checkpoint`` given).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from dabench.errors import ConfigError

#: ``prefix:`` → model source for models that live in another library.
LIBRARY_PREFIXES = {"hf": "hf", "diffusers": "diffusers"}


@dataclass
class ModelRun:
    """One model to evaluate: the record's label, its registered arch, weights and how they were got.

    ``source`` is where the model comes from (``dabench``, ``hf``, ``diffusers``, ``plugin``);
    ``location`` the folder or hub id of an ``hf:``/``diffusers:`` model; ``options`` the
    ``--model-option`` values it is built with.
    """

    label: str
    arch: str | None
    checkpoint: str | None = None
    random_init: bool = False
    baseline: bool = False
    source: str = "dabench"
    location: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    module: Any = None  # a model object handed to run_suite(models=[...]) as it is
    named: bool = False  # the label was chosen with --name (a deliberate replacement of a same-named model)


def parse_model_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["ensemble_size=10", "processing_resolution=768"]`` → ``{"ensemble_size": 10, ...}`` (YAML scalars)."""
    from dabench.safety import load_yaml_text

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--model-option expects KEY=VALUE, got {item!r}")
        try:
            out[key] = load_yaml_text(value, f"--model-option {key}") if value.strip() else ""
        except ConfigError as e:
            if "invalid YAML" not in str(e):  # aliases expanding past the cap: refused, not taken as text
                raise
            out[key] = value
    return out


def local_checkpoints() -> dict[str, Path]:
    """``{stem: path}`` of the weights under ``checkpoints_dir()`` (written by train/finetune or by hand)."""
    from dabench.provenance import checkpoints_dir

    d = checkpoints_dir()
    if not d.is_dir():
        return {}
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.suffix in (".safetensors", ".pth") and not p.name.startswith("."):
            out.setdefault(p.stem, p)
    return out


def local_checkpoint_arch(path: Path, warn=None) -> str | None:
    """How a file found in ``checkpoints_dir()`` is run by ``dabench run`` with no ``--model``:
    ``""`` for a dabench .safetensors (its metadata names the model), the registered name for an
    official ``.pth`` named after it (``da2_vits14.pth``, ``da2_vits14-official.pth``), or None —
    then it is skipped with a warning saying how to name it, and the other models still run."""
    from dabench.models import MODELS, is_baseline
    from dabench.models.checkpoint import META_ARCH, read_metadata

    warn = warn or _warn
    if path.suffix == ".safetensors":
        try:
            meta = read_metadata(path)
        except Exception as e:  # noqa: BLE001 - a damaged file: skip it, say why
            warn(f"skipping {path}: {e}")
            return None
        if meta.get(META_ARCH):
            return ""
        warn(f"skipping {path}: it has no {META_ARCH} metadata, so its architecture is unknown; run it with "
             f"--model NAME --checkpoint {path}")
        return None
    names = [n for n in MODELS.names() if (path.stem == n or path.stem.startswith(n + "-")) and not is_baseline(n)
             and MODELS.meta(n).get("source", "dabench") == "dabench"]
    if names:
        return max(names, key=len)
    warn(f"skipping {path}: a .pth does not say which architecture it holds; name it after its model, e.g. "
         f"da2_vits14.pth or da2_vits14-official.pth (see `dabench ls models`), or run it with --model NAME "
         f"--checkpoint {path}")
    return None


def _warn(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def local_checkpoints_hint() -> str:
    from dabench.provenance import checkpoints_dir

    return str(checkpoints_dir())


def checkpoint_label(path: str | os.PathLike) -> str:
    """Record label of a checkpoint given alone: its stem, or ``<folder>-<stem>`` for the generic
    names training writes (``runs/nyu/final.safetensors`` → ``nyu-final``)."""
    p = Path(path)
    if p.stem in ("final", "best", "last", "latest", "model") and p.parent.name:
        return f"{p.parent.name}-{p.stem}"
    return p.stem


def library_model(name: str) -> tuple[str, str] | None:
    """``("hf", "Intel/dpt-large")`` for ``"hf:Intel/dpt-large"``; None for other names."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix in LIBRARY_PREFIXES:
        if not rest.strip():
            raise ConfigError(f"--model {name!r}: give a folder or hub id after '{prefix}:'")
        return LIBRARY_PREFIXES[prefix], rest.strip()
    return None


def _library_label(source: str, location: str) -> str:
    """``hf:<folder name>`` for a local folder, ``hf:<org/name>`` for a hub id."""
    p = Path(location).expanduser()
    local = p.exists() or location.startswith((".", os.sep, "~"))
    return f"{source}:{(p.name if local else location) or location}"


def resolve_models(models: Sequence[str] | str | None, checkpoint: str | os.PathLike | None = None,
                   random_init: bool = False, options: dict[str, Any] | None = None) -> list[ModelRun]:
    """Turn ``--model``/``--checkpoint``/``--random-init``/``--model-option`` into ``ModelRun``s.

    - no models, no checkpoint: every local checkpoint plus the weight-free baselines;
    - no models, a checkpoint: the dabench checkpoint alone (its metadata names the arch);
    - names (a list, or comma-separated): see the module docstring. ``checkpoint`` and ``random_init``
      apply to the dabench networks (at most one with a checkpoint); ``options`` to the ``hf:``,
      ``diffusers:`` and plug-in models.
    """
    from dabench.models import MODELS, is_baseline

    options = dict(options or {})
    if isinstance(models, str) or (models is not None and not isinstance(models, (list, tuple))):
        models = [models]
    objects = [m for m in (models or []) if not isinstance(m, (str, os.PathLike))]
    models = [m.strip() for item in (models or []) if isinstance(item, (str, os.PathLike))
              for m in str(item).split(",") if m.strip()]
    local = local_checkpoints()
    if not models and objects:
        models = []
    elif not models:
        if options:
            raise ConfigError("--model-option needs a --model it applies to (an hf:, diffusers: or plug-in model)")
        if checkpoint is not None:
            return [ModelRun(checkpoint_label(checkpoint), None, str(checkpoint))]
        if random_init:
            raise ConfigError("--random-init needs --model NAME (which architecture to initialise randomly)")
        baselines = [n for n in MODELS.names() if is_baseline(n)]
        runs = []
        for stem, p in local.items():
            arch = local_checkpoint_arch(p)
            if arch is not None:
                runs.append(ModelRun(stem, arch or None, str(p)))
        return runs + [ModelRun(b, b, baseline=True) for b in baselines]
    runs = []
    for name in models:
        lib = library_model(name)
        if lib is not None:
            source, location = lib
            runs.append(ModelRun(_library_label(source, location), None, source=source, location=location,
                                 options=dict(options)))
        elif name in MODELS:
            meta = MODELS.meta(name)
            if is_baseline(name):
                runs.append(ModelRun(name, name, baseline=True))
            elif meta["source"] != "dabench":  # user / plug-in models bring their own weights
                runs.append(ModelRun(name, name, source=meta["source"], options=dict(options)))
            elif checkpoint is not None:
                runs.append(ModelRun(name, name, str(checkpoint)))
            elif random_init:
                runs.append(ModelRun(name, name, random_init=True))
            else:
                raise ConfigError(
                    f"model {name!r} needs weights (no --checkpoint given for {name}): pass --checkpoint PATH (an official .pth, a dabench "
                    f".safetensors or a transformers Depth Anything folder), put them in {local_checkpoints_hint()}, "
                    "or pass --random-init to run with random weights (numbers are then meaningless; useful only "
                    "to test the pipeline)")
        elif name in local:
            runs.append(ModelRun(name, None, str(local[name])))
        else:
            raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(MODELS.names())}, "
                              "hf:<folder or hub id>, diffusers:<folder or hub id>"
                              + (f"; local checkpoints: {', '.join(local)}" if local else ""))
    for obj in objects:  # model objects (Python API): used as they are
        if not callable(getattr(obj, "forward", None)) and not callable(getattr(obj, "predict", None)):
            raise ConfigError(f"run_suite(models=[...]): {type(obj).__name__} is neither a model name nor a model "
                              "(an object with forward(x) or predict(images))")
        label = getattr(obj, "arch", None) or type(obj).__name__
        runs.append(ModelRun(str(label), getattr(obj, "arch", None), source=getattr(obj, "source", None) or "plugin",
                             module=obj))
    taken = sum(r.checkpoint == str(checkpoint) for r in runs) if checkpoint is not None else 0
    if checkpoint is not None and models and taken == 0:
        raise ConfigError(f"--checkpoint {checkpoint} applies to a dabench network (dabench ls models, source "
                          "dabench); none of the selected models is one")
    if taken > 1:
        raise ConfigError("--checkpoint applies to one dabench network; pass a single such --model with it")
    if options and not any(r.source != "dabench" for r in runs):
        raise ConfigError("--model-option applies to hf:, diffusers: and plug-in models; none was selected")
    labels = [r.label for r in runs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"two selected models share the label {', '.join(dup)}: give them distinct names "
                          "(e.g. different folder names)")
    return runs


def build_model(run: ModelRun, seed: int = 0):
    """Build ``run``'s model in eval mode (random-init weights are a function of ``seed``)."""
    import torch

    from dabench.models import MODELS, apply_contract, create_model, load_model_from_checkpoint

    torch.manual_seed(seed)  # random-init weights are a function of the seed (same on every rank)
    if run.module is not None:
        model = run.module
    elif run.source == "hf":
        from dabench.models.hf import load_hf_model

        model = load_hf_model(run.location, **run.options)
    elif run.source == "diffusers":
        from dabench.models.diffusion import load_marigold

        model = load_marigold(run.location, **run.options)
    elif run.arch is None:
        model = load_model_from_checkpoint(run.checkpoint)
        run.arch = getattr(model, "arch", None)
    elif run.options:
        if MODELS.meta(run.arch)["source"] == "dabench":
            raise ConfigError(f"model {run.arch!r} takes no --model-option (got {', '.join(run.options)})")
        model = apply_contract(MODELS.get(run.arch)(**run.options), run.arch)
    else:
        model = create_model(run.arch, checkpoint=run.checkpoint)
    if run.checkpoint and getattr(model, "checkpoint_path", None):
        run.checkpoint = model.checkpoint_path  # a transformers folder resolves to its model.safetensors
    if not hasattr(model, "source"):
        model.source = run.source
    return model.eval()


def model_provenance(run: ModelRun, model) -> dict[str, Any]:
    """What records say about the model: ``model_source``, ``model_revision`` (hub commit, or the
    weights' sha256), ``model_location``, ``model_options``, ``output_space``, ``is_metric`` and the
    ``data_config`` it was preprocessed with (for models with their own processor or pipeline: the
    settings that processor/pipeline reports, ``model.processor_config``), and ``native_input_size``
    (the size a suite's ``input_size: null`` means for it; None when it sizes its input itself)."""
    from dabench.models.contract import as_data_config, is_metric_of, output_space_of, unwrap

    inner = unwrap(model)
    cfg = as_data_config(getattr(inner, "data_config", None))
    return {"model_source": getattr(inner, "source", None) or run.source,
            "model_revision": getattr(inner, "revision", None),
            "model_location": run.location,
            "model_options": dict(run.options) or None,
            "output_space": output_space_of(inner), "is_metric": is_metric_of(inner),
            "data_config": cfg.as_dict() if cfg is not None else getattr(inner, "processor_config", None),
            "native_input_size": _native_size(inner)}


def _native_size(model) -> int | None:
    from dabench.models.inference import native_input_size

    try:
        return native_input_size(model)
    except ConfigError:  # no data_config: it fails with its own message when it runs
        return None


def run_from_record(record: dict) -> ModelRun:
    """The ``ModelRun`` a results record was produced with (to rebuild its model, e.g. for figures)."""
    source = record.get("model_source") or "dabench"
    config = record.get("config") or {}
    name = record.get("arch") or record.get("model")
    if source in ("hf", "diffusers"):
        location = record.get("model_location")
        if not location:
            raise ConfigError(f"{record.get('model')}: the record names no {source} folder or hub id")
        return ModelRun(str(record.get("model")), None, source=source, location=location,
                        options=dict(record.get("model_options") or {}))
    return ModelRun(str(record.get("model")), str(name) if name else None, record.get("checkpoint"),
                    random_init=bool(record.get("random_init") or config.get("random_init")), source=source,
                    options=dict(record.get("model_options") or {}))
