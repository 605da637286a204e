"""Dataset cards: one YAML file per dataset, ``dabench/configs/datasets/<name>.yaml`` (or a ``$DABENCH_CONFIG_PATH`` folder).

Card schema (every field is checked by ``validate_card``):

- ``name``: the card's file stem; ``display_name``: for tables.
- ``task``: ``depth`` | ``segmentation`` | ``ordinal`` (annotated point pairs, e.g. DA-2K; the depth
  protocol fields may be null).
- ``reader``: the dataset reader (a ``READERS`` name in ``dabench.data.datasets``).
- ``split_file``: ``{split: path}`` of split lists, relative to the card's folder (``dabench/configs/datasets/``)
  (``{}`` for synthetic sets and sets listed by directory scan); ``default_split``.
- ``root``: the dataset folder relative to ``--data-root`` / ``$DABENCH_DATA`` (null: synthetic).
- ``min_depth`` / ``max_depth``: metres; ground truth outside is invalid for evaluation.
- ``eval_crop``: a crop name of ``dabench.data.crops.CROPS`` (the one list).
- ``alignment``: default for the zero-shot suite: a mode of ``dabench.eval.align.ALIGNMENT_MODES``.
- ``score_space``: ``disparity`` | ``depth``; ``depth_cap``: metres (MiDaS-style clamp of the
  aligned disparity at 1/cap when scoring in depth) or null.
- ``fallback``: the synthetic set evaluated instead when the data is absent
  (``synthetic-indoor`` | ``synthetic-outdoor``; null for the synthetic sets themselves).
- ``ground_truth`` (training sets): ``metric_depth`` | ``disparity`` | ``up_to_scale_depth``;
  ``sky``: how the set marks sky; ``role: train`` for the paper's labelled training sets.
- ``source``: one-line citation; ``protocol_source``: where the protocol defaults come from;
  ``notes``: caveats.
- ``segmentation`` (optional; cards the seg-* suites and ``dabench finetune seg`` read through
  mmseg): ``config`` (a file under ``dabench/configs/heads/seg/_base_/datasets/``), ``num_classes``,
  ``train_split``; real sets also ``folders: {split: [img_path, seg_map_path]}`` (relative to
  ``root``, one per split of ``split_file``), ``img_suffix``, ``seg_map_suffix``,
  ``reduce_zero_label``; synthetic sets ``train_scenes``.
- Reader-specific extras (``family``, ``size``, ``num_samples``, ``seed``, ``sparse``,
  ``focal``, ``subset``, ...) are passed to the reader.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dabench.data.crops import CROPS as EVAL_CROPS
from dabench.errors import ConfigError, MissingFileError, excerpt
from dabench import configs

TASKS = ("depth", "segmentation", "ordinal")
MAX_SPLIT_BYTES = 1 << 30  # a split list, after gzip
SCORE_SPACES = ("disparity", "depth")
FALLBACKS = ("synthetic-indoor", "synthetic-outdoor")
REQUIRED = ("name", "display_name", "task", "reader", "split_file", "root", "min_depth", "max_depth",
            "eval_crop", "alignment", "score_space", "depth_cap", "fallback", "source", "notes")


def cards_dir() -> Path:
    """The shipped cards folder (``dabench/configs/datasets``: the YAML cards and ``splits/``)."""
    return configs.shipped_dir("datasets")


def list_datasets(task: str | None = None) -> list[str]:
    """Names of all dataset cards, shipped and from ``$DABENCH_CONFIG_PATH`` (optionally only ``task``'s)."""
    names = configs.names("datasets")
    if task is not None:
        names = [n for n in names if load_card(n)["task"] == task]
    return names


def load_card(name: str) -> dict:
    """The validated card of dataset ``name`` (a fresh copy each call)."""
    import copy

    from dabench.safety import safe_join

    safe_join(cards_dir(), f"{name}.yaml", what="dataset name")  # refuses separators and traversal
    path = configs.find("datasets", str(name))
    if path is None:
        known = ", ".join(configs.names("datasets")) or "(none)"
        raise ConfigError(f"unknown dataset {excerpt(name)}: no card {name}.yaml in {', '.join(map(str, configs.search_path('datasets')))}; "
                          f"valid datasets: {known}")
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return copy.deepcopy(_load_card_cached(str(path), stamp))


@lru_cache(maxsize=256)
def _load_card_cached(path_str: str, stamp) -> dict:
    path = Path(path_str)
    from dabench.safety import load_yaml

    card = load_yaml(path, "dataset card")
    validate_card(card, path)
    return card


def validate_card(card, path: Path | str = "<card>") -> None:
    """Raise ``ConfigError`` naming the card file and field when ``card`` breaks the schema."""
    if not isinstance(card, dict):
        raise ConfigError(f"dataset card {path} must be a mapping, got {type(card).__name__}")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ConfigError(f"dataset card {path} lacks field(s): {', '.join(missing)}")
    stem = Path(str(path)).stem
    if str(path) != "<card>" and card["name"] != stem:
        raise ConfigError(f"dataset card {path}: name {excerpt(card['name'])} must equal the file name {excerpt(stem)}")

    def one_of(key, allowed):
        if card[key] not in allowed:
            raise ConfigError(f"dataset card {path}: {key} {excerpt(card[key])} is not one of {', '.join(map(str, allowed))}")

    one_of("task", TASKS)
    if card["fallback"] is not None:
        one_of("fallback", FALLBACKS)
    if not isinstance(card["split_file"], dict) or not all(v is None or isinstance(v, str) for v in card["split_file"].values()):
        raise ConfigError(f"dataset card {path}: split_file must map split -> file (or null to scan the dataset "
                          f"folder), got {excerpt(card['split_file'])}")
    if card.get("segmentation") is not None:
        _check_segmentation(card, path)
    if card["task"] == "segmentation" and card.get("segmentation") is None:
        raise ConfigError(f"dataset card {path}: a segmentation card needs a segmentation block")
    if card["task"] in ("segmentation", "ordinal"):  # depth protocol fields do not apply (may be null)
        _check_common(card, path)
        return
    # the alignment modes live with the alignment code (imported lazily: align.py is numpy-only)
    from dabench.eval.align import ALIGNMENT_MODES

    one_of("eval_crop", EVAL_CROPS)
    one_of("alignment", ALIGNMENT_MODES)
    one_of("score_space", SCORE_SPACES)
    for key in ("min_depth", "max_depth"):
        if not isinstance(card[key], (int, float)) or isinstance(card[key], bool):
            raise ConfigError(f"dataset card {path}: {key} must be a number of metres, got {excerpt(card[key])}")
    if not card["min_depth"] < card["max_depth"]:
        raise ConfigError(f"dataset card {path}: min_depth {card['min_depth']} must be < max_depth {card['max_depth']}")
    if card["depth_cap"] is not None and not (isinstance(card["depth_cap"], (int, float)) and card["depth_cap"] > 0):
        raise ConfigError(f"dataset card {path}: depth_cap must be a positive number of metres or null")
    _check_common(card, path)


#: what a card's ``ground_truth`` may say (training sets, dabench/data/train_sets.py)
GROUND_TRUTHS = ("metric_depth", "disparity", "up_to_scale_depth")


def _safe_relative(value, where: str) -> str:
    """A relative folder that stays inside the dataset root (no absolute path, no ``..``)."""
    if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
        raise ConfigError(f"{where} must be a folder relative to the dataset root (no '..'), got {excerpt(value)}")
    return value


def _check_segmentation(card: dict, path) -> None:
    seg = card["segmentation"]
    where = f"dataset card {path}: segmentation"
    if not isinstance(seg, dict):
        raise ConfigError(f"{where} must be a mapping, got {excerpt(seg)}")
    for key, kind in (("config", str), ("num_classes", int), ("train_split", str)):
        if not isinstance(seg.get(key), kind) or isinstance(seg.get(key), bool):
            raise ConfigError(f"{where}.{key} must be a {kind.__name__}, got {excerpt(seg.get(key))}")
    if "/" in seg["config"] or not seg["config"].endswith(".py"):
        raise ConfigError(f"{where}.config must name a file in dabench/configs/heads/seg/_base_/datasets/, got {excerpt(seg['config'])}")
    if card["reader"] == "synthetic":
        return
    folders = seg.get("folders")
    if not isinstance(folders, dict) or set(folders) != set(card["split_file"]):
        raise ConfigError(f"{where}.folders must map each split ({', '.join(card['split_file'])}) to "
                          f"[img_path, seg_map_path], got {excerpt(folders)}")
    for split, pair in folders.items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where}.folders.{split} must be [img_path, seg_map_path], got {excerpt(pair)}")
        for p in pair:
            _safe_relative(p, f"{where}.folders.{split}")
    if seg["train_split"] not in folders:
        raise ConfigError(f"{where}.train_split {excerpt(seg['train_split'])} is not one of {excerpt(', '.join(map(str, folders)), 200)}")
    for key in ("img_suffix", "seg_map_suffix"):
        if not isinstance(seg.get(key), str):
            raise ConfigError(f"{where}.{key} must be a file-name suffix, got {excerpt(seg.get(key))}")
    if not isinstance(seg.get("reduce_zero_label"), bool):
        raise ConfigError(f"{where}.reduce_zero_label must be true or false, got {excerpt(seg.get('reduce_zero_label'))}")


