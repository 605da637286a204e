"""`dabench finetune metric|seg`: fine-tune heads on a Depth Anything encoder.
`metric` is defined here; `seg` in dabench/cli/finetune_seg.py."""
from __future__ import annotations

import typer

from dabench.cli._app import app

finetune_app = typer.Typer(
    help="Fine-tune heads on a Depth Anything encoder: metric depth or semantic segmentation.\n\n"
    "Example: dabench finetune metric --dataset synthetic-indoor --head simple --init runs/tiny/student/final.safetensors --preset tiny",
    no_args_is_help=True,
)
app.add_typer(finetune_app, name="finetune")
