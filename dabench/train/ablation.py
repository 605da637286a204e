"""The Table 9 ablation over several seeds, summarised as mean ± std per arm and scene family.

``run_seed_ablation(cfg, OUT, seeds)`` runs ``pipeline.run_ablation`` once per seed into
``OUT/seed_<s>/`` (the seed sets both ``seed`` — data order and augmentation — and
``model.init_seed`` — the random encoder/head init — so the spread covers all of training's
randomness) and writes ``OUT/summary.json`` and ``OUT/summary.md``:

- ``arms[arm].per_seed[seed][family][metric]``: the figure of one seed, averaged over the held-out
  sets of that family (the synthetic cards' ``family``, e.g. indoor / outdoor; the set's name for
  real datasets), weighted by each set's image count;
- ``arms[arm].mean`` / ``.std`` (sample standard deviation, ddof = 1; 0 for one seed) over seeds;
- ``arms[arm].minus_teacher``: the per-seed paired difference arm − teacher, its mean and std —
  the method's effect with the seed-to-seed noise of both sides.

Arms: ``teacher``, the Table 9 student rows and ``horizon_prior`` (weight-free reference).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dabench.errors import ConfigError
from dabench.provenance import atomic_write_json, atomic_write_text, provenance
from dabench.train.config import DatasetSpec, TrainingConfig
from dabench.typed_config import to_dict

log = logging.getLogger("dabench.train")

SCHEMA = "dabench.train_ablation_summary/1"
METRICS = ("abs_rel", "delta1")


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct non-negative integers)."""
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds must list distinct non-negative integers, e.g. 0,1,2; got {text!r}")
    return seeds


def seed_config(cfg: TrainingConfig, seed: int) -> TrainingConfig:
    """``cfg`` with ``seed`` as both the data/augmentation seed and ``model.init_seed``."""
    return dataclasses.replace(cfg, seed=int(seed), model=dataclasses.replace(cfg.model, init_seed=int(seed)))


def dataset_family(spec: DatasetSpec) -> str:
    """The scene family of an evaluation set: its card's ``family`` (synthetic sets), else its name."""
    from dabench.data import load_card

    name = spec.name
    try:
        return str(load_card(name).get("family") or name)
    except ConfigError:
        return name


def _by_family(per_dataset: Mapping[str, Mapping], families: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """``{dataset: {"metrics", "counts"}}`` -> ``{family: {metric: value}}`` (image-count weighted)."""
    acc: dict[str, dict[str, list]] = {}
    for ds, res in per_dataset.items():
        fam = families.get(ds, ds)
        n = float((res.get("counts") or {}).get("used") or 1)
        for m in METRICS:
            acc.setdefault(fam, {}).setdefault(m, []).append((float(res["metrics"][m]), n))
    return {fam: {m: float(sum(v * w for v, w in vals) / sum(w for _, w in vals)) for m, vals in ms.items()}
            for fam, ms in acc.items()}


def _stats(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarise(per_seed: Mapping[int, Mapping[str, Mapping[str, Mapping]]], families: Mapping[str, str]) -> dict:
    """``{seed: {arm: {dataset: {"metrics", "counts"}}}}`` -> the ``arms`` block of summary.json."""
    seeds = sorted(per_seed)
    arms: list[str] = []
    for s in seeds:
        arms += [a for a in per_seed[s] if a not in arms]
    fam = {s: {a: _by_family(per_seed[s][a], families) for a in per_seed[s]} for s in seeds}
    out: dict[str, dict] = {}
    for arm in arms:
        ps = {str(s): fam[s][arm] for s in seeds if arm in fam[s]}
        fams = sorted({f for v in ps.values() for f in v})
        mean = {f: {} for f in fams}
        std = {f: {} for f in fams}
        diff_mean = {f: {} for f in fams}
        diff_std = {f: {} for f in fams}
        for f in fams:
            for m in METRICS:
                vals = [ps[str(s)][f][m] for s in seeds if str(s) in ps and f in ps[str(s)]]
                mean[f][m], std[f][m] = _stats(vals)
                if arm != "teacher":
                    d = [fam[s][arm][f][m] - fam[s]["teacher"][f][m] for s in seeds
                         if arm in fam[s] and "teacher" in fam[s] and f in fam[s]["teacher"]]
                    if d:
                        diff_mean[f][m], diff_std[f][m] = _stats(d)
        out[arm] = {"per_seed": ps, "mean": mean, "std": std}
        if arm != "teacher":
            out[arm]["minus_teacher"] = {"mean": diff_mean, "std": diff_std}
    return out


def summary_table(arms: Mapping[str, Mapping]) -> str:
    """Markdown: one row per arm, mean ± std of AbsRel ↓ and δ1 ↑ per family."""
    fams: list[str] = []
    for a in arms.values():
        fams += [f for f in a["mean"] if f not in fams]
    head = "| arm | " + " | ".join(f"{f} AbsRel ↓ | {f} δ1 ↑" for f in fams) + " |"
    rows = [head, "|---|" + "---|---|" * len(fams)]
    for arm, a in arms.items():
        cells = []
        for f in fams:
            for m in METRICS:
                if f in a["mean"]:
                    cells.append(f"{a['mean'][f][m]:.4f} ± {a['std'][f][m]:.4f}")
                else:
                    cells.append("-")
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def run_seed_ablation(cfg: TrainingConfig, out_dir: str | Path, seeds: Sequence[int], resume: bool = False) -> dict:
    """Table 9 per seed into ``out_dir/seed_<s>/``, then ``out_dir/summary.json`` / ``summary.md``."""
    from mmengine.dist import is_main_process

    from dabench.train.pipeline import run_ablation

    if not cfg.evaluation.datasets:
        raise ConfigError("the ablation needs held-out sets: config key 'evaluation.datasets' is empty")
    out_dir = Path(out_dir)
    families = {spec.name: dataset_family(spec) for spec in cfg.evaluation.datasets}
    per_seed = {}
    for s in seeds:
        log.info("ablation seed %d -> %s", s, out_dir / f"seed_{s}")
        per_seed[int(s)] = run_ablation(seed_config(cfg, s), out_dir / f"seed_{s}", resume=resume)
    arms = summarise(per_seed, families)
    summary = {"schema": SCHEMA, "preset": cfg.preset, "seeds": [int(s) for s in seeds],
               "metrics": list(METRICS), "families": families,
               "std": "sample standard deviation over seeds (ddof=1)",
               "seed_sets": "seed and model.init_seed",
               "protocol": "least-squares scale+shift in disparity, scored in disparity; held-out test scenes",
               "evaluation": to_dict(cfg.evaluation.datasets), "arms": arms,
               **provenance(int(seeds[0]), cfg.to_dict())}
    if is_main_process():
        atomic_write_json(out_dir / "summary.json", summary)
        atomic_write_text(out_dir / "summary.md", f"Ablation over seeds {', '.join(map(str, seeds))} "
                          f"(preset {cfg.preset}): mean ± std (ddof=1).\n\n" + summary_table(arms))
    return summary
