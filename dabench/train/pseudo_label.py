"""Stage 2: the teacher labels the unlabelled images once, on clean inputs (paper §3.2).

Labels are relative disparity maps at each image's original size, stored as float16, predicted
with the official inference rules (shorter side resized to ``pseudo_label.input_size``, multiples of 14, output
resized back). They are written as safetensors shards (``shard_00000.safetensors``: key = the
image's global index in the concatenated unlabelled set) plus ``index.json`` naming the teacher
(sha256), the unlabelled sources and the shards. Each shard is written atomically, so a killed run
resumed with ``resume=True`` redoes only the missing shards. Under torchrun, shard ``k`` is made
by rank ``k mod world_size``. Images stream through a DataLoader (``data.num_workers`` workers
decode ahead of the teacher), never all in memory; any source works (``wds:``, ``list:``, ...).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from dabench.errors import CheckpointError, ConfigError, DataError, MissingFileError
from dabench.provenance import atomic_write_json, sha256_file
from dabench.train.common import Sources, StageResult, write_data_record
from dabench.train.checkpoint import fingerprint_diff
from dabench.train.config import TrainingConfig, dump_config
from dabench.train.distributed import barrier, init_distributed

log = logging.getLogger("dabench.train")

INDEX = "index.json"
FORMAT = "dabench.pseudo_labels/2"  # /2: float16 labels; /1 (float32) is still read
FORMATS = ("dabench.pseudo_labels/1", FORMAT)
FP16_MAX = 65504.0


def _shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def pseudo_fingerprint(cfg: TrainingConfig, teacher_ckpt: Path) -> dict:
    from dabench.typed_config import to_dict

    return json.loads(json.dumps({
        "teacher_sha256": sha256_file(teacher_ckpt), "arch": cfg.model.arch,
        "unlabelled": to_dict(cfg.data.unlabelled),
        "input_size": cfg.pseudo_label.input_size or cfg.data.crop_size,
    }, default=str))


def make_pseudo_labels(cfg: TrainingConfig, out_dir: str | Path, teacher_ckpt: str | Path, resume: bool = False) -> StageResult:
    """Label every unlabelled image with the teacher ``teacher_ckpt``; returns the index path in
    ``info['index']``."""
    from dabench.models import create_model
    from dabench.models.checkpoint import META_ARCH, read_metadata
    from dabench.models.inference import predict_batch
    from safetensors.torch import save_file

    out_dir, teacher_ckpt = Path(out_dir), Path(teacher_ckpt)
    if not teacher_ckpt.is_file():
        raise MissingFileError(f"teacher checkpoint {teacher_ckpt} does not exist (run `dabench train teacher` first)")
    dist = init_distributed(cfg.runtime.device)
    unl = Sources(cfg.data.unlabelled, cfg.data.data_root, "unlabelled", keys=("image",))
    n = len(unl)
    fp = pseudo_fingerprint(cfg, teacher_ckpt)
    arch = read_metadata(teacher_ckpt).get(META_ARCH, cfg.model.arch)
    if arch != cfg.model.arch:
        raise CheckpointError(f"teacher {teacher_ckpt} is a {arch!r} model but model.arch is {cfg.model.arch!r}")
    shard_size = cfg.pseudo_label.shard_size
    n_shards = (n + shard_size - 1) // shard_size
    index_path = out_dir / INDEX
    if index_path.is_file():
        old = json.loads(index_path.read_text())
        diffs = fingerprint_diff(old.get("fingerprint", {}), fp)
        if diffs:
            raise CheckpointError(f"{out_dir} holds pseudo-labels made differently: " + "; ".join(diffs)
                                  + " (choose another --out)")
        if not resume:
            raise ConfigError(f"{out_dir} already holds pseudo-labels; pass --resume to continue/reuse them, "
                              "or choose another --out")
        if old.get("complete"):
            log.info("pseudo-labels in %s are complete (%d images)", out_dir, old["num_images"])
            return StageResult("pseudo-label", out_dir, None, {"index": index_path, "num_images": old["num_images"]})
    index = {"format": FORMAT, "dtype": "float16", "fingerprint": fp, "teacher": str(teacher_ckpt), "num_images": n,
             "shard_size": shard_size, "space": "disparity (relative, affine-ambiguous)", "complete": False,
             "shards": [{"file": _shard_name(k), "start": k * shard_size, "stop": min(n, (k + 1) * shard_size)}
                        for k in range(n_shards)]}
    barrier()  # every rank has read the old index before rank 0 rewrites it
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.py")
        write_data_record(out_dir, unlabelled=unl)
        atomic_write_json(index_path, index)
    barrier()
    model = create_model(arch, checkpoint=teacher_ckpt)
    input_size = fp["input_size"]
    bs = cfg.pseudo_label.batch_size
    amp = "bf16" if (cfg.runtime.amp == "bf16" or (cfg.runtime.amp == "auto" and dist.device.type == "cuda")) else None
    todo = [k for k in range(n_shards) if k % dist.world_size == dist.rank and not (out_dir / _shard_name(k)).is_file()]
    log.info("pseudo-labelling %d images in %d shards (%d to do on rank %d)", n, n_shards, len(todo), dist.rank)
    progress = _progress(cfg, dist, n_shards, n_shards - len(todo)) if dist.is_main else None
    # this rank's images, in its shards' order, decoded by DataLoader workers while the teacher runs
    order = [i for k in todo for i in range(k * shard_size, min(n, (k + 1) * shard_size))]
    loader = _image_loader(unl, order, bs, cfg)
    batches = iter(loader)
    pending: list[tuple[int, np.ndarray]] = []
    try:
        for k in todo:
            start, stop = k * shard_size, min(n, (k + 1) * shard_size)
            tensors = {}
            while len(tensors) < stop - start:
                if not pending:
                    pending = next(batches)
                take = [x for x in pending if start <= x[0] < stop]
                if not take:  # the loader follows `order`, so this would be a bookkeeping error
                    raise DataError(f"pseudo-label shard {k}: images arrived out of order")
                pending = [x for x in pending if not (start <= x[0] < stop)]
                idx = [i for i, _ in take]
                preds = predict_batch(model, [im for _, im in take], input_size=input_size, device=dist.device,
                                      amp_dtype=amp, batch_size=bs)
                for i, p in zip(idx, preds):
                    tensors[str(i)] = to_fp16_label(p, i)
            tmp = out_dir / f".{_shard_name(k)}.tmp"
            save_file(tensors, str(tmp), metadata={"teacher_sha256": fp["teacher_sha256"]})
            tmp.replace(out_dir / _shard_name(k))
            if progress is not None:
                progress[0].update(progress[1], advance=1)
    finally:
        batches = loader = None  # drops the loader's workers
        if progress is not None:
            progress[0].stop()
    barrier()
    if dist.is_main:
        index["complete"] = True
        atomic_write_json(index_path, index)
    barrier()
    return StageResult("pseudo-label", out_dir, None, {"index": index_path, "num_images": n})


def to_fp16_label(pred: np.ndarray, index: int) -> torch.Tensor:
    """A teacher prediction as a float16 tensor. The label is relative disparity, used only through
    the affine-invariant loss (scale and shift normalised away), so a map whose maximum would
    overflow float16 is divided by a power of two first (exact, and irrelevant to the loss)."""
    p = np.asarray(pred, dtype=np.float32)
    if not np.isfinite(p).all():
        raise DataError(f"teacher prediction for unlabelled image {index} is not finite")
    peak = float(np.abs(p).max()) if p.size else 0.0
    if peak > FP16_MAX / 2:
        p = p * np.float32(2.0 ** -int(np.ceil(np.log2(peak / (FP16_MAX / 2)))))
    return torch.from_numpy(np.ascontiguousarray(p)).to(torch.float16)


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, src, order):
        self.src, self.order = src, order

    def __len__(self):
        return len(self.order)

    def __getitem__(self, j):
        i = self.order[j]
        return i, np.asarray(self.src.raw(i)["image"])


def _image_loader(unl, order, bs, cfg):
    """(index, image) batches of ``order``, read in order by ``data.num_workers`` workers."""
    from dabench.train.loader import LoaderConfig, quiet_cv2_threads_before_fork

    workers = LoaderConfig(num_workers=cfg.data.num_workers).workers()
    if workers:
        quiet_cv2_threads_before_fork()  # the teacher's inference used cv2 in this process
    kw = dict(prefetch_factor=cfg.data.prefetch_factor, multiprocessing_context="fork") if workers else {}
    return torch.utils.data.DataLoader(_Indexed(unl, order), batch_size=bs, shuffle=False, num_workers=workers,
                                       collate_fn=list, generator=torch.Generator().manual_seed(0), **kw)


def _progress(cfg, dist, total, done):
    if not cfg.runtime.progress:
        return None
    from dabench.progress import progress_bar

    p = progress_bar(unit="shard")
    task = p.add_task("pseudo-label shards", total=total, completed=done, resumed=done)
    p.start()
    return p, task


class PseudoLabels:
    """Read access to a finished pseudo-label directory: ``labels[i]`` is image ``i``'s H×W
    relative disparity (a float32 tensor; stored as float16)."""

    def __init__(self, out_dir: str | Path):
        from safetensors import safe_open

        self.dir = Path(out_dir)
        path = self.dir / INDEX
        if not path.is_file():
            raise MissingFileError(f"no pseudo-labels in {self.dir} ({INDEX} missing; run `dabench train pseudo-label`)")
        self.index = json.loads(path.read_text())
        if self.index.get("format") not in FORMATS:
            raise CheckpointError(f"{path} is not a dabench pseudo-label index")
        if not self.index.get("complete"):
            raise CheckpointError(f"pseudo-labels in {self.dir} are incomplete; resume `dabench train pseudo-label`")
        self.num_images = int(self.index["num_images"])
        self.shard_size = int(self.index["shard_size"])
        self._open = safe_open
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int) -> torch.Tensor:
        k = int(i) // self.shard_size
        if k not in self._handles:
            f = self.dir / self.index["shards"][k]["file"]
            if not f.is_file():
                raise MissingFileError(f"pseudo-label shard {f} is missing")
            self._handles[k] = self._open(str(f), framework="pt")
        return self._handles[k].get_tensor(str(int(i))).float()
