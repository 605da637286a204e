"""Tables never lose a column: full width off a terminal (files, pipes, CI logs), folded on a narrow terminal."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dabench.console import fold_table, print_table

REPO = Path(__file__).resolve().parents[1]


def _wide_table(n: int = 12) -> Table:
    t = Table(title="wide")
    t.add_column("model", no_wrap=True)
    for j in range(n):
        t.add_column(f"dataset{j:02d} metric{j:02d}", justify="right", no_wrap=True)
    for name in ("alpha_model", "beta_model"):
        t.add_row(name, *[f"{j + 0.123:.3f}" for j in range(n)])
    return t


def _headers(text: str) -> list[str]:
    return [c.strip() for line in text.splitlines() if line.startswith("┃") for c in line.strip("┃").split("┃")]


def test_off_terminal_prints_full_width():
    buf = io.StringIO()
    console = Console(file=buf, width=80)  # a file: not a terminal, rich assumes 80 columns
    assert not console.is_terminal
    print_table(_wide_table(), console)
    out = buf.getvalue()
    for j in range(12):
        assert f"dataset{j:02d} metric{j:02d}" in out
    assert "11.123" in out  # the last column's values too
    assert max(len(line) for line in out.splitlines()) > 80
    assert console.width == 80  # the console is left as it was


def test_narrow_terminal_folds_into_several_tables():
    buf = io.StringIO()
    console = Console(file=buf, width=70, force_terminal=True, color_system=None)
    print_table(_wide_table(), console)
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 70
    heads = _headers(out)
    assert [h for h in heads if h.startswith("dataset")] == [f"dataset{j:02d} metric{j:02d}" for j in range(12)]
    parts = heads.count("model")
    assert parts >= 3 and out.count("(continued)") == parts - 1
    assert out.count("alpha_model") == parts  # every part repeats the label column and keeps every row


def test_fold_keeps_label_columns_and_order():
    console = Console(file=io.StringIO(), width=50)
    parts = fold_table(_wide_table(5), 50, console, keep=1)
    assert len(parts) > 1
    assert all(p.columns[0].header == "model" for p in parts)
    assert [c.header for p in parts for c in p.columns[1:]] == [f"dataset{j:02d} metric{j:02d}" for j in range(5)]
    assert [len(p.columns[0]._cells) for p in parts] == [2] * len(parts)


def test_piped_run_keeps_every_dataset_metric_column(tmp_path):
    """`dabench run --suite zero-shot` through a pipe (80 columns as rich assumes) shows every evaluated
    dataset × primary metric column."""
    from dabench.eval.suites import load_suite
    from dabench.results.frame import arrow, dataset_display, metric_info

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TERMINAL_WIDTH")}
    env.update(DABENCH_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "dabench", "run", "--suite", "zero-shot", "--limit", "2"],
                          env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "home" / "results").rglob("*.json")
               if "runs" not in p.parts]
    datasets = sorted({r["dataset"] for r in records if r.get("status") == "ok"})
    assert set(datasets) == {"synthetic-indoor", "synthetic-outdoor"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("┃")]
    assert len(lines) == 2  # one header row per line: nothing wrapped
    top, bottom = ([c.strip() for c in line.strip("┃").split("┃")] for line in lines)
    columns = set(zip(top, bottom))
    for d in datasets:
        for m in load_suite("zero-shot").primary_metrics:
            info = metric_info(m)
            assert (dataset_display(d), info["display"] + arrow(info["higher_is_better"])) in columns, (d, m)
