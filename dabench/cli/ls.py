"""`dabench ls ...`: list registered models, metrics, datasets, suites. Commands are added by
the modules that own each registry (models.py adds `ls models`, run.py adds `ls metrics`, ...)."""
from __future__ import annotations

import typer

from dabench.cli._app import app

ls_app = typer.Typer(help="List what dabench knows: models, metrics, datasets, suites.\n\nExample: dabench ls models",
                     no_args_is_help=True)
app.add_typer(ls_app, name="ls")


@ls_app.command("configs")
def ls_configs() -> None:
    """Where each kind of shipped configuration lives, the $DABENCH_CONFIG_PATH folders searched first,
    and every user entry (marked when it shadows a shipped one).

    Example: dabench ls configs
    """
    from rich.table import Table

    from dabench import configs
    from dabench.console import print_table

    table = Table(title=f"configuration search path (user folders from ${configs.ENV_VAR} first)")
    for col in ("kind", "shipped folder", "user folders", "user entries"):
        table.add_column(col, overflow="fold")
    for kind, suffix in configs.KINDS.items():
        users = configs.user_dirs(kind)
        mine = ([f"{e.name}" + (" (shadows shipped)" if e.shadows is not None else "")
                 for e in configs.entries(kind).values() if e.origin == "user"] if suffix else [])
        table.add_row(kind, str(configs.shipped_dir(kind)), "\n".join(map(str, users)) or "-", ", ".join(mine) or "-")
    print_table(table)
