"""Suites declared as data: ``dabench/configs/suites/<name>.yaml`` (plus ``$DABENCH_CONFIG_PATH`` folders).

A suite names a task, the datasets it runs (each optionally overriding its dataset card's
evaluation defaults) and the metrics it reports. Schema (every key is checked; an unknown key,
wrong type or unknown name is a ``ConfigError`` naming the file)::

    name: zero-shot                    # defaults to the file stem
    task: relative                     # relative | metric | segmentation
    description: "..."
    source: "paper / repo reference for the protocol"
    defaults: {alignment: ..., ...}    # optional: protocol keys applied to every dataset entry
    datasets:
      - nyu                            # a bare name uses the card's defaults
      - {dataset: kitti, alignment: scale_shift_disparity, score_space: disparity, depth_cap: 80,
         crop: garg, min_depth: 0.001, max_depth: 80, input_size: 518, flip_tta: false, split: test,
         pred_floor: null, alignment_max_res: null, source: "repo file:line of this protocol"}
    metrics: [abs_rel, delta1, ...]    # reported/table order; every metric of the task is recorded
    primary_metrics: [abs_rel, delta1] # the headline columns (a subset of metrics)

Protocol precedence (lowest first): task defaults < dataset card ``eval`` block < suite
``defaults`` < suite dataset entry < explicit overrides (``--flip-tta``).
"""
from __future__ import annotations

import os
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dabench.data.crops import CROPS
from dabench.errors import ConfigError, MissingFileError, excerpt
from dabench.eval.align import ALIGNMENT_MODES
from dabench.metrics.registry import METRICS, list_metrics
from dabench import configs
from dabench.tasks import TASKS, metric_task

SCORE_SPACES = ("disparity", "depth")
SUITE_KEYS = {"name": str, "task": str, "description": str, "source": str, "defaults": dict, "datasets": list,
              "metrics": list, "primary_metrics": list}


def suites_dir() -> Path:
    """The shipped suites folder (``dabench/configs/suites``)."""
    return configs.shipped_dir("suites")


def list_suites() -> list[str]:
    """Suite names, shipped and from ``$DABENCH_CONFIG_PATH``."""
    return configs.names("suites")


def default_pred_floor(min_depth: float, task: str) -> float:
    task = "metric" if task in ("metric", "metric_da2") else task
    """The prediction floor a protocol gets when it names none: ``min_depth`` in metric suites
    (ZoeDepth clamps at ``min_depth_eval``, 0 for iBims and SUN RGB-D: zoedepth/utils/misc.py:217 and
    zoedepth/utils/config.py:126,137), and in relative suites ``min_depth``, or 1e-3 m when a card
    sets 0 (dabench's floor, so an affine fit that reaches 0 stays scoreable)."""
    if task == "metric" or min_depth > 0:
        return float(min_depth)
    return 1e-3


def _key(default: Any, doc: str, **task_defaults: Any):
    """A protocol key: its default, one-line meaning and the tasks whose default differs."""
    return field(default=default, metadata={"doc": doc, "task_defaults": task_defaults})


