"""`dabench ls models` and `dabench predict`.

Heavy libraries (torch, timm, cv2, matplotlib) are imported inside the commands.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import List, Optional

import typer

from dabench.cli._app import app
from dabench.cli.ls import ls_app
from dabench.errors import ConfigError, DabenchError, DataError, MissingFileError


@ls_app.command("models")
def ls_models(
    all_: bool = typer.Option(False, "--all", help="Also list the tiny test variants and the baselines."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered models: family, source (dabench or plugin), output space, parameter count.

    Installed plug-ins (entry-point group dabench.models) appear here too.

    Example: dabench ls models --all
    """
    import json

    from rich.table import Table

    from dabench.console import print_table
    from dabench.model_index import model_infos

    infos = model_infos(include_test=all_)  # cached while nothing under dabench/models or the plug-ins changed
    if as_json:
        typer.echo(json.dumps(infos, indent=2))
        return
    table = Table(title="dabench models", caption="also: hf:<folder or hub id>, diffusers:<folder or hub id>; "
                  "--json adds encoder, taps and data_config")
    for col in ("name", "family", "source", "output", "params"):
        table.add_column(col, justify="right" if col == "params" else "left", no_wrap=True)
    table.add_column("description", overflow="fold")
    for i in infos:
        p = i["params"]
        params = "?" if p is None else (f"{p / 1e6:.1f}M" if p >= 1e5 else f"{p:,}")
        output = i["output_space"] + (" (metric)" if i.get("is_metric") else "")
        table.add_row(i["name"], i["family"], i["source"], output, params, i["description"])
    print_table(table)


def colorize(pred, cmap: str = "Spectral_r", space: str = "disparity"):
    """Map a prediction to RGB uint8 as the official demo does: the colormap over min–max normalised
    disparity (metric depth in metres is inverted first), so near is warm (``dabench.viz``)."""
    from dabench.viz import colorize_depth

    return colorize_depth(pred, None, space, cmap=cmap, robust=False)


OUTPUT_SUFFIXES = (".npy", ".png", ".colorbar.png")  # what predict writes per image: DIR/<name><suffix>


def _output_stems(images: list[Path], out: Path) -> list[str]:
    """One distinct output name per image: its stem, else ``stem_1``, ``stem_2``, ... — never a name
    another image already took (``a.png a.jpg a_1.png`` -> a, a_1, a_1_1) nor one whose output file
    would be one of the input images (``predict p/a.png --out p`` must not replace ``a.png``)."""
    inputs = {p.resolve() for p in images}
    used: set[str] = set()
    stems = []
    for p in images:
        base, n = p.stem, 0
        while True:
            stem = base if n == 0 else f"{base}_{n}"
            n += 1
            if stem in used or any((out / f"{stem}{suf}").resolve() in inputs for suf in OUTPUT_SUFFIXES):
                continue
            break
        used.add(stem)
        stems.append(stem)
    return stems


