"""`dabench data check`, `dabench data show` and `dabench ls datasets`.

Heavy libraries (torch, numpy, cv2) are imported inside the commands so `dabench --help` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dabench.cli._app import app
from dabench.cli.ls import ls_app
from dabench.errors import ConfigError, DabenchError

data_app = typer.Typer(help="Inspect datasets on disk: verify them and render samples.\n\n"
                            "Example: dabench data check nyu --data-root /data", no_args_is_help=True)
app.add_typer(data_app, name="data")

_DATA_ROOT_HELP = "Folder holding the datasets (default: $DABENCH_DATA); each card's root is relative to it."


def _size_kw(size: Optional[str]) -> dict:
    """``--size HxW`` (synthetic sets) -> ``{"size": (H, W)}``."""
    if not size:
        return {}
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like HxW (e.g. 98x126), got {size!r}") from None
    return {"size": (h, w)}


@ls_app.command("datasets")
def ls_datasets(
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=_DATA_ROOT_HELP),
    task: Optional[str] = typer.Option(None, "--task", help="Only depth or segmentation sets."),
) -> None:
    """List the dataset cards, their splits, protocol defaults and whether the data is on disk.

    Example: dabench ls datasets --data-root /data
    """
    from rich.table import Table

    from dabench.console import print_table
    from dabench.data import dataset_available, list_datasets, load_card
    from dabench.data.cards import TASKS, card_splits

    if task is not None and task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    table = Table(title="dabench datasets")
    table.add_column("name", no_wrap=True)
    for col in ("task", "splits", "range (m)", "crop", "alignment", "score", "on disk", "fallback", "origin"):
        table.add_column(col, overflow="fold")
    from dabench import configs

    entries = configs.entries("datasets")
    for name in list_datasets(task=task):
        c = load_card(name)
        rng = "-" if c.get("min_depth") is None else f"{c['min_depth']:g}–{c['max_depth']:g}"
        avail = dataset_available(name, data_root)
        on_disk = "synthetic" if c["reader"] == "synthetic" else ("yes" if avail else "no")
        table.add_row(name, c["task"], ",".join(card_splits(c)), rng, str(c.get("eval_crop") or "-"),
                      str(c.get("alignment") or "-"), str(c.get("score_space") or "-"), on_disk,
                      str(c.get("fallback") or "-"), configs.origin_label(entries.get(name)))
    print_table(table)


@data_app.command("check")
def check(
    name: str = typer.Argument(..., help="Dataset card name (see `dabench ls datasets`)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=_DATA_ROOT_HELP),
    split: Optional[str] = typer.Option(None, "--split", help="Check only this split (default: all splits)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Read only the first N entries of each split."),
    size: Optional[str] = typer.Option(None, "--size", help="Synthetic sets: image size HxW, e.g. 98x126."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Report images/depth maps larger than this "
                                             "many pixels as unreadable (default 64000000, or $DABENCH_MAX_PIXELS)."),
) -> None:
    """Verify a dataset on disk: every split entry present and readable, image/depth shapes consistent, ground truth within the card's depth range (segmentation sets: every image has a label map of its size with ids inside the classes). Prints a summary table; exits 1 when problems are found.

    Example: dabench data check kitti --data-root /data

    Example: dabench data check cityscapes --data-root /data --limit 50
    """
    import numpy as np
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from dabench.console import print_table
    from dabench.data import build_dataset, load_card
    from dabench.data.cards import card_splits, resolve_split
    from dabench.data.formats import set_max_pixels

    set_max_pixels(max_pixels)
    card = load_card(name)
    if card["task"] == "ordinal":
        return _check_pairs(name, data_root, limit)
    if card["task"] == "segmentation":
        return _check_segmentation(card, data_root, split, limit)
    splits = [resolve_split(card, split)] if split else card_splits(card)
    kw = _size_kw(size)
    if card["reader"] == "synthetic" and limit is None:
        limit = 64  # rendering is cheap but not free; the full train split is thousands of scenes
    console = Console()
    table = Table(title=f"dabench data check {name}")
    rows = ("entries", "read", "missing", "unreadable", "image size", "valid pixels", "depth min (m)",
            "depth median (m)", "depth max (m)", f"outside {card['min_depth']:g}-{card['max_depth']:g} m")
    columns: dict[str, list[str]] = {}
    problems: list[str] = []
    lo, hi = float(card["min_depth"]), float(card["max_depth"])
    for sp in splits:
        ds = build_dataset(name, sp, data_root=data_root, limit=limit, skip_missing=True,
                           depth_range=None if card["reader"] != "synthetic" else "card", **kw) \
            if card["reader"] != "synthetic" else build_dataset(name, sp, limit=limit, **kw)
        for entry_name, path in getattr(ds, "missing", []):
            problems.append(f"{sp}: missing {path} (entry {entry_name})")
        sizes: dict[tuple, int] = {}
        n_read = n_bad = 0
        valid_px = total_px = outside = 0
        dmin, dmax, medians = np.inf, -np.inf, []
        with Progress(transient=True, console=console) as prog:
            task = prog.add_task(f"{name}/{sp}", total=len(ds))
            for i in range(len(ds)):
                try:
                    s = ds[i]
                except DabenchError as e:
                    n_bad += 1
                    problems.append(f"{sp}: {e.message}")
                    prog.advance(task)
                    continue
                n_read += 1
                h, w = s["image"].shape[:2]
                sizes[(h, w)] = sizes.get((h, w), 0) + 1
                v = s["valid"]
                d = s["depth"][v]
                valid_px += int(v.sum())
                total_px += v.size
                if d.size:
                    dmin, dmax = min(dmin, float(d.min())), max(dmax, float(d.max()))
                    medians.append(float(np.median(d)))
                    outside += int(((d < lo) | (d > hi)).sum())
                else:
                    problems.append(f"{sp}: entry {s['name']!r} has no valid ground-truth pixel")
                prog.advance(task)
        n_missing = int(getattr(ds, "skipped_missing", 0))
        size_txt = ", ".join(f"{h}x{w}" + (f" ({c})" if len(sizes) > 1 else "") for (h, w), c in sorted(sizes.items()))
        fmt = (lambda x: f"{x:.3g}") if np.isfinite(dmin) else (lambda x: "-")
        columns[sp] = [str(len(ds) + n_missing), str(n_read), str(n_missing), str(n_bad), size_txt or "-",
                       f"{100 * valid_px / total_px:.1f}%" if total_px else "-", fmt(dmin),
                       fmt(float(np.median(medians))) if medians else "-", fmt(dmax),
                       f"{100 * outside / valid_px:.2f}%" if valid_px else "-"]
        extra = getattr(ds, "counts", {})
        if extra:
            console.print(f"{sp}: " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in extra.items()))
    table.add_column("", no_wrap=True)
    for sp in columns:
        table.add_column(sp, justify="right")
    for i, label in enumerate(rows):
        table.add_row(label, *(columns[sp][i] for sp in columns))
    print_table(table, console)
    _finish_check(console, problems)


def _finish_check(console, problems: list[str]) -> None:
    """End of every `data check`: "ok", or the first 20 problems (file names printed verbatim, no rich
    markup) and how many more, then exit 1."""
    if problems:
        console.print(f"[red]{len(problems)} problem(s):[/red]")
        for p in problems[:20]:
            console.print(f"  {p}", markup=False, highlight=False)
        if len(problems) > 20:
            console.print(f"  ... and {len(problems) - 20} more")
        raise typer.Exit(1)
    console.print("[green]ok[/green]")


def _check_pairs(name: str, data_root, limit) -> None:
    """`data check` of an ordinal set (DA-2K): every listed image present and decodable, every point
    inside its image; pairs counted per scene type. Exit 1 on problems."""
    from rich.console import Console
    from rich.table import Table

    from dabench.console import print_table
    from dabench.data import build_dataset

    ds = build_dataset(name, data_root=data_root, limit=limit, skip_missing=True)
    problems = [f"missing {ds.root / m}" for m in ds.missing]
    pairs: dict[str, int] = {}
    images: dict[str, int] = {}
    for i in range(len(ds)):
        try:
            s = ds[i]
        except DabenchError as e:
            problems.append(e.message)
            continue
        images[s["scene"]] = images.get(s["scene"], 0) + 1
        pairs[s["scene"]] = pairs.get(s["scene"], 0) + len(s["pairs"])
    table = Table(title=f"dabench data check {name}")
    for col in ("scene type", "images read", "pairs"):
        table.add_column(col, justify="right" if col != "scene type" else "left")
    for scene in sorted(images):
        table.add_row(scene, str(images[scene]), str(pairs[scene]))
    table.add_row("all", str(sum(images.values())), str(sum(pairs.values())))
    console = Console()
    print_table(table, console)
    _finish_check(console, problems)


def _check_segmentation(card: dict, data_root, split, limit) -> None:
    """`dabench data check` for a segmentation card (the folders and suffixes of its segmentation block)."""
    from rich.console import Console
    from rich.table import Table

    from dabench.console import print_table
    from dabench.data.cards import card_splits, resolve_split
    from dabench.data.datasets import dataset_root
    from dabench.data.segmentation import check_seg_split

    root = dataset_root(card, data_root)
    splits = [resolve_split(card, split)] if split else card_splits(card)
    console = Console()
    table = Table(title=f"dabench data check {card['name']}")
    table.add_column("", no_wrap=True)
    for sp in splits:
        table.add_column(sp, justify="right")
    results = {sp: check_seg_split(card, root, sp, limit) for sp in splits}
    n_classes = card["segmentation"]["num_classes"]

    def sizes(r):
        return ", ".join(f"{h}x{w}" + (f" ({c})" if len(r["sizes"]) > 1 else "")
                         for (h, w), c in sorted(r["sizes"].items())) or "-"

    rows = [("entries", lambda r: str(r["entries"])), ("read", lambda r: str(r["read"])),
            ("missing label map", lambda r: str(r["missing"])), ("unreadable", lambda r: str(r["unreadable"])),
            ("image size", sizes),
            ("labelled pixels", lambda r: f"{100 * r['labelled'] / r['pixels']:.1f}%" if r["pixels"] else "-"),
            (f"classes seen (of {n_classes})", lambda r: str(len(r["ids"])))]
    for label, fn in rows:
        table.add_row(label, *(fn(results[sp]) for sp in splits))
    print_table(table, console)
    problems = [p for sp in splits for p in results[sp]["problems"]]
    _finish_check(console, problems)


@data_app.command("show")
def show(
    name: str = typer.Argument(..., help="Dataset card name (see `dabench ls datasets`)."),
    index: int = typer.Option(0, "--index", "-i", help="Sample index within the split."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    split: Optional[str] = typer.Option(None, "--split", help="Split (default: the card's default split)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=_DATA_ROOT_HELP),
    size: Optional[str] = typer.Option(None, "--size", help="Synthetic sets: image size HxW, e.g. 98x126."),
    colorbar: bool = typer.Option(True, "--colorbar/--no-colorbar", help="Colorbar in metres beside the depth."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip split entries whose files are missing "
                                      "(--index counts the entries present) instead of stopping at the first one."),
) -> None:
    """Write one sample as a PNG figure: image | depth (Spectral_r on 1/depth, near = warm, invalid black, colorbar in metres) | valid mask, plus semantic labels with a class legend when the set has them. Panels keep their real resolution (tiny images are enlarged by a whole factor, never shrunk).

    Example: dabench data show synthetic-outdoor --index 3 --out sample.png

    Example: dabench data show nyu --data-root /data --skip-missing --index 0 --out nyu0.png
    """
    import numpy as np

    from dabench.data import build_dataset
    from dabench.provenance import atomic_write_bytes
    from dabench.viz import disparity_view

    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out} must be a .png file")
    ds = build_dataset(name, split, data_root=data_root, skip_missing=skip_missing, **_size_kw(size))
    if not 0 <= index < len(ds):
        raise ConfigError(f"--index {index} out of range: {name} has {len(ds)} samples in this split")
    s = ds[index]
    valid = np.asarray(s["valid"], dtype=bool)
    _, _, (lo, hi) = disparity_view(s["depth"], valid, "depth")
    panels = [{"title": "image", "rgb": np.asarray(s["image"])},
              {"title": "depth (near = warm, invalid black)", "rgb": depth_panel(s["depth"], valid),
               "colorbar": (lo, hi, "depth") if colorbar else None},
              {"title": f"valid mask (white, {100 * valid.mean():.0f}%)",
               "rgb": np.repeat((valid.astype(np.uint8) * 255)[..., None], 3, -1)}]
    if "labels" in s:
        panels.append(label_panel_with_legend(s["labels"], name))
    data = _figure_png(panels, f"{name} [{getattr(ds, 'split', split) or 'default split'}] #{index}: {s['name']}")
    atomic_write_bytes(out, data)
    typer.echo(f"wrote {out}: {s['name']} ({' | '.join(p['title'] for p in panels)})")


def _figure_png(panels, title) -> bytes:
    import io

    from dabench.viz import panel_figure, plt

    fig = panel_figure(panels, title=title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt().close(fig)
    return buf.getvalue()


def depth_panel(depth, valid):
    """Depth as RGB uint8 in dabench's convention (``dabench.viz``): Spectral_r on 1/depth, near warm,
    invalid black."""
    from dabench.viz import colorize_depth

    return colorize_depth(depth, valid, "depth")


def label_panel_with_legend(labels, dataset: str) -> dict:
    """The labels panel plus a legend of the classes present (names from the synthetic world's
    ``SEMANTIC_CLASSES`` for the synthetic sets, else ``class <id>``)."""
    import numpy as np

    from dabench.viz import colorize_labels, label_palette

    names: tuple[str, ...] = ()
    if dataset.startswith("synthetic"):
        from dabench.data.synthetic import SEMANTIC_CLASSES

        names = SEMANTIC_CLASSES
    palette = label_palette(20)
    present = [int(k) for k in np.unique(labels) if int(k) != 255]
    legend = [(names[k] if k < len(names) else f"class {k}", palette[k]) for k in present]
    if (np.asarray(labels) == 255).any():
        legend.append(("ignore", palette[255]))
    return {"title": "semantic labels", "rgb": colorize_labels(labels), "legend": legend}
