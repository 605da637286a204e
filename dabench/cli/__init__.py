"""The ``dabench`` command line. Each job lives in its own module under ``dabench/cli/``;
modules import heavy libraries (torch, mmseg, pandas) inside the commands so ``--help`` is fast."""
from __future__ import annotations

from dabench.cli._app import app
from dabench.cli import ls as _ls  # noqa: F401  (registers `dabench ls`)

for _mod in ("models", "data", "data_shard", "run", "train", "finetune", "finetune_seg", "results", "report",
             "bench", "rescore"):
    __import__(f"dabench.cli.{_mod}")


#: One line per command in ``dabench --help``; each command's own ``--help`` keeps the long text.
SHORT_HELP = {
    "run": "Evaluate models on a suite; one record per (model, dataset), then a table",
    "table": "Comparison table of stored results (optionally beside the published numbers)",
    "regress": "Compare results with a baseline; fail on regressions (--ci: the shipped CI gate)",
    "compare": "Paired difference of two models on the same samples, with CI and p-value",
    "paper": "Regenerate the paper's tables and figures beside the published numbers",
    "report": "Write a static HTML report: sortable tables and worst-first sample galleries",
    "train": "Teacher–student training: teacher, pseudo-labels, student",
    "bench": "Measure dabench's fast paths as ratios to baselines timed in the same run",
    "check": "Verify a dataset on disk: entries present, readable, shapes and ranges consistent",
    "show": "Write one sample as a PNG: image | depth | valid mask (and labels when present)",
    "ablation": "The paper's Table 9: one teacher, four students, each evaluated (AbsRel, δ1)",
    "export": "Write the tidy frame (one row per record × metric) as CSV",
}


def _first_sentence(text: str) -> str:
    para = " ".join((text or "").strip().split("\n\n")[0].split())
    cut = para.find(". ")
    return (para[: cut + 1] if cut > 0 else para).rstrip(".")


def _unset(value) -> bool:
    from typer.models import DefaultPlaceholder

    return value is None or isinstance(value, DefaultPlaceholder)


def _one_line_helps(typer_app) -> None:
    """Give every command and group without a ``short_help`` the first sentence of its help, so the
    command lists of ``--help`` show one line each (the long text stays in the command's own ``--help``)."""
    for info in typer_app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        if _unset(info.short_help):
            info.short_help = SHORT_HELP.get(name) or _first_sentence(info.help or (info.callback.__doc__ or ""))
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        if _unset(group.short_help):
            text = group.help if not _unset(group.help) else (sub.info.help if sub is not None else "")
            group.short_help = SHORT_HELP.get(group.name) or _first_sentence(text if isinstance(text, str) else "")
        if sub is not None:
            _one_line_helps(sub)


_one_line_helps(app)


def main() -> None:
    app()
