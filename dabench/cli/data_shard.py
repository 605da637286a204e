"""`dabench data shard`: pack a folder or list of images into WebDataset tar shards."""
from __future__ import annotations

from pathlib import Path

import typer

from dabench.cli.data import data_app


@data_app.command("shard")
def shard(
    src: str = typer.Argument(..., help="folder:<dir>, list:<file>, or a plain folder path."),
    out: Path = typer.Option(..., "--out", "-o", help="Empty folder for the shards (shard-000000.tar, ...)."),
    maxcount: int = typer.Option(1000, "--maxcount", min=1, help="Images per shard."),
    quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG quality for non-JPEG inputs "
                                "(JPEGs are copied byte for byte)."),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="Read images that are symlinks "
                                         "leading outside the folder (refused by default)."),
) -> None:
    """Write WebDataset shards from a folder or list of images, for `wds:` training sources.

    Example: dabench data shard folder:/data/unlabelled --out /data/shards  (then train with
    data.unlabelled=[dict(name='wds:/data/shards/shard-{000000..000009}.tar')])
    """
    from dabench.data.sources import build_image_source, is_image_source, write_shards
    from dabench.errors import ConfigError

    name = src if is_image_source(src) else f"folder:{src}"
    if name.startswith("wds:"):
        raise ConfigError("the source is already WebDataset shards; give folder:<dir> or list:<file>")
    source = build_image_source(name, follow_symlinks=follow_symlinks)
    if len(source) == 0:
        raise ConfigError(f"{src} holds no images ({', '.join(('.png', '.jpg', '.jpeg', '.bmp', '.webp'))})")
    shards = write_shards(source, out, maxcount=maxcount, quality=quality)
    last = len(shards) - 1
    typer.echo(f"wrote {len(source)} images in {len(shards)} shards: wds:{out}/shard-{{000000..{last:06d}}}.tar")