@app.command("predict")
def predict(
    images: List[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...) or folders (searched recursively "
                                        "for image files, like the official run.py).", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registered model name (see `dabench ls models`), "
                                        "hf:<folder or hub id> or diffusers:<folder or hub id>. "
                                        "May be omitted with a dabench .safetensors checkpoint."),
    model_option: Optional[List[str]] = typer.Option(None, "--model-option",
                                                     help="KEY=VALUE for an hf:/diffusers:/plug-in model, repeatable."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="Official .pth or dabench .safetensors weights."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (created)."),
    random_init: bool = typer.Option(False, "--random-init", help="Run without weights (outputs are meaningless)."),
    input_size: Optional[int] = typer.Option(None, "--input-size",
                                             help="Shorter side the network sees (pixels, a multiple of the model's "
                                                  "patch size, e.g. 14); default: the model's "
                                                  "native size (518 for official weights, the training size for "
                                                  "dabench checkpoints)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (autocast)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per forward pass (same-size images are batched)."),
    cmap: str = typer.Option("Spectral_r", "--cmap", help="matplotlib colormap for the PNGs (applied to "
                             "disparity: near = warm with the default, as the official demo)."),
    colorbar: bool = typer.Option(False, "--colorbar", help="Also write DIR/<name>.colorbar.png: the image and "
                                  "the prediction with a colorbar (metres for metric models, else relative "
                                  "disparity)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model first."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Refuse images larger than this many "
                                             "pixels, read from the header before decoding (default 64000000, "
                                             "or $DABENCH_MAX_PIXELS)."),
) -> None:
    """Predict relative depth (or metric depth for metric checkpoints) for images.

    Writes DIR/<name>.npy (float32, the model's output at the image's size: disparity for relative models, metres for metric ones) and DIR/<name>.png (colour-mapped: Spectral_r on disparity, near = warm; with --colorbar also DIR/<name>.colorbar.png with units). <name> is the image's file stem, made unique (a, a_1, ...) and never the name of an input file. Images that are missing, corrupt or above the pixel cap are reported by name, the others are still written, and the exit code is then non-zero.

    Example: dabench predict photo.jpg --model da2_vits14 --checkpoint depth_anything_v2_vits.pth --out preds/

    Example: dabench predict photo.jpg --model hf:depth-anything/Depth-Anything-V2-Small-hf --out preds/

    Example: dabench predict photos/ --model my_student --out preds/   (a folder; a name registered by train/finetune)
    """
    import numpy as np
    from rich.console import Console
    from dabench.progress import progress_bar

    from dabench.data.datasets import read_image
    from dabench.models.inference import native_input_size, predict_batch, resolve_amp_dtype, resolve_device
    from dabench.models.resolve import build_model, parse_model_options, resolve_models
    from dabench.provenance import atomic_write_bytes

    from dabench.data.formats import set_max_pixels
    from dabench.models.inference import check_input_size

    console = Console(stderr=True)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    set_max_pixels(max_pixels)
    check_input_size(input_size)
    images = expand_image_args(images)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is an existing file; predict writes a folder of outputs: pass a folder")
    amp = resolve_amp_dtype(precision)
    dev = resolve_device(device)
    if model is None and checkpoint is None:
        raise ConfigError("give --model NAME (and --checkpoint PATH), or a dabench .safetensors --checkpoint")
    if checkpoint is not None and model is None and checkpoint.suffix != ".safetensors":
        raise ConfigError(f"checkpoint {checkpoint} does not say which model it belongs to (only dabench "
                          ".safetensors files do): pass --model, e.g. --model da2_vits14")
    runs = resolve_models([model] if model else None, checkpoint, random_init, parse_model_options(model_option))
    if len(runs) != 1:
        raise ConfigError(f"dabench predict takes one model; got {', '.join(r.label for r in runs)}")
    run = runs[0]
    if run.random_init:
        console.print(f"[bold yellow]warning:[/] {model} has random weights (--random-init): "
                      "the outputs are meaningless.")
    net, name = build_model(run), run.label
    check_input_size(input_size, net)

    colorize(np.zeros((1, 1)), cmap)  # validate the colormap before any work
    space = getattr(net, "output_space", "disparity")
    net = net.to(dev).eval()
    if compile_model:
        import torch

        net = torch.compile(net)
    out.mkdir(parents=True, exist_ok=True)
    stems = _output_stems(images, out)
    errors: list[str] = []
    written = 0
    import cv2

    with progress_bar(console) as bar:
        task = bar.add_task(f"predict {name}", total=len(images))
        for start in range(0, len(images), batch_size):
            chunk = list(range(start, min(start + batch_size, len(images))))
            loaded = []
            for i in chunk:
                try:
                    loaded.append((i, read_image(images[i])))
                except DabenchError as e:
                    errors.append(e.message)
                    console.print(f"[red]error:[/] {e.message}")
                    bar.advance(task)
            if not loaded:
                continue
            size = input_size or native_input_size(net)
            preds = predict_batch(net, [im for _, im in loaded], input_size=size, device=dev, amp_dtype=amp,
                                  batch_size=batch_size)
            for (i, image), pred in zip(loaded, preds):
                buf = io.BytesIO()
                np.save(buf, pred.astype(np.float32))
                atomic_write_bytes(out / f"{stems[i]}.npy", buf.getvalue())
                ok, png = cv2.imencode(".png", cv2.cvtColor(colorize(pred, cmap, space), cv2.COLOR_RGB2BGR))
                if not ok:  # pragma: no cover - encoding an RGB uint8 array does not fail
                    raise DataError(f"could not encode the PNG for {images[i]}")
                atomic_write_bytes(out / f"{stems[i]}.png", png.tobytes())
                if colorbar:
                    atomic_write_bytes(out / f"{stems[i]}.colorbar.png",
                                       _colorbar_png(image, pred, space, cmap, images[i].name))
                written += 1
                bar.advance(task)
    console.print(f"wrote {written} prediction(s) to {out}")
    if errors:
        raise DataError(f"{len(errors)} of {len(images)} image(s) failed: " + "; ".join(errors))


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def expand_image_args(paths: List[Path]) -> List[Path]:
    """Files as given; folders replaced by the image files under them (recursively, by extension,
    sorted). A folder without images is an error naming it."""
    out: List[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in q.relative_to(p).parts))
            if not found:
                raise MissingFileError(f"folder {p} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        else:
            out.append(p)
    return out


def _colorbar_png(image, pred, space: str, cmap: str, title: str) -> bytes:
    """image | prediction with a colorbar (metres or relative disparity) as PNG bytes."""
    from dabench.viz import colorize_depth, disparity_view, panel_figure, plt

    _, _, (lo, hi) = disparity_view(pred, None, space, robust=False)
    fig = panel_figure([{"title": "image", "rgb": image},
                        {"title": "prediction (near = warm)", "rgb": colorize_depth(pred, None, space, cmap=cmap, robust=False),
                         "colorbar": (lo, hi, space), "cmap": cmap}], title=title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt().close(fig)
    return buf.getvalue()
