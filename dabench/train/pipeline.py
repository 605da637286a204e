"""Stage dispatch (``run_stage``), the teacher → pseudo-label → student pipeline, held-out
evaluation through the suite runner, and the Table 9 ablation.

Output layout of ``run_stage("pipeline", cfg, OUT)``::

    OUT/config.py            the resolved config
    OUT/teacher/             checkpoints, tb/, log.jsonl, train.log, config.py, final.safetensors
    OUT/pseudo_labels/       index.json + shard_*.safetensors
    OUT/student/             as teacher/ (final weights also registered in checkpoints_dir())
    OUT/eval.json            teacher / student / horizon_prior on cfg.evaluation.datasets (if any)

``run_ablation(cfg, OUT)`` trains the teacher and pseudo-labels once, then the four Table 9
students (``L_l``; ``+L_u``; ``+strong perturbation``; ``+L_feat``) under ``OUT/ablation/<row>/``,
and writes ``OUT/ablation.json`` and ``OUT/ablation.md``.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Mapping

from mmengine.dist import is_main_process

from dabench.errors import ConfigError
from dabench.provenance import atomic_write_json, atomic_write_text, provenance
from dabench.train.common import StageResult
from dabench.train.config import TrainingConfig, dump_config

log = logging.getLogger("dabench.train")

STAGES = ("teacher", "pseudo-label", "student", "pipeline")

#: Table 9 rows: name -> the student switches (use_unlabelled, strong_perturb, feat_align).
ABLATION_ROWS: dict[str, dict[str, bool]] = {
    "L_l": dict(use_unlabelled=False, strong_perturb=False, feat_align=False),
    "+L_u": dict(use_unlabelled=True, strong_perturb=False, feat_align=False),
    "+strong perturbation": dict(use_unlabelled=True, strong_perturb=True, feat_align=False),
    "+L_feat": dict(use_unlabelled=True, strong_perturb=True, feat_align=True),
}
_ROW_DIRS = {"L_l": "l_l", "+L_u": "plus_l_u", "+strong perturbation": "plus_strong", "+L_feat": "plus_l_feat"}


def run_stage(stage: str, cfg: TrainingConfig, out_dir: str | Path, resume: bool = False, *,
              teacher: str | Path | None = None, pseudo_labels: str | Path | None = None,
              evaluate: bool = True) -> StageResult:
    """Run ``stage`` (``teacher``, ``pseudo-label``, ``student`` or ``pipeline``) with the typed
    config ``cfg`` (``dabench.train.config.load_config``) into ``out_dir``.

    ``pseudo-label`` needs the teacher's weights (``teacher=``, default ``out_dir/../teacher/
    final.safetensors``); ``student`` needs the pseudo-label directory (``pseudo_labels=``,
    default ``out_dir/../pseudo_labels``) unless ``student.use_unlabelled`` is false.
    ``resume`` continues each stage exactly from its newest checkpoint / finished shards."""
    out_dir = Path(out_dir)
    if stage == "teacher":
        from dabench.train.teacher import train_teacher

        return train_teacher(cfg, out_dir, resume=resume)
    if stage == "pseudo-label":
        from dabench.train.pseudo_label import make_pseudo_labels

        t = Path(teacher) if teacher else out_dir.parent / "teacher" / "final.safetensors"
        return make_pseudo_labels(cfg, out_dir, t, resume=resume)
    if stage == "student":
        from dabench.train.student import train_student

        p = Path(pseudo_labels) if pseudo_labels else out_dir.parent / "pseudo_labels"
        return train_student(cfg, out_dir, p if cfg.student.use_unlabelled else None, resume=resume)
    if stage == "pipeline":
        return run_pipeline(cfg, out_dir, resume=resume, evaluate=evaluate)
    raise ConfigError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")


def run_pipeline(cfg: TrainingConfig, out_dir: str | Path, resume: bool = False, evaluate: bool = True) -> StageResult:
    from dabench.train.pseudo_label import make_pseudo_labels
    from dabench.train.student import check_switches, train_student
    from dabench.train.teacher import train_teacher

    check_switches(cfg)
    out_dir = Path(out_dir)
    if is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.py")
    t = train_teacher(cfg, out_dir / "teacher", resume=resume)
    p_dir = None
    if cfg.student.use_unlabelled:
        make_pseudo_labels(cfg, out_dir / "pseudo_labels", t.final, resume=resume)
        p_dir = out_dir / "pseudo_labels"
    s = train_student(cfg, out_dir / "student", p_dir, resume=resume)
    info = {"teacher": str(t.final), "student": str(s.final), "registered_as": s.info.get("registered_as")}
    if evaluate and cfg.evaluation.datasets:
        results = evaluate_checkpoints(cfg, {"teacher": t.final, "student": s.final})
        if is_main_process():
            atomic_write_json(out_dir / "eval.json", {"results": results, **provenance(cfg.seed, cfg.to_dict())})
            atomic_write_text(out_dir / "eval.md", results_table(results))
        info["eval"] = results
    return StageResult("pipeline", out_dir, s.final, info)


# ---------------------------------------------------------------- evaluation
def evaluate_checkpoints(cfg: TrainingConfig, checkpoints: Mapping[str, str | Path | None],
                         baselines: tuple[str, ...] = ("horizon_prior",)) -> dict[str, dict[str, dict]]:
    """AbsRel/δ1/... of each checkpoint (and the weight-free ``baselines``) on every held-out set
    of ``cfg.evaluation.datasets``, through ``dabench.eval.loop.evaluate_dataset`` with the
    ``synthetic`` suite's protocol (least-squares scale+shift in disparity, scored in disparity)
    and the dataset card's depth range. ``{label: {dataset: {"metrics": ..., "counts": ...}}}``."""
    from dabench.eval.loop import evaluate_dataset
    from dabench.models.inference import resolve_device
    from dabench.eval.suites import load_suite, resolve_protocol
    from dabench.models import create_model
    from dabench.models.checkpoint import META_ARCH, read_metadata
    from dabench.train.common import build_source

    ev = cfg.evaluation
    input_size = ev.input_size or cfg.data.crop_size
    suite = load_suite("synthetic")
    device = str(resolve_device("auto"))
    models = {}
    for label, ck in checkpoints.items():
        if ck is None:
            continue
        arch = read_metadata(ck).get(META_ARCH, cfg.model.arch)
        models[label] = create_model(arch, checkpoint=ck).eval()
    for b in baselines:
        models[b] = create_model(b).eval()
    out: dict[str, dict[str, dict]] = {label: {} for label in models}
    for spec in ev.datasets:
        ds = build_source(spec, cfg.data.data_root)
        card = getattr(ds, "card", None) or {}
        proto = resolve_protocol(suite, spec.name, card, overrides={"input_size": input_size},
                                 in_suite=spec.name in [e.dataset for e in suite.datasets])
        for label, model in models.items():
            metrics, counts = evaluate_dataset(model, ds, proto, batch_size=ev.batch_size, device=device)
            out[label][spec.name] = {"metrics": metrics, "counts": counts, "protocol": proto.as_dict()}
            log.info("eval %s on %s: abs_rel %.4f delta1 %.4f", label, spec.name, metrics["abs_rel"],
                     metrics["delta1"])
    return out