def segmentation_cards() -> list[str]:
    """Dataset cards a segmentation suite can evaluate (those with a ``segmentation`` block)."""
    return [n for n in list_datasets() if load_card(n).get("segmentation") is not None]


def _check_common(card: dict, path) -> None:
    for key in ("metric_depth", "sharp_boundary"):  # the geometry suites' facts (dabench.eval.geometry)
        if key in card and not isinstance(card[key], bool):
            raise ConfigError(f"dataset card {path}: {key} must be true or false, got {excerpt(card[key])}")
    if "intrinsics_source" in card and not isinstance(card["intrinsics_source"], str):
        raise ConfigError(f"dataset card {path}: intrinsics_source must be a sentence naming where K comes from")
    if "ground_truth" in card and card["ground_truth"] not in GROUND_TRUTHS:
        raise ConfigError(f"dataset card {path}: ground_truth {excerpt(card['ground_truth'])} is not one of "
                          f"{', '.join(GROUND_TRUTHS)}")
    if card["root"] is not None and not isinstance(card["root"], str):
        raise ConfigError(f"dataset card {path}: root must be a folder name relative to the data root or null")
    if card["reader"] == "synthetic" and not isinstance(card.get("num_samples"), dict):
        raise ConfigError(f"dataset card {path}: a synthetic card needs num_samples: {{split: count}}")
    splits = card_splits(card)
    default = card.get("default_split")
    if default is not None and splits and default not in splits:
        raise ConfigError(f"dataset card {path}: default_split {excerpt(default)} is not one of {excerpt(', '.join(map(str, splits)), 200)}")


