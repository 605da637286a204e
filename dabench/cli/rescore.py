"""`dabench rescore` (a run's logged predictions under another suite's protocol, no model) and
`dabench sensitivity` (the same predictions under several protocols: table, JSON, rank figure)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dabench.cli._app import app

RunOpt = typer.Option(..., "--run", help="a run id (dabench results ls --history) or a runs/<id> folder; the run "
                      "must have been made with --log-samples=pred")
ResultsOpt = typer.Option(None, "--results", "-o", help="results directory holding the run, and where records go "
                          "(default: the one holding a runs/<id> folder, else $DABENCH_HOME/results)")
DataRootOpt = typer.Option(None, "--data-root", help="datasets root for the ground truth (default: the folder the "
                           "run read, if it exists here, else $DABENCH_DATA)")
InputSizeOpt = typer.Option(None, "--input-size", help="the --input-size a direct run of the suite would get")
FlipOpt = typer.Option(None, "--flip-tta/--no-flip-tta", help="the --flip-tta a direct run of the suite would get")
PrecisionOpt = typer.Option("fp32", "--precision", "--amp", help="the --precision a direct run of the suite would "
                            "use: fp32 | bf16 | fp16")
MismatchOpt = typer.Option(False, "--allow-inference-mismatch",
                           help="score the predictions even if the suite would have run the model differently "
                                "(input size, flip TTA, precision); the records say how")


@app.command("rescore")
def rescore_cmd(
    run: str = RunOpt,
    suite: str = typer.Option(..., "--suite", "-s", help="suite name (dabench ls suites) or path to a suite YAML"),
    results: Optional[Path] = ResultsOpt,
    data_root: Optional[Path] = DataRootOpt,
    input_size: Optional[int] = InputSizeOpt,
    flip_tta: Optional[bool] = FlipOpt,
    precision: str = PrecisionOpt,
    allow_inference_mismatch: bool = MismatchOpt,
    bootstrap: Optional[int] = typer.Option(None, "--bootstrap", help="bootstrap resamples of the 95% CIs (default: "
                                            "the run's)"),
) -> None:
    """Score a run's logged predictions under another suite's protocol, without loading any model.

    Alignment, score space, crops, depth ranges, floors, alignment_max_res and metrics are the
    suite's; the ground truth is read again from the datasets the run used. The records equal a
    direct `dabench run --suite SUITE` on the same samples, carry `rescored_from: <run id>`, and go
    to the results store under a new run id. If the suite would have run the model differently
    (input size, flip TTA, precision) it refuses, naming both, unless --allow-inference-mismatch.

    Example: dabench run --suite synthetic -m horizon_prior,constant --log-samples=pred

    Example: dabench rescore --run 20261204T232853Z-ab88c6 --suite marigold
    """
    from rich.console import Console

    from dabench.eval.rescore import rescore_run

    res = rescore_run(run, suite, results_dir=results, data_root=data_root, input_size=input_size, flip_tta=flip_tta,
                      precision=precision, allow_inference_mismatch=allow_inference_mismatch, bootstrap=bootstrap,
                      print_table=True, table_console=Console())
    typer.echo(f"rescored run {res.rescored_from} under {res.records[0]['suite']}: {len(res.records)} record(s), "
               f"run {res.run_id}")


@app.command("sensitivity")
def sensitivity_cmd(
    run: str = RunOpt,
    suites: Optional[str] = typer.Option(None, "--suites", help="comma-separated suites (names or YAML paths) to "
                                         "score the predictions under; two or more"),
    all_presets: bool = typer.Option(False, "--all-presets", help="every built-in preset that scores one of the "
                                     "run's datasets"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: <results>/sensitivity/<run id>/, "
                                       "which dabench report shows)"),
    results: Optional[Path] = ResultsOpt,
    data_root: Optional[Path] = DataRootOpt,
    input_size: Optional[int] = InputSizeOpt,
    flip_tta: Optional[bool] = FlipOpt,
    precision: str = PrecisionOpt,
    allow_inference_mismatch: bool = MismatchOpt,
) -> None:
    """Score the same logged predictions under each protocol and show how much the protocol moves the
    numbers: a table (rows = models, columns = protocol × primary metric, one per dataset),
    sensitivity.json (every value, the ranks, and rank_agreement[a][b]: Kendall τ between the model
    rankings under protocols a and b, per dataset and overall) and a figure of each model's rank
    under each protocol (crossing lines = ranking flips).

    Example: dabench sensitivity --run 20261204T232853Z-ab88c6 --suites synthetic,marigold

    Example: dabench sensitivity --run runs/20261204T232853Z-ab88c6 --all-presets
    """
    from rich.console import Console

    from dabench.results.sensitivity import default_out_dir, print_tables, run_sensitivity, write_sensitivity

    names = [s.strip() for s in (suites or "").split(",") if s.strip()]
    sens = run_sensitivity(run, names or None, all_presets=all_presets, results_dir=results, data_root=data_root,
                           input_size=input_size, flip_tta=flip_tta, precision=precision,
                           allow_inference_mismatch=allow_inference_mismatch)
    console = Console()
    print_tables(sens, console)
    for note in sens.notes:
        typer.echo(f"note: {note}")
    paths = write_sensitivity(sens, out if out is not None else default_out_dir(run, results))
    typer.echo(f"wrote {paths['json']}, {paths['markdown'].name} and {paths['figure'].name}")
