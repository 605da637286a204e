"""`dabench paper --out DIR`: every table of the paper's layouts (from ``dabench/configs/published``)
with the stored own results next to the published rows, figures (per-dataset bar charts,
parameters vs AbsRel, a qualitative grid) as PNG and PDF, and ``index.md`` linking everything.

Works from whatever records exist: with none it still writes the published tables and says so.
Own records join a paper table when their suite is one the table names, or when their task is the
table's and their dataset is one of its columns (aliases included). Records no paper table takes
get a dabench-only table per suite.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dabench.provenance import atomic_write_text, git_commit, now_iso
from dabench.results.published import PublishedTable, load_published
from dabench.results.tables import (ComparisonTable, build_table, load_suite_spec, to_csv, to_latex,
                                    to_markdown)


@dataclass
class PaperOutput:
    out_dir: Path
    index: Path
    tables: list[tuple[str, ComparisonTable, dict[str, Path]]] = field(default_factory=list)
    figures: list[tuple[str, list[Path]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    own_records: int = 0
    protocol_groups: dict[str, str] = field(default_factory=dict)  # table title -> protocol group (figures)


# What AbsRel means in a table of each task: params-vs-AbsRel panels never mix two of them.
PROTOCOL_GROUPS = {"relative": "relative depth, scale & shift aligned", "metric": "metric depth, no alignment",
                   "segmentation": "segmentation"}


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def records_for_table(records: list[dict], table: PublishedTable) -> list[dict]:
    """The own records that belong in a paper table (see the module docstring)."""
    out = []
    for r in records:
        if r.get("status", "ok") != "ok":
            continue  # paper tables show numbers; `dabench results ls` lists skipped runs
        if r.get("suite") in table.match_suites:
            out.append(r)
        elif (r.get("task") in table.match_tasks or r.get("suite") in table.match_tasks) \
                and table.canonical_dataset(str(r.get("dataset"))) is not None:
            out.append(r)
    return out


def _write_table(table: ComparisonTable, stem: Path) -> dict[str, Path]:
    paths = {}
    for fmt, fn, ext in (("md", to_markdown, "md"), ("latex", to_latex, "tex"), ("csv", to_csv, "csv")):
        p = stem.with_suffix(f".{ext}")
        atomic_write_text(p, fn(table))
        paths[fmt] = p
    return paths


def generate_paper(out_dir: str | os.PathLike, results: str | os.PathLike | None = None, *,
                   figures: bool = True, grid: bool = True, grid_samples: int = 4, device: str = "cpu",
                   published_dir: str | os.PathLike | None = None,
                   grid_models: list[str] | None = None, grid_colorbar: bool = False) -> PaperOutput:
    """Write tables, figures and ``index.md`` under ``out_dir``; returns what was written.
    ``grid_models``: own model names (fnmatch patterns) whose predictions the qualitative grid
    shows side by side (default: the first model that can be rebuilt); ``grid_colorbar``: a colorbar
    (metres, or relative disparity) beside every depth picture of the grid."""
    from dabench.results.store import latest_records, load_records

    from dabench.errors import DataError

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; the paper is a folder (tables/, figures/, index.md)")
    if results is not None and Path(results).is_dir() and (
            out_dir.resolve() == Path(results).resolve() or Path(results).resolve() in out_dir.resolve().parents):
        raise DataError(f"--out {out_dir} is inside the results directory {results}; choose another folder "
                        "(the paper never writes into its input)")
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    records, partial_left_out = [], 0
    if results is not None and Path(results).exists():
        every = load_records(results)
        records = latest_records(every)  # the latest complete record per model/dataset, as `dabench table`
        partial_left_out = len({(r.get("suite"), r.get("model"), r.get("dataset")) for r in every}) - len(records)
    ok_records = [r for r in records if r.get("status", "ok") == "ok"]
    result = PaperOutput(out_dir=out_dir, index=out_dir / "index.md", own_records=len(ok_records))
    if not records:
        result.notes.append(f"No own results were found in `{results}`: the tables show the published numbers "
                            f"only (run `dabench run --suite zero-shot` to add dabench rows).")
    elif not ok_records:
        result.notes.append(f"All {len(records)} records in `{results}` are skipped runs; no own numbers to show.")
    if partial_left_out:
        result.notes.append(f"{partial_left_out} model/dataset pair(s) have only partial (--limit) records; "
                            "papers show complete runs only (`dabench table --include-partial` shows them).")

    placed: set[int] = set()
    for t in load_published(published_dir):
        own = records_for_table(records, t)
        placed.update(id(r) for r in own)
        table = build_table(own, published=[t], metrics=t.metrics, dataset_order=t.datasets,
                            title=f"{t.table}: {t.title}")
        slug = _slug(t.table)
        result.tables.append((f"{t.table}: {t.title}", table, _write_table(table, out_dir / "tables" / slug)))
        task = next((k for k in t.match_tasks if k in PROTOCOL_GROUPS), None)
        result.protocol_groups[f"{t.table}: {t.title}"] = PROTOCOL_GROUPS.get(task, t.table)

    leftover: dict[str, list[dict]] = {}
    for r in ok_records:
        if id(r) not in placed:
            leftover.setdefault(str(r.get("suite")), []).append(r)
    for suite, recs in sorted(leftover.items()):
        spec = load_suite_spec(suite)
        metrics = list(spec.primary_metrics) if spec is not None else None
        order = spec.dataset_names if spec is not None else None
        title = f"Suite {suite} (dabench results; no matching paper table)"
        table = build_table(recs, metrics=metrics, dataset_order=order, title=title)
        if not table.columns:
            result.notes.append(f"Suite {suite}: its records hold no numbers to tabulate.")
            continue
        result.tables.append((title, table, _write_table(table, out_dir / "tables" / f"suite_{_slug(suite)}")))
        task = spec.task if spec is not None else next((r.get("task") for r in recs if r.get("task")), None)
        result.protocol_groups[title] = PROTOCOL_GROUPS.get(task, f"suite {suite}")

    if figures:
        _figures(result, ok_records, grid=grid, grid_samples=grid_samples, device=device, grid_models=grid_models,
                 grid_colorbar=grid_colorbar)
    _write_index(result, results)
    return result


def _figures(result: PaperOutput, records: list[dict], *, grid: bool, grid_samples: int, device: str,
             grid_models: list[str] | None = None, grid_colorbar: bool = False) -> None:
    from dabench.results import figures as figs

    fig_dir = result.out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for title, table, paths in result.tables:
        columns = figs.figure_columns(table)
        if not columns:
            continue
        stem = fig_dir / f"bars_{paths['md'].stem}"
        written = figs.bar_charts(table, None, stem, title=title, columns=columns)
        metrics = ", ".join(dict.fromkeys(c.metric_label for c in columns))
        if written:
            result.figures.append((f"Per-dataset values — {title} ({metrics})", written))
        else:
            result.notes.append(f"Per-dataset values — {title}: no figure, every panel would show a single "
                                "value (the table holds it).")
    scatter, left_out = figs.params_scatter([(result.protocol_groups.get(title, title), t)
                                             for title, t, _ in result.tables], fig_dir / "params_vs_abs_rel")
    if scatter:
        result.figures.append(("Parameters vs AbsRel (per dataset)", scatter))
    elif not left_out:
        result.notes.append("Parameters vs AbsRel: no row has both a parameter count and an AbsRel value.")
    if left_out:
        result.notes.append(f"Parameters vs AbsRel: panels with fewer than {figs.MIN_SCATTER_MODELS} models with a "
                            f"parameter count are left out ({'; '.join(left_out)}); their values are in the tables.")
    if not grid:
        result.notes.append("Qualitative grid: not requested (--no-grid).")
        return
    written, note = qualitative_grid_for_records(records, fig_dir / "qualitative_grid", grid_samples, device,
                                                 models=grid_models, colorbar=grid_colorbar)
    if written:
        result.figures.append((f"Qualitative grid — {note}", written))
    else:
        result.notes.append(f"Qualitative grid skipped: {note}")


def load_record_model(record: dict):
    """Rebuild the model a record was produced with (through the one model resolver,
    ``dabench.models.resolve``): its checkpoint when the file exists, a weight-free baseline, an
    ``hf:``/``diffusers:`` model, or a random-init network rebuilt from the record's seed.
    Returns (model, description); raises ``DabenchError`` when the model cannot be rebuilt."""
    from dabench.errors import CheckpointError
    from dabench.models import MODELS, is_baseline
    from dabench.models.resolve import build_model, run_from_record

    run = run_from_record(record)
    name = run.arch or run.label
    config = record.get("config") or {}
    seed = int(record.get("seed", config.get("seed")) or 0)
    if run.source in ("hf", "diffusers"):
        return build_model(run, seed), f"{run.label} ({run.source})"
    if run.checkpoint:
        if not Path(run.checkpoint).is_file():
            raise CheckpointError(f"{name}: checkpoint {run.checkpoint} named by the record is not on this machine")
        if run.arch is not None and run.arch not in MODELS:
            run.arch = None  # rebuild from the checkpoint's own metadata
        try:
            return build_model(run, seed), f"{name}, checkpoint {Path(run.checkpoint).name}"
        except CheckpointError:
            if run.arch is None and name in MODELS:
                run.arch = name
                return build_model(run, seed), f"{name}, checkpoint {Path(run.checkpoint).name}"
            raise
    if name not in MODELS:
        raise CheckpointError(f"{name}: not a registered model and the record names no checkpoint")
    if is_baseline(name):
        return build_model(run, seed), f"{name} (weight-free baseline)"
    if run.random_init:  # as dabench run: the weights are a function of the seed
        return build_model(run, seed), f"{name} (random init, seed {seed}: an untrained network)"
    raise CheckpointError(f"{name}: the record names no checkpoint and is not a random-init run")


def _grid_samples(record: dict, n: int):
    from dabench.data import build_dataset
    from dabench.errors import DabenchError
    from dabench.provenance import data_root

    ds = str(record.get("dataset"))
    try:
        dataset = build_dataset(ds, limit=n, data_root=data_root())
        if len(dataset) > 0:
            return ds, [dataset[i] for i in range(min(n, len(dataset)))]
    except (DabenchError, OSError):
        pass
    dataset = build_dataset("synthetic-indoor", split="test", limit=n)
    return "synthetic-indoor", [dataset[i] for i in range(min(n, len(dataset)))]


GRID_MODELS = 4  # prediction columns of the default qualitative grid


def qualitative_grid_for_records(records: list[dict], stem, n: int = 4, device: str = "cpu",
                                 models: list[str] | None = None, colorbar: bool = False):
    """Without ``models``: try the records' models in order (checkpoints first, then baselines, then
    random-init networks; the best AbsRel first within each) and draw the first ``GRID_MODELS`` that
    load side by side. With ``models`` (fnmatch patterns on the records' model names): one prediction
    column per matching model. Either way on the samples of the first one's dataset. Returns
    (written paths, description) or (None, why it was skipped)."""
    import fnmatch

    from dabench.errors import DabenchError

    if not records:
        return None, "no own records to take a model from."
    def _rank(r):  # a trained checkpoint first, then weight-free baselines, random-init networks last
        if r.get("checkpoint"):
            return 0
        try:
            from dabench.models import is_baseline

            return 1 if is_baseline(str(r.get("arch") or r.get("model"))) else 2
        except Exception:  # noqa: BLE001 - unknown model: try it last
            return 3

    if models:
        order = [r for pat in models for r in records if fnmatch.fnmatchcase(str(r.get("model")), pat)]
        if not order:
            names = ", ".join(sorted({str(r.get("model")) for r in records}))
            return None, f"--grid-models {', '.join(models)} matched no record (models: {names})."
    else:
        def _score(r):  # within a rank, the model with the best AbsRel first (a flat constant shows little)
            v = (r.get("metrics") or {}).get("abs_rel")
            return v if isinstance(v, (int, float)) else float("inf")

        order = sorted(records, key=lambda r: (_rank(r), _score(r)))
    reasons, tried, loaded = [], set(), []
    for rec in order:
        if rec.get("model") in tried:
            continue
        tried.add(rec.get("model"))
        try:
            model, desc = load_record_model(rec)
        except (DabenchError, ImportError) as e:
            reasons.append(str(e))
            continue
        loaded.append((rec, model, desc))
        if not models and len(loaded) == GRID_MODELS:
            break
    if not loaded:
        return None, "no record's model could be loaded (" + "; ".join(reasons[:3]) + ")."
    from dabench.models.inference import predict_batch
    from dabench.results import figures as figs

    ds, samples = _grid_samples(loaded[0][0], n)
    preds, spaces = {}, {}
    for rec, model, desc in loaded:
        input_size = (rec.get("protocol") or {}).get("input_size")  # None: the model's own size
        label = str(rec.get("model"))
        preds[label] = predict_batch(model, [s["image"] for s in samples], input_size=input_size, device=device)
        spaces[label] = getattr(model, "output_space", "disparity")
    title = ", ".join(desc for _, _, desc in loaded) + f" on {ds}"
    if reasons:
        title += f" ({len(reasons)} model(s) could not be rebuilt)"
    return figs.qualitative_grid(samples, preds, spaces, stem, title, colorbar=colorbar), title


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


def _write_index(result: PaperOutput, results) -> None:
    base = result.out_dir
    lines = ["# dabench: paper tables and figures", "",
             f"Generated {now_iso()} by dabench (commit `{git_commit() or 'unknown'}`) from results in "
             f"`{results}` ({result.own_records} own record(s) with numbers).", "",
             "Own rows are labelled `<model> (dabench)`; every published row carries a footnote naming its "
             "source table. Best value per column in **bold**, second <u>underlined</u>.", ""]
    for note in result.notes:
        lines += [f"> {note}", ""]
    lines += ["## Tables", ""]
    for title, table, paths in result.tables:
        links = " · ".join(f"[{label}]({_rel(paths[k], base)})"
                           for k, label in (("md", "Markdown"), ("latex", "LaTeX"), ("csv", "CSV")))
        body = to_markdown(ComparisonTable("", table.columns, table.rows, table.footnotes, table.notes))
        lines += [f"### {title}", "", links, "", body]
    lines += ["## Figures", ""]
    if not result.figures:
        lines += ["No figures were written.", ""]
    for title, paths in result.figures:
        png = next((p for p in paths if p.suffix == ".png"), None)
        pdf = next((p for p in paths if p.suffix == ".pdf"), None)
        lines += [f"### {title}", ""]
        if png is not None:
            lines += [f"![{title}]({_rel(png, base)})", ""]
        lines += [" · ".join(f"[{p.suffix[1:].upper()}]({_rel(p, base)})" for p in (png, pdf) if p), ""]
    atomic_write_text(result.index, "\n".join(lines).rstrip() + "\n")
