"""Checks on a stranger's transformers/diffusers snapshot folder *before* a library builds from it.

transformers and diffusers trust their folders: a config.json nested too deeply crashes the JSON
reader, one with ``num_hidden_layers: 10**7`` builds modules for hours, one describing far more
parameters than its weights hold initialises the missing ones at full size (terabytes for
``hidden_size: 10**9``), a damaged ``.safetensors`` header raises the library's own error, and a
processor ``size`` of 100000×100000 resizes every image to 10 gigapixels. Here each JSON file is
read with a size cap into a JSON object, safetensors headers are read (headers only: no tensor
data) to count the elements the weights hold, and the model the config describes is counted on the
``meta`` device (no memory) and must not need more parameters than the weights provide.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dabench.errors import ConfigError, DataError, MissingFileError

MAX_JSON_BYTES = 4 << 20  # a real config.json is a few KiB; model_index.json likewise
#: Layer counts above this are not a depth model (ViT-g has 40 blocks); building them would take hours.
MAX_LAYERS = 1024
#: Parameters the config may describe beyond what the weights hold (biases/buffers initialised fresh).
SPARE_PARAMETERS = 10_000_000


def check_options(scheme: str, location: str, options: dict, valid: dict) -> None:
    """One ConfigError naming any ``--model-option`` of ``scheme:location`` that ``valid`` does not know."""
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"{scheme}:{location}: unknown --model-option {', '.join(unknown)}; "
                          f"valid: {', '.join(valid)}")


def local_folder(scheme: str, location: str, expected: str) -> tuple[Path, bool]:
    """(folder, whether it exists) for ``scheme:location``; a path-like location (``.``, ``/``, ``~``)
    that is not a folder is a MissingFileError saying what was ``expected`` (a bare name is a hub id)."""
    folder = Path(location).expanduser()
    local = folder.is_dir()
    if not local and location.startswith((".", os.sep, "~")):
        raise MissingFileError(f"{scheme}:{location}: folder not found (expected {expected})")
    return folder, local


def weights_sha256(folder: Path, recursive: bool = False) -> str | None:
    """sha256 over the folder's ``*.safetensors`` files (path relative to ``folder`` + content, sorted):
    the weights' identity; None when there are none. ``recursive``: also in sub-folders."""
    files = sorted(folder.rglob("*.safetensors") if recursive else folder.glob("*.safetensors"))
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """``path`` parsed as a JSON object (≤ 4 MiB, not nested too deeply), else one DataError naming it."""
    from dabench.safety import read_bounded

    try:
        data = json.loads(read_bounded(path, what, MAX_JSON_BYTES).decode("utf-8"))  # regular file, capped
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a valid {what} (expected a JSON object: {e})") from None
    except RecursionError:
        raise DataError(f"{path}: not a valid {what} (JSON nested too deeply to read)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a valid {what} (expected a JSON object, got {type(data).__name__})")
    return data


def _walk(obj: Any, key: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)
    else:
        yield key, obj


def check_layer_counts(config: dict, path: Path) -> None:
    """Refuse integer ``*layers*``/``depths`` values above :data:`MAX_LAYERS` (anywhere in ``config``)."""
    for key, value in _walk(config):
        k = key.lower()
        if ("layers" in k or k in ("depths", "depth", "num_blocks")) and isinstance(value, int) \
                and not isinstance(value, bool) and value > MAX_LAYERS:
            raise DataError(f"{path}: {key} = {value} is not a depth model's size (at most {MAX_LAYERS})")


def check_processor_size(config: dict, path: Path) -> None:
    """Refuse processor sizes whose resized image would exceed the pixel cap (``--max-pixels``)."""
    from dabench.data.formats import max_pixels

    cap = max_pixels()
    for key in ("size", "crop_size"):
        size = config.get(key)
        values = ([v for v in size.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
                  if isinstance(size, dict) else [size] if isinstance(size, (int, float)) and not isinstance(size, bool)
                  else [])
        if any(v > 0 and v * v > cap for v in values):
            raise DataError(f"{path}: {key} {size} resizes images above the pixel cap ({cap} pixels; "
                            "--max-pixels raises it)")


def safetensors_elements(files: list[Path]) -> int:
    """Total element count of the tensors in ``files`` (headers only), or one DataError naming a bad file."""
    from safetensors import safe_open

    total = 0
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                for name in fh.keys():
                    n = 1
                    for d in fh.get_slice(name).get_shape():
                        n *= int(d)
                    total += n
        except Exception as e:  # safetensors raises its own SafetensorError (not an OSError) on a bad header
            raise DataError(f"{f}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                            ) from None
    return total


def check_parameters_fit(model_cls, config, weights: int, path: Path) -> None:
    """Count the parameters ``config`` describes on the meta device; refuse more than the weights hold."""
    import torch

    try:
        with torch.device("meta"):
            skeleton = model_cls.from_config(config, trust_remote_code=False)
    except Exception as e:
        raise DataError(f"{path}: the config does not describe a model transformers can build "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    needed = sum(p.numel() for p in skeleton.parameters())
    if needed > weights + SPARE_PARAMETERS:
        raise DataError(f"{path}: the config describes a model with {needed:,} parameters but the weights hold "
                        f"{weights:,}; refused before building it (missing weights would be allocated fresh)")