@dataclass
class Protocol:
    """The resolved evaluation protocol of one dataset (recorded verbatim in each result).

    The one protocol schema: the keys a suite or card may set, their types (the annotations) and
    meanings (``metadata["doc"]``) and each task's defaults (``metadata["task_defaults"]``) are read
    from these fields (``PROTOCOL_KEYS``, ``task_defaults``). ``metric_family`` is not a key: it
    follows the suite's task."""

    split: str | None = _key(None, "dataset split to evaluate (card default, usually test)")
    alignment: str = _key("scale_shift_disparity", f"one of {', '.join(ALIGNMENT_MODES)}",
                          metric="none", metric_da2="none", ordinal="none", geometry="none", boundary="none")
    score_space: str = _key("disparity", "disparity (DA authors) or depth (MiDaS: invert with depth_cap)",
                            metric="depth", metric_da2="depth")
    depth_cap: float | None = _key(None, "metres; disparity is clamped at 1/depth_cap before inverting "
                                         "(default max_depth)")
    crop: str = _key("none", f"evaluation crop, one of {', '.join(CROPS)} (see dabench.data.crops)")
    min_depth: float = _key(1e-3, "metres; ground truth outside (min_depth, max_depth) is not scored")
    max_depth: float = _key(80.0, "metres; predictions (in depth) are clamped to [pred_floor, max_depth]")
    input_size: int | None = _key(None, "target side before the network, in pixels (the model's data_config "
                                        "applies its resize rule and rounds to its multiple); null = the model's "
                                        "native size (518 for the official weights, the training size for "
                                        "dabench checkpoints)")
    flip_tta: bool = _key(False, "average the prediction with the flipped image's")
    pred_floor: float | None = _key(None, "metres; the lower clamp of predicted depth. null: min_depth in metric "
                                          "suites (ZoeDepth compute_metrics), min_depth or 1e-3 when that is 0 in "
                                          "relative suites (recorded as resolved)")
    alignment_max_res: int | None = _key(None, "pixels; fit the alignment on Marigold's subsample of at most this "
                                               "many columns/rows (src/util/alignment.py); null = full resolution")
    # Depth-Anything-V2 metric_depth/train.py:162-173: valid = min <= gt <= max, no clamp, no crop, skip < 10
    range_inclusive: bool = _key(False, "ground truth valid on [min_depth, max_depth] (Depth-Anything-V2 "
                                        "metric_depth) instead of the open interval (ZoeDepth, Marigold)",
                                 metric_da2=True)
    clamp_pred: bool = _key(True, "clamp predicted depth to [pred_floor, max_depth] before scoring (false: "
                                  "Depth-Anything-V2 metric_depth, metric-depth models only)", metric_da2=False)
    min_valid_pixels: int = _key(1, "an image with fewer valid pixels is skipped and counted (Depth-Anything-V2 "
                                    "metric_depth skips < 10)", metric_da2=10)
    metric_family: str = field(default="depth", metadata={"key": False})  # from the task: depth / depth_da2

    def floor(self) -> float:
        """The lower clamp of predicted depth, metres (``pred_floor`` or its default)."""
        return float(self.pred_floor) if self.pred_floor is not None else default_pred_floor(self.min_depth, "relative")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_model(self, model) -> "Protocol":
        """This protocol with ``input_size`` resolved for ``model`` (recorded as resolved). A model with its
        own ``predict(images)`` (a transformers processor, a diffusion pipeline) sizes its input itself:
        recorded as null."""
        from dabench.models.contract import unwrap
        from dabench.models.inference import native_input_size

        if callable(getattr(unwrap(model), "predict", None)):
            return replace(self, input_size=None)
        if self.input_size is not None:
            from dabench.models.inference import check_input_size

            check_input_size(self.input_size, model, what="input_size")  # 13 would be run (and recorded) as 14
            return self

        return replace(self, input_size=native_input_size(model))


def _accepted_types(hint: Any) -> tuple[type, ...]:
    """The Python types a suite value of a field typed ``hint`` may have (a float also takes an int)."""
    out: list[type] = []
    for t in (typing.get_args(hint) or (hint,)):
        out += [int, float] if t is float else [t]
    return tuple(out)


def _protocol_keys() -> dict[str, tuple[tuple[type, ...], str]]:
    hints = typing.get_type_hints(Protocol)
    return {f.name: (_accepted_types(hints[f.name]), f.metadata["doc"]) for f in fields(Protocol)
            if f.metadata.get("key", True)}


#: protocol key -> (accepted Python types, one-line meaning), derived from ``Protocol``'s fields
PROTOCOL_KEYS: dict[str, tuple[tuple[type, ...], str]] = _protocol_keys()


def task_defaults(task: str) -> dict[str, Any]:
    """The protocol a ``task`` suite starts from: each key's default, or the task's own where the field
    names one (ordinal pairs are read at exact pixels of the full-resolution prediction: no alignment)."""
    return {f.name: f.metadata.get("task_defaults", {}).get(task, f.default) for f in fields(Protocol)
            if f.metadata.get("key", True)}


@dataclass
class DatasetEntry:
    dataset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where this dataset's protocol comes from (repo, file and line); "" = the suite's


