"""The pictures of one sample in ``dabench report``'s galleries: error maps, the logged or re-run
prediction of a record, and the record's dataset and protocol rebuilt as the run built them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dabench.results.record import Record

ERROR_MAX = 0.5  # error maps: black = 0, brightest = AbsRel ≥ 0.5 (one scale for every sample)
INVALID_GREY = (96, 96, 96)


def path_part(name) -> str:
    """One file-safe path part: safe_name, with '.'/'..' (which safe_name keeps) made plain underscores."""
    from dabench.results.store import safe_name

    s = safe_name(name)
    return s if s.strip(".") else "_" * len(s)


def error_map(pred_score: np.ndarray, gt_score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-pixel AbsRel |p − g| / g (score space); NaN outside ``valid``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(pred_score - gt_score) / gt_score
    return np.where(valid, err, np.nan)


def colorize_error(err: np.ndarray, vmax: float = ERROR_MAX) -> np.ndarray:
    """An error map as RGB uint8 (magma, 0 → black, ≥ ``vmax`` → brightest; invalid grey)."""
    import matplotlib

    from dabench.viz import ERROR_CMAP

    ok = np.isfinite(err)
    rgb = (matplotlib.colormaps[ERROR_CMAP](np.clip(np.where(ok, err, 0) / vmax, 0, 1))[..., :3] * 255 + 0.5)
    rgb = rgb.astype(np.uint8)
    rgb[~ok] = INVALID_GREY
    return rgb


def record_protocol(record: Record):
    from dataclasses import fields

    from dabench.eval.suites import Protocol

    names = {f.name for f in fields(Protocol)}
    return Protocol(**{k: v for k, v in (record.get("protocol") or {}).items() if k in names})


def logged_prediction(record: Record, results_root: Path, name: str, shape: tuple[int, ...], notes: list[str]):
    """(raw prediction, output space) from a ``--log-samples`` ``.npz`` of this record (or of the run it
    was re-scored from, ``dabench rescore``), or None. The file's ``pred`` header (dtype, shape) is checked
    before its data is read (``read_logged_prediction``); a file that fails is noted, not shown."""
    from dabench.errors import DataError
    from dabench.eval.samplelog import read_logged_prediction
    from dabench.results.store import sample_file_name

    paths = [results_root / "runs" / path_part(run_id) / "samples" / path_part(record.get("model"))
             / path_part(record.get("dataset")) / f"{sample_file_name(name)}.npz"
             for run_id in (record.get("run_id"), record.get("rescored_from")) if run_id]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        return None
    try:
        pred, space = read_logged_prediction(path, shape, name)
    except DataError as e:
        notes.append(e.message)
        return None
    return np.asarray(pred, dtype=np.float32), space


class Predictor:
    """Runs a record's model again (``--predict``): rebuilt once, predictions as the runner makes them."""

    def __init__(self, record: dict, device: str):
        from dabench.results.paper import load_record_model

        self.model, self.description = load_record_model(record)
        self.model = self.model.to(device).eval()
        self.device = device
        self.space = getattr(self.model, "output_space", "disparity")

    def __call__(self, image: np.ndarray, protocol) -> np.ndarray:
        from dabench.eval.loop import predict_images

        return predict_images(self.model, [image], protocol.for_model(self.model), self.device)[0]


def rebuild_dataset(record: Record, data_root):
    from dabench.data import build_dataset, load_card
    from dabench.provenance import data_root as resolve_root

    # --data-root, else $DABENCH_DATA, else the folder the run itself read (when it is on this machine)
    root = resolve_root(data_root)
    recorded = (record.get("config") or {}).get("data_root")
    if root is None and recorded and Path(str(recorded)).is_dir():
        root = Path(str(recorded))
    card = load_card(str(record.get("dataset")))
    proto = record.get("protocol") or {}
    extra = {} if card.get("reader") == "synthetic" else {
        "depth_range": (proto.get("min_depth", 1e-3), proto.get("max_depth", 80.0))}
    return build_dataset(str(record.get("dataset")), split=record.get("split") or proto.get("split"),
                         data_root=root, skip_missing=True, **extra)