def card_splits(card: dict) -> list[str]:
    """The splits a card offers."""
    if card.get("reader") == "synthetic":
        return list((card.get("num_samples") or {}).keys())
    return list(card["split_file"].keys())


def resolve_split(card: dict, split: str | None) -> str:
    """``split`` or the card's default; an unknown split is a ``ConfigError`` listing the valid ones."""
    splits = card_splits(card)
    split = split or card.get("default_split") or (splits[0] if splits else None)
    if split not in splits:
        raise ConfigError(f"dataset {excerpt(card['name'])} has no split {excerpt(split)}; valid splits: {', '.join(splits) or '(none)'}")
    return split


def split_file_path(card: dict, split: str) -> Path:
    """Absolute path of the split list of ``split`` (``ConfigError`` when the split is scanned)."""
    rel = card["split_file"].get(split)
    if not rel:
        raise ConfigError(f"dataset {excerpt(card['name'])} split {excerpt(split)} has no split file (its folder is scanned)")
    p = Path(rel)
    if p.is_absolute():
        return p
    card_file = configs.find("datasets", str(card["name"]))  # relative to the card's own folder
    return (card_file.parent if card_file is not None else cards_dir()) / p


def per_split(card: dict, key: str, split: str, default=None):
    """A card value that may be given once or per split (``{split: value}``)."""
    v = card.get(key, default)
    if isinstance(v, dict):
        return v.get(split, default)
    return v


def read_split_file(path: Path) -> list[list[str]]:
    """Non-empty, non-comment lines of a split list (plain or ``.gz``), each split on whitespace."""
    if not Path(path).is_file():
        raise MissingFileError(f"split file {path} does not exist")
    if str(path).endswith(".gz"):
        import gzip
        import os

        from dabench.safety import open_regular

        fd, _ = open_regular(path, "split file", ConfigError)
        with gzip.open(os.fdopen(fd, "rb"), "rb") as f:
            raw = f.read(MAX_SPLIT_BYTES + 1)  # inflated at most to the cap: a gzip bomb stops here
        if len(raw) > MAX_SPLIT_BYTES:
            raise ConfigError(f"split file {path} inflates to more than {MAX_SPLIT_BYTES} bytes; refused")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"split file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    else:
        from dabench.safety import read_text_bounded

        text = read_text_bounded(path, "split file", MAX_SPLIT_BYTES, error=ConfigError)
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split())
    return rows
