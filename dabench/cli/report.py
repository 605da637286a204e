"""`dabench report`: a static HTML report of the results store (tables, sample galleries, raw records)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dabench.cli._app import app


@app.command("report")
def report_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="output folder: index.html, assets/ (gallery PNGs), records/"),
    results: Optional[Path] = typer.Option(None, "--results", help="results directory (default: $DABENCH_RESULTS "
                                           "or $DABENCH_HOME/results)"),
    samples: int = typer.Option(8, "--samples", help="gallery rows per model × dataset, worst AbsRel first"),
    predict: bool = typer.Option(False, "--predict", help="run the records' models again for samples whose "
                                 "prediction was not logged by `dabench run --log-samples`"),
    device: str = typer.Option("cpu", "--device", help="device for --predict"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where the datasets are (default: "
                                             "$DABENCH_DATA, else the folder the run read, if it exists here)"),
):
    """Write a self-contained static HTML report (DIR/index.html, openable from disk): per suite a
    sortable table of every record (with 95 % intervals when recorded, values linking to the raw
    records), and per model × dataset a gallery image | ground truth | prediction | error map, worst
    AbsRel first, with each sample's metrics.

    Example: dabench report --out report/ --predict
    """
    from dabench.errors import ConfigError, MissingFileError
    from dabench.provenance import default_results_dir
    from dabench.results.report import generate_report

    if samples < 0:
        raise ConfigError(f"--samples must be >= 0, got {samples}")
    path = Path(results) if results is not None else default_results_dir()
    if not path.exists():
        raise MissingFileError(f"results directory {path} does not exist; run `dabench run --suite zero-shot` "
                               "first or pass --results DIR")
    res = generate_report(out, path, samples=samples, predict=predict, device=device, data_root=data_root)
    for note in res.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {res.index}: {res.records} record(s), {res.galleries} galleries, {len(res.images)} images")
