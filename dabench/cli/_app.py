from __future__ import annotations

import typer
from typer.core import TyperGroup

#: flags that also take a value as ``--flag=VALUE``: typer's flags take none, so the value goes to a
#: hidden companion option (``dabench run --log-samples=pred`` → ``--log-samples-mode=pred``)
FLAGS_WITH_VALUE = {"--log-samples": "--log-samples-mode"}


class DabenchGroup(TyperGroup):
    """The ``dabench`` command group; rewrites ``--flag=VALUE`` of ``FLAGS_WITH_VALUE`` before parsing."""

    def parse_args(self, ctx, args):
        out = []
        for a in args:
            flag, eq, value = a.partition("=")
            out.append(f"{FLAGS_WITH_VALUE[flag]}={value}" if eq and flag in FLAGS_WITH_VALUE else a)
        return super().parse_args(ctx, out)


app = typer.Typer(
    cls=DabenchGroup,
    name="dabench",
    help="Benchmark and transfer suite for Depth Anything monocular depth models.\n\n"
    "Example: dabench run --suite zero-shot --model da2_test --random-init --limit 4",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
