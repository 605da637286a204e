from __future__ import annotations

import typer

app = typer.Typer(
    name="dabench",
    help="Benchmark and transfer suite for Depth Anything monocular depth models.\n\n"
    "Example: dabench run --suite zero-shot --model da2_test --random-init --limit 4",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
