"""The ``--log-samples`` arrays: what each mode keeps, what a run's log will weigh, and reading a logged
prediction back safely (``dabench rescore`` and ``dabench sensitivity`` score them again).

Two modes, one file per scored sample (``runs/<run_id>/samples/<model>/<dataset>/<sample_id>.npz``,
compressed, written by ``dabench.eval.records.sample_logger``):

- ``all`` (``--log-samples``): float16 ``pred``, ``aligned`` and ``gt``, bool ``valid`` and the
  ``output_space``/``score_space``/``status`` strings: for looking at (the report's gallery);
- ``pred`` (``--log-samples=pred``): only what re-scoring needs: the raw prediction as float32
  ``pred`` (bit-identical to what the run scored), its ``output_space``, ``status`` and the sample's
  ``name``. Ground truth is never logged in this mode: a re-score reads it from the dataset again.

Logs may come from strangers: ``read_logged_prediction`` checks each array's header (dtype and
shape against the ground truth it will be scored with) before reading its data, never unpickles,
and the log's path is built from the dataset's sample names inside the run folder only.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from dabench.errors import ConfigError, DataError

LOG_MODES = ("all", "pred")
#: bytes per pixel before compression: float32 pred; float16 pred + aligned + gt and a bool mask
BYTES_PER_PIXEL = {"pred": 4, "all": 7}
#: the header of one .npy member is a few hundred bytes; a longer one is not a logged array
MAX_HEADER_BYTES = 10_000


def log_mode(value) -> str | None:
    """``--log-samples`` as a mode: False/None → None (no logs), True/``"all"`` → ``"all"``, ``"pred"``."""
    if value is None or value is False:
        return None
    if value is True:
        return "all"
    if isinstance(value, str) and value in LOG_MODES:
        return value
    raise ConfigError(f"--log-samples={value!r}: valid values are --log-samples (float16 arrays to look at) "
                      f"and --log-samples=pred (float32 raw predictions only, for dabench rescore)")


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} GB"  # pragma: no cover


def estimate_log_bytes(datasets: list[tuple[int, int]], n_models: int, mode: str) -> int:
    """Bytes of a run's logs before compression: ``datasets`` holds (samples, pixels of the first
    sample) per dataset; every model logs every sample."""
    return int(n_models * sum(n * px for n, px in datasets) * BYTES_PER_PIXEL[mode])


def announce_log_size(console, suite, plan, root, limit, skip_missing, overrides: dict, n_models: int, mode,
                      folder) -> int:
    """Print what ``--log-samples`` will write before a run starts (samples, size before compression,
    where); returns the estimate in bytes. Each planned dataset is opened and its first sample read
    (its size stands for the split's)."""
    from dabench.data import build_dataset, load_card
    from dabench.eval.scoring import prepare_sample
    from dabench.eval.suites import resolve_protocol

    mode = log_mode(mode)
    if mode is None:
        return 0
    sizes = []
    for ds, _fb in plan:
        card = load_card(ds)
        proto = resolve_protocol(suite, ds, card, overrides=overrides, in_suite=ds in suite.dataset_names)
        extra = {} if card.get("reader") == "synthetic" else {"depth_range": (proto.min_depth, proto.max_depth)}
        dataset = build_dataset(ds, split=proto.split, data_root=root, limit=limit, skip_missing=skip_missing, **extra)
        n = len(dataset)
        px = int(np.asarray(prepare_sample(dataset[0], proto)["depth"]).size) if n else 0
        sizes.append((n, px))
    total = estimate_log_bytes(sizes, n_models, mode)
    n_samples = sum(n for n, _ in sizes) * n_models
    what = "float32 raw predictions" if mode == "pred" else "float16 pred/aligned/gt arrays"
    console.print(f"--log-samples{'=pred' if mode == 'pred' else ''}: {n_samples} samples ({n_models} model(s) × "
                  f"{len(sizes)} dataset(s)), about {format_bytes(total)} of {what} before compression, "
                  f"under {folder}")
    return total


def _member_header(zf: zipfile.ZipFile, key: str, path: Path) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of member ``key`` read from its .npy header only."""
    from numpy.lib import format as npformat

    try:
        with zf.open(f"{key}.npy") as fh:
            version = npformat.read_magic(fh)
            reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, _fortran, dtype = reader(fh, max_header_size=MAX_HEADER_BYTES)
    except KeyError:
        raise DataError(f"{path}: no {key!r} array in this --log-samples file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: unreadable {key!r} array ({e})") from None
    return tuple(shape), dtype


def read_logged_prediction(path: str | Path, shape: tuple[int, ...], name: str) -> tuple[np.ndarray, str | None]:
    """The raw prediction logged for sample ``name`` at ``path`` (float32 from ``--log-samples=pred``,
    float16 from plain ``--log-samples``) and the ``output_space`` it records (None if absent). ``shape``
    is the ground truth's: a ``pred`` of another shape or dtype is refused from its header, before its
    data is read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no logged prediction for sample {name!r}; was the run made with "
                        "--log-samples=pred?")
    try:
        with zipfile.ZipFile(path) as zf:
            pshape, dtype = _member_header(zf, "pred", path)
            if dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
                raise DataError(f"{path}: 'pred' is {dtype}; a logged prediction is float32 or float16")
            if pshape != tuple(shape):
                raise DataError(f"{path}: the logged prediction is {pshape}, the ground truth of {name!r} is "
                                f"{tuple(shape)}; were they made by another crop or dataset?")
        with np.load(path, allow_pickle=False) as z:
            logged_name = str(z["name"]) if "name" in z.files else None
            if logged_name is not None and logged_name != name:
                raise DataError(f"{path}: logged for sample {logged_name!r}, not {name!r}")
            pred = np.asarray(z["pred"])
            space = str(z["output_space"]) if "output_space" in z.files else None
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a --log-samples .npz file ({e})") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: unreadable --log-samples file ({e})") from None
    return pred, space
