"""`dabench ls ...`: list registered models, metrics, datasets, suites. Commands are added by
the modules that own each registry (models.py adds `ls models`, run.py adds `ls metrics`, ...)."""
from __future__ import annotations

import typer

from dabench.cli._app import app

ls_app = typer.Typer(help="List what dabench knows: models, metrics, datasets, suites.\n\nExample: dabench ls models",
                     no_args_is_help=True)
app.add_typer(ls_app, name="ls")