def results_table(results: Mapping[str, Mapping[str, Mapping]]) -> str:
    """Markdown: one row per model, AbsRel ↓ and δ1 ↑ per dataset."""
    datasets = []
    for per in results.values():
        for d in per:
            if d not in datasets:
                datasets.append(d)
    head = "| model | " + " | ".join(f"{d} AbsRel ↓ | {d} δ1 ↑" for d in datasets) + " |"
    sep = "|---|" + "---|---|" * len(datasets)
    rows = [head, sep]
    for label, per in results.items():
        cells = []
        for d in datasets:
            m = per.get(d, {}).get("metrics")
            cells += [f"{m['abs_rel']:.4f}", f"{m['delta1']:.4f}"] if m else ["-", "-"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------- Table 9
def ablation_config(cfg: TrainingConfig, row: str) -> TrainingConfig:
    """``cfg`` with the student switches of Table 9 row ``row`` and a run name of its own."""
    if row not in ABLATION_ROWS:
        raise ConfigError(f"unknown ablation row {row!r}; valid: {', '.join(ABLATION_ROWS)}")
    return dataclasses.replace(cfg, student=dataclasses.replace(cfg.student, **ABLATION_ROWS[row]),
                               run_name=f"{cfg.run_name or cfg.model.arch + '_student'}_{_ROW_DIRS[row]}")


def run_ablation(cfg: TrainingConfig, out_dir: str | Path, resume: bool = False,
                 rows: tuple[str, ...] = tuple(ABLATION_ROWS)) -> dict:
    """Teacher and pseudo-labels once, then one student per Table 9 row, each evaluated on
    ``cfg.evaluation.datasets``; returns ``{row: {dataset: {"metrics": ...}}}`` plus the teacher
    and ``horizon_prior`` rows, and writes ``ablation.json`` / ``ablation.md`` in ``out_dir``."""
    from dabench.train.pseudo_label import make_pseudo_labels
    from dabench.train.student import train_student
    from dabench.train.teacher import train_teacher

    if not cfg.evaluation.datasets:
        raise ConfigError("the ablation needs held-out sets: config key 'evaluation.datasets' is empty")
    out_dir = Path(out_dir)
    if is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.py")
    base = dataclasses.replace(cfg, student=dataclasses.replace(cfg.student, **ABLATION_ROWS["+L_feat"]))
    t = train_teacher(base, out_dir / "teacher", resume=resume)
    make_pseudo_labels(base, out_dir / "pseudo_labels", t.final, resume=resume)
    finals: dict[str, Path | None] = {"teacher": t.final}
    for row in rows:
        c = ablation_config(cfg, row)
        s = train_student(c, out_dir / "ablation" / _ROW_DIRS[row],
                          out_dir / "pseudo_labels" if c.student.use_unlabelled else None, resume=resume,
                          register=False)
        finals[row] = s.final
    results = evaluate_checkpoints(cfg, finals)
    if is_main_process():
        atomic_write_json(out_dir / "ablation.json", {"results": results, "rows": {r: ABLATION_ROWS[r] for r in rows},
                                                      **provenance(cfg.seed, cfg.to_dict())})
        note = ("Table 9 ablation (student rows; teacher and horizon_prior for reference). Protocol: least-squares "
                "scale+shift in disparity, scored in disparity; held-out test scenes.\n\n")
        atomic_write_text(out_dir / "ablation.md", note + results_table(results))
    return results