@dataclass
class Suite:
    name: str
    task: str
    datasets: list[DatasetEntry]
    metrics: list[str]
    primary_metrics: list[str]
    description: str = ""
    source: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def dataset_names(self) -> list[str]:
        return [e.dataset for e in self.datasets]

    def entry(self, dataset: str) -> DatasetEntry:
        for e in self.datasets:
            if e.dataset == dataset:
                return e
        raise ConfigError(f"suite {excerpt(self.name)} has no dataset {excerpt(dataset)}; its datasets: {', '.join(self.dataset_names)}")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "description": self.description, "source": self.source,
                "defaults": self.defaults, "datasets": [{"dataset": e.dataset, **e.overrides, **({"source": e.source} if e.source else {})}
                             for e in self.datasets],
                "metrics": self.metrics, "primary_metrics": self.primary_metrics, "path": self.path}


def _check_protocol_keys(d: dict, where: str, task: str) -> dict:
    out = {}
    for k, v in d.items():
        if k not in PROTOCOL_KEYS:
            raise ConfigError(f"{where}: unknown key {excerpt(k)}; valid keys: dataset, source, {', '.join(PROTOCOL_KEYS)}")
        types, _ = PROTOCOL_KEYS[k]
        if isinstance(v, bool) and bool not in types:
            raise ConfigError(f"{where}: {k} must be {'/'.join(t.__name__ for t in types)}, got {excerpt(v)}")
        if not isinstance(v, types):
            raise ConfigError(f"{where}: {k} must be {'/'.join(t.__name__ for t in types)}, got {excerpt(v)}")
        if k == "alignment" and v not in ALIGNMENT_MODES:
            raise ConfigError(f"{where}: unknown alignment {excerpt(v)}; valid modes: {', '.join(ALIGNMENT_MODES)}")
        if k == "crop" and v not in CROPS:
            raise ConfigError(f"{where}: unknown crop {excerpt(v)}; valid crops: {', '.join(CROPS)}")
        if k == "min_valid_pixels" and v < 1:
            raise ConfigError(f"{where}: min_valid_pixels must be >= 1, got {excerpt(v)}")
        if k == "alignment_max_res" and v is not None and v < 1:
            raise ConfigError(f"{where}: alignment_max_res must be a positive number of pixels or null, got {excerpt(v)}")
        if k == "score_space" and v not in SCORE_SPACES:
            raise ConfigError(f"{where}: score_space must be one of {', '.join(SCORE_SPACES)}, got {excerpt(v)}")
        if k in ("min_depth", "max_depth", "depth_cap", "pred_floor") and v is not None and v < 0:
            raise ConfigError(f"{where}: {k} must be >= 0, got {excerpt(v)}")
        if k == "input_size" and v is not None and v <= 0:
            raise ConfigError(f"{where}: input_size must be a positive number of pixels, got {excerpt(v)}")
        out[k] = float(v) if k in ("min_depth", "max_depth", "depth_cap", "pred_floor") and v is not None else v
    return out


