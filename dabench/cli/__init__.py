"""The ``dabench`` command line. Each job lives in its own module under ``dabench/cli/``;
modules import heavy libraries (torch, mmseg, pandas) inside the commands so ``--help`` is fast."""
from __future__ import annotations

from dabench.cli._app import app
from dabench.cli import ls as _ls  # noqa: F401  (registers `dabench ls`)

for _mod in ("models", "data", "data_shard", "run", "train", "finetune", "finetune_seg", "results", "report",
             "bench"):
    __import__(f"dabench.cli.{_mod}")


def main() -> None:
    app()
