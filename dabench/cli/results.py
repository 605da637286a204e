"""`dabench results ls|export`, `dabench table`, `dabench paper`, `dabench regress`: everything that reads
the results store (records written by `dabench run` and the fine-tuning commands)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dabench.cli._app import app
from dabench.cli.ls import ls_app  # noqa: F401

results_app = typer.Typer(
    help="Inspect the results store (one JSON record per suite × model × dataset).\n\n"
    "Example: dabench results ls --suite zero-shot",
    no_args_is_help=True,
)
app.add_typer(results_app, name="results")

ResultsOpt = typer.Option(None, "--results", help="results directory or record file (default: $DABENCH_RESULTS "
                          "or $DABENCH_HOME/results)")


def _results_path(results: Optional[Path]) -> Path:
    from dabench.errors import MissingFileError
    from dabench.provenance import default_results_dir

    path = Path(results) if results is not None else default_results_dir()
    if not path.exists():
        raise MissingFileError(f"results directory {path} does not exist; run `dabench run --suite zero-shot` "
                               f"first or pass --results DIR")
    return path


def _split(values: Optional[List[str]]) -> Optional[list[str]]:
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


@results_app.command("ls")
def results_ls(
    results: Optional[Path] = ResultsOpt,
    suite: Optional[str] = typer.Option(None, help="only this suite"),
    model: Optional[List[str]] = typer.Option(None, "--model", help="only these models (glob patterns, repeatable)"),
    fmt: str = typer.Option("table", "--format", help="table | csv | json"),
    history: bool = typer.Option(False, "--history", help="list the runs (run id, date, suite, models, "
                                 "datasets, limit, complete/partial) instead of the latest records"),
):
    """List result records: suite, model, dataset, status, headline metrics, samples (partial runs
    marked), commit, date. With --history: every run kept under <results>/runs/, newest first.

    Example: dabench results ls --suite zero-shot --model 'da2_*'

    Example: dabench results ls --history
    """
    import fnmatch
    import json

    from dabench.errors import ConfigError
    from dabench.results.frame import format_params, format_value, metric_info
    from dabench.results.record import is_complete, selection_of
    from dabench.results.store import list_runs, load_records

    path = _results_path(results)
    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"unknown --format {fmt!r}; choose table, csv or json")
    if history:
        _print_history(list_runs(path), path, fmt, suite, _split(model))
        return
    recs = [r for r in load_records(path) if (suite is None or r.get("suite") == suite)
            and (not model or any(fnmatch.fnmatchcase(str(r.get("model")), p) for p in _split(model)))]
    recs.sort(key=lambda r: (str(r.get("suite")), str(r.get("model")), str(r.get("dataset")), not is_complete(r)))
    if fmt == "json":
        typer.echo(json.dumps([{**r, "_path": str(r.path)} for r in recs], indent=2, default=str))  # _path: the file
        return
    headline = ("abs_rel", "delta1", "rmse", "miou")
    rows = []
    for r in recs:
        m = r.get("metrics") or {}
        shown = ", ".join(f"{metric_info(k)['display']}={format_value(m[k], metric_info(k)['fmt'])}"
                          for k in headline if isinstance(m.get(k), (int, float)))
        samples = (r.get("samples") or {}).get("used")
        if not is_complete(r) and samples is not None:
            samples = f"{samples} (partial, limit {selection_of(r)['limit']})"
        fb = r.get("fallback_for")
        fb = ", ".join(map(str, fb)) if isinstance(fb, (list, tuple)) else fb
        ds = str(r.get("dataset")) + (f" (for {fb})" if fb else "")
        status = r.get("status", "ok") + (f": {r['skip_reason']}" if r.get("skip_reason") else "")
        if fmt == "table" and len(status) > 60:
            status = status[:59] + "…"
        rows.append({"suite": r.get("suite"), "model": r.get("model"), "params": format_params(r.get("model_params")),
                     "dataset": ds, "status": status, "metrics": shown, "samples": samples,
                     "run": r.get("run_id") or "", "commit": (r.get("git_commit") or "")[:12], "date": r.get("date"),
                     "path": str(r.path)})
    if fmt == "csv":
        _write_csv(rows, empty_header="suite")
        return
    if not rows:
        typer.echo(f"no result records in {path}" + (f" for suite {suite!r}" if suite else ""))
        return
    from tabulate import tabulate

    typer.echo(tabulate([{k: v for k, v in r.items() if k != "path"} for r in rows], headers="keys"))
    typer.echo(f"\n{len(rows)} record(s) in {path}")


def _write_csv(rows: list[dict], empty_header: str) -> None:
    """``rows`` as CSV on stdout (columns from the first row; a lone ``empty_header`` column when empty)."""
    import csv
    import sys

    w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else [empty_header])
    w.writeheader()
    w.writerows(rows)


def _print_history(runs: list[dict], path: Path, fmt: str, suite: Optional[str], models: Optional[list]) -> None:
    import fnmatch
    import json

    runs = [r for r in runs if (suite is None or suite in str(r.get("suite", "")).split(","))
            and (not models or any(fnmatch.fnmatchcase(str(m), p) for m in r.get("models") or [] for p in models))]
    rows = [{"run": r.get("run_id"), "date": r.get("date"), "suite": r.get("suite"),
             "models": ", ".join(r.get("models") or []), "datasets": ", ".join(r.get("datasets") or []),
             "limit": r.get("limit"), "selection": {True: "complete", False: "partial"}.get(r.get("complete"), "?"),
             "records": r.get("records"), "finished": "yes" if r.get("finished") else "no (no run.json)"}
            for r in runs]
    if fmt == "json":
        typer.echo(json.dumps(runs, indent=2, default=str))
        return
    if fmt == "csv":
        _write_csv(rows, empty_header="run")
        return
    if not rows:
        typer.echo(f"no runs in {path / 'runs'}")
        return
    from tabulate import tabulate

    typer.echo(tabulate(rows, headers="keys"))
    typer.echo(f"\n{len(rows)} run(s) in {path / 'runs'}")


@results_app.command("export")
def results_export(
    out: Path = typer.Option(..., "--out", "-o", help="CSV file for the tidy frame"),
    results: Optional[Path] = ResultsOpt,
):
    """Write the tidy frame (one row per record × metric: model, task, dataset, metric, value,
    higher_is_better, protocol, commit, date, ...) as CSV.

    Example: dabench results export --out results.csv
    """
    from dabench.provenance import atomic_write_text
    from dabench.results.store import records_dataframe

    from dabench.safety import refuse_out_over_inputs

    refuse_out_over_inputs(out, [_results_path(results)])
    frame = records_dataframe(_results_path(results))
    atomic_write_text(out, frame.to_csv(index=False))
    typer.echo(f"wrote {len(frame)} rows to {out}")


@app.command("table")
def table_cmd(
    suite: Optional[str] = typer.Option(None, help="suite whose records form the table (default: the only suite "
                                        "in the results)"),
    fmt: str = typer.Option("md", "--format", help="md | latex | csv | html"),
    models: Optional[List[str]] = typer.Option(None, "--models", help="own models to show (comma-separated or "
                                               "repeated; glob patterns)"),
    with_published: bool = typer.Option(False, "--with-published", help="add the published rows of the "
                                        "matching paper table(s), each with a source footnote"),
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", help="metric columns (default: the suite's "
                                                "primary metrics; 'all' = every metric of the suite)"),
    datasets: Optional[List[str]] = typer.Option(None, "--datasets", help="dataset columns (default: all)"),
    results: Optional[Path] = ResultsOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write to this file instead of stdout"),
    include_partial: bool = typer.Option(False, "--include-partial", help="also show partial (--limit) records "
                                         "of models without a complete one: marked, never ranked"),
    ci: bool = typer.Option(False, "--ci", help="print each value's 95% bootstrap interval [low, high] "
                            "(CSV: extra ci_low / ci_high columns)"),
):
    """Comparison table: rows = models (own runs and, with --with-published, the paper's rows),
    columns = dataset × metric with ↑/↓, best value bold and second underlined, a parameter
    column and a source footnote per published row. Built from the latest complete record of
    each model and dataset; partial runs only with --include-partial.

    Example: dabench table --suite zero-shot --format latex --with-published

    Example: dabench table --suite synthetic --ci --include-partial
    """
    from dabench.provenance import atomic_write_text
    from dabench.results.tables import render, table_for_suite

    from dabench.provenance import default_results_dir

    from dabench.safety import refuse_out_over_inputs

    path = Path(results) if results is not None else default_results_dir()
    if not with_published:
        path = _results_path(path)
    refuse_out_over_inputs(out, [path])
    table = table_for_suite(path, suite=suite, models=_split(models), with_published=with_published,
                            metrics=_split(metrics), datasets=_split(datasets), include_partial=include_partial,
                            show_ci=ci)
    text = render(table, fmt)
    if out:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


@app.command("regress")
def regress_cmd(
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="baseline results directory or record file "
                                            "(with --ci: default the shipped CI baseline)"),
    current: Optional[Path] = typer.Option(None, "--current", help="current results directory or record file "
                                           "(with --ci: where the CI run writes its records; default a "
                                           "temporary folder)"),
    ci: bool = typer.Option(False, "--ci", help="the CI gate: run the seeded CI suite (suite synthetic, da2_test "
                            "with random weights + horizon_prior, 6 samples, seed 4, CPU) and compare it with "
                            "the shipped baseline"),
    abs_tol: float = typer.Option(None, "--abs-tol", help="absolute tolerance (default 1e-4)"),
    rel_tol: float = typer.Option(None, "--rel-tol", help="relative tolerance, fraction of |baseline| "
                                  "(default 1e-3)"),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="metrics/datasets on one side only "
                                       "are listed but do not fail"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Markdown report file (a JSON report is written "
                                       "next to it with .json)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="JSON report file (default: --out with .json)"),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="instead of comparing, make "
                                         "--baseline hold exactly the records of --current"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the verdict line"),
    allow_different_samples: bool = typer.Option(False, "--allow-different-samples",
                                                 help="compare records that scored different sample sets "
                                                      "(default: refused, exit 2)"),
    alpha: float = typer.Option(0.05, "--alpha", help="significance level of the paired Wilcoxon test"),
):
    """Compare current results with a baseline, per (suite, model, dataset, metric) in each
    metric's direction; exit 1 when any metric is worse than the baseline by more than
    abs_tol + rel_tol·|baseline| and (where per-sample values exist) the paired Wilcoxon test on the
    same samples says it is not noise (p < --alpha), or is missing on one side (unless
    --allow-missing); exit 2 when the two sides scored different samples (unless
    --allow-different-samples); else 0.

    With --ci: runs the seeded CI suite first (``dabench.results.ci``, about a minute on a CPU) and
    compares it with the baseline shipped with dabench; with --update-baseline it rewrites that baseline
    from the run instead.

    Example: dabench regress --ci

    Example: dabench regress --baseline dabench/configs/ci-baseline --current results/ --out report.md
    """
    import tempfile

    from dabench.errors import ConfigError

    if ci:
        from dabench.results.ci import ci_baseline_dir, run_ci_suite

        baseline = baseline if baseline is not None else ci_baseline_dir()
        with tempfile.TemporaryDirectory(prefix="dabench-ci-") as tmp:
            run_to = current if current is not None else Path(tmp)
            from dabench.safety import refuse_out_over_inputs

            refuse_out_over_inputs(run_to, [baseline], flag="--current")
            run_ci_suite(run_to)
            _regress(baseline, run_to, abs_tol, rel_tol, allow_missing, out, json_out, update_baseline, quiet,
                     allow_different_samples, alpha)
        return
    if baseline is None or current is None:
        raise ConfigError("dabench regress needs --baseline and --current (or --ci: run the CI suite and compare "
                          "it with the shipped baseline)")
    _regress(baseline, current, abs_tol, rel_tol, allow_missing, out, json_out, update_baseline, quiet,
             allow_different_samples, alpha)


def _regress(baseline: Path, current: Path, abs_tol, rel_tol, allow_missing, out, json_out, update_baseline, quiet,
             allow_different_samples, alpha) -> None:
    """`dabench regress` once both sides exist: update the baseline, or compare, report and exit."""
    from dabench.results import regress as rg

    if update_baseline:
        written, removed = rg.update_baseline(current, baseline)
        typer.echo(f"baseline {baseline}: wrote {len(written)} record(s), removed {len(removed)} stale record(s)")
        return
    report = rg.regress(baseline, current,
                        abs_tol=rg.DEFAULT_ABS_TOL if abs_tol is None else abs_tol,
                        rel_tol=rg.DEFAULT_REL_TOL if rel_tol is None else rel_tol,
                        allow_missing=allow_missing, allow_different_samples=allow_different_samples,
                        alpha=alpha)
    if json_out is None and out is not None:
        json_out = out.with_suffix(".json")
    from dabench.safety import refuse_out_over_inputs

    refuse_out_over_inputs(out, [baseline, current])
    refuse_out_over_inputs(json_out, [baseline, current], flag="--json")
    rg.write_reports(report, out, json_out)
    typer.echo(report.verdict() if quiet else report.to_markdown(), nl=quiet)
    raise typer.Exit(report.exit_code)


@app.command("compare")
def compare_cmd(
    a: str = typer.Argument(..., help="side A: a model name in the results store, or a results folder / record"),
    b: str = typer.Argument(..., help="side B: a model name in the results store, or a results folder / record"),
    suite: str = typer.Option(..., "--suite", "-s", help="the suite both sides ran"),
    results: Optional[Path] = ResultsOpt,
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", help="metrics (default: the suite's primary)"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap resamples of the CI of the difference"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    alpha: float = typer.Option(0.05, "--alpha", help="significance level of the Wilcoxon test"),
    allow_different_samples: bool = typer.Option(False, "--allow-different-samples",
                                                 help="pair only the samples both sides scored"),
    fmt: str = typer.Option("md", "--format", help="md | csv | json"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write to this file instead of stdout"),
):
    """Two models (or two result folders) on the same samples: per dataset the paired difference of
    each metric, its 95% bootstrap CI and the Wilcoxon signed-rank p-value; the better side is bold
    only where the difference is significant.

    Example: dabench compare da2_vits14 da2_vitb14 --suite zero-shot

    Example: dabench compare runs/a runs/b --suite synthetic --format json --out cmp.json
    """
    from dabench.provenance import atomic_write_text
    from dabench.results.compare import compare, render

    from dabench.safety import refuse_out_over_inputs

    from dabench.provenance import default_results_dir

    refuse_out_over_inputs(out, [results if results is not None else default_results_dir(), Path(a), Path(b)])
    metric_names = _split(metrics)
    if metric_names:
        _check_metric_names(metric_names)
    res = compare(a, b, suite=suite, results=results, metrics=metric_names, resamples=bootstrap, seed=seed,
                  alpha=alpha, allow_different_samples=allow_different_samples)
    text = render(res, fmt)
    if out:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


def _check_metric_names(names: list[str]) -> None:
    from dabench.errors import ConfigError
    from dabench.metrics.registry import list_metrics

    valid = list_metrics()
    bad = [n for n in names if n not in valid and n != "all"]
    if bad:
        raise ConfigError(f"unknown metric(s) {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")


@app.command("paper")
def paper_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="output directory (tables/, figures/, index.md)"),
    results: Optional[Path] = ResultsOpt,
    figures: bool = typer.Option(True, "--figures/--no-figures", help="write the matplotlib figures"),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="the qualitative grid (runs a model on a few samples)"),
    grid_samples: int = typer.Option(4, help="samples in the qualitative grid"),
    device: str = typer.Option("cpu", help="device for the qualitative grid's predictions"),
    grid_models: Optional[List[str]] = typer.Option(None, "--grid-models", help="own models whose predictions "
                                                    "the grid shows side by side (comma-separated or repeated; "
                                                    "glob patterns; default: the first model that can be rebuilt)"),
    grid_colorbar: bool = typer.Option(False, "--grid-colorbar", help="a colorbar beside every depth picture of "
                                       "the grid (metres, or relative disparity)"),
):
    """Regenerate every table of the paper's layouts (Tables 2, 3-4, 5, 7-8, 9, 10, 12) with the stored
    results next to the published numbers, figures as PNG and PDF, and an index.md linking them.

    Example: dabench paper --out paper/ --grid-models horizon_prior,constant
    """
    from dabench.provenance import default_results_dir
    from dabench.results.paper import generate_paper

    path = Path(results) if results is not None else default_results_dir()
    res = generate_paper(out, path, figures=figures, grid=grid, grid_samples=grid_samples, device=device,
                         grid_models=_split(grid_models), grid_colorbar=grid_colorbar)
    for note in res.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {len(res.tables)} tables and {len(res.figures)} figures; index: {res.index}")