def parse_suite(data: Any, source: str = "<suite>", default_name: str | None = None) -> Suite:
    """Validate a suite mapping (already loaded from YAML) and build a ``Suite``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a suite must be a YAML mapping, got {type(data).__name__}")
    for k, v in data.items():
        if k not in SUITE_KEYS:
            raise ConfigError(f"{source}: unknown suite key {excerpt(k)}; valid keys: {', '.join(SUITE_KEYS)}")
        if not isinstance(v, SUITE_KEYS[k]):
            raise ConfigError(f"{source}: {k} must be a {SUITE_KEYS[k].__name__}, got {excerpt(v)}")
    for k in ("task", "datasets"):
        if k not in data:
            raise ConfigError(f"{source}: missing required key {excerpt(k)}")
    task = data["task"]
    if task not in TASKS:
        raise ConfigError(f"{source}: task must be one of {', '.join(TASKS)}, got {excerpt(task)}")
    defaults = _check_protocol_keys(data.get("defaults") or {}, f"{source}: defaults", task)
    entries = []
    for i, item in enumerate(data["datasets"]):
        where = f"{source}: datasets[{i}]"
        if isinstance(item, str):
            entries.append(DatasetEntry(item))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), str):
            raise ConfigError(f"{where}: expected a dataset name or a mapping with a 'dataset' key, got {excerpt(item)}")
        rest = {k: v for k, v in item.items() if k not in ("dataset", "source")}
        src = item.get("source", "")
        if not isinstance(src, str):
            raise ConfigError(f"{where}: source must be a string (repo, file and line), got {excerpt(src)}")
        entries.append(DatasetEntry(item["dataset"], _check_protocol_keys(rest, where, task), src))
    if not entries:
        raise ConfigError(f"{source}: datasets is empty")
    names = [e.dataset for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: a dataset is listed twice: {names}")
    task_metrics = list_metrics(metric_task(task))
    metrics = data.get("metrics") or task_metrics
    for m in metrics:
        if m not in METRICS:
            raise ConfigError(f"{source}: unknown metric {excerpt(m)}; valid metrics: {', '.join(list_metrics())}")
        if m not in task_metrics:
            raise ConfigError(f"{source}: metric {excerpt(m)} does not belong to a {task} suite; valid: {', '.join(task_metrics)}")
    primary = data.get("primary_metrics") or metrics[:2]
    for m in primary:
        if m not in metrics:
            raise ConfigError(f"{source}: primary metric {excerpt(m)} is not in metrics {excerpt(metrics, 200)}")
    return Suite(name=data.get("name") or default_name or "suite", task=task, datasets=entries, metrics=list(metrics),
                 primary_metrics=list(primary), description=data.get("description", ""),
                 source=data.get("source", ""), defaults=defaults, path=None if source.startswith("<") else source)


def load_suite(name_or_path: str | os.PathLike | Suite) -> Suite:
    """A suite by name (``dabench/configs/suites/<name>.yaml`` or a ``$DABENCH_CONFIG_PATH`` folder) or by YAML path."""
    if isinstance(name_or_path, Suite):
        return name_or_path
    from dabench.safety import load_yaml

    s = str(name_or_path)
    path = Path(s)
    if not (s.endswith((".yaml", ".yml")) or os.sep in s or "/" in s):
        found = configs.find("suites", s)
        path = found if found is not None else suites_dir() / f"{s}.yaml"
        if found is None:
            raise ConfigError(f"unknown suite {excerpt(s)}; valid suites: {', '.join(list_suites()) or '(none)'} "
                              f"(or pass a path to a suite YAML)")
    if not path.is_file():
        raise MissingFileError(f"suite file {path} does not exist")
    data = load_yaml(path, "suite file")
    return parse_suite(data, str(path), default_name=path.stem)


def card_eval_defaults(card: dict | None) -> dict[str, Any]:
    """The protocol defaults a dataset card sets (``alignment``, ``score_space``, ``depth_cap``,
    ``eval_crop`` → ``crop``, ``min_depth``, ``max_depth``, ``default_split`` → ``split``, and any
    ``input_size`` / ``flip_tta``)."""
    if not card:
        return {}
    # a null the key does not accept (the depth fields of a segmentation or ordinal card) sets nothing
    out = {k: card[k] for k in PROTOCOL_KEYS if k in card and k not in ("split", "crop")
           and (card[k] is not None or type(None) in PROTOCOL_KEYS[k][0])}
    if card.get("eval_crop") is not None:
        out["crop"] = card["eval_crop"]
    if card.get("default_split"):
        out["split"] = card["default_split"]
    return out


def resolve_protocol(suite: Suite, dataset: str, card: dict | None = None, overrides: dict | None = None,
                     in_suite: bool = True) -> Protocol:
    """Merge task defaults < card eval defaults < suite defaults < suite entry < overrides (None = keep).

    ``in_suite=False`` resolves a dataset the suite does not list (a synthetic fallback): no entry."""
    merged: dict[str, Any] = task_defaults(suite.task)
    merged.update(_check_protocol_keys(card_eval_defaults(card), f"dataset card {excerpt(dataset)}", suite.task))
    merged.update(suite.defaults)
    if in_suite:
        merged.update(suite.entry(dataset).overrides)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    proto = Protocol(**merged)
    if not proto.min_depth < proto.max_depth:
        raise ConfigError(f"suite {excerpt(suite.name)}, dataset {excerpt(dataset)}: min_depth {proto.min_depth} must be < "
                          f"max_depth {proto.max_depth}")
    family = metric_task(suite.task)
    if family.startswith("depth"):  # the metric family follows the task, never a suite key
        proto = replace(proto, metric_family=family)
    if proto.pred_floor is None:  # record the floor actually used
        proto = replace(proto, pred_floor=default_pred_floor(proto.min_depth, suite.task))
    if not proto.pred_floor < proto.max_depth:
        raise ConfigError(f"suite {excerpt(suite.name)}, dataset {excerpt(dataset)}: pred_floor {proto.pred_floor} must be < "
                          f"max_depth {proto.max_depth}")
    return proto
