"""``DabenchSyntheticSegDataset``: the synthetic world's semantic labels as an mmseg dataset.

Scenes come from :class:`dabench.data.synthetic.SyntheticDataset` (same split seeds as every other
dabench task, so ``split='test'`` scenes are never seen in training). They are rendered once into
the dabench cache in mmseg's standard layout (``img_dir/*.png`` BGR, ``ann_dir/*.png`` uint8 class
ids, 255 = ignore) and then read through mmseg's ordinary ``LoadImageFromFile`` /
``DabenchLoadAnnotations`` pipeline, exactly like Cityscapes or ADE20K files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dabench.errors import ConfigError
from dabench.finetune.seg.mmcv_compat import ensure_mmcv_ops

ensure_mmcv_ops()
from mmseg.datasets import BaseSegDataset  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402

CACHE_VERSION = 1


def _palette(n: int) -> list[list[int]]:
    rng = np.random.default_rng(12345)
    return rng.integers(0, 255, size=(n, 3)).tolist()


def materialise_synthetic(family: str, split: str, num_samples: int, size: tuple[int, int], seed: int,
                          root: str | os.PathLike | None = None) -> Path:
    """Render the scenes to ``<cache>/seg/synthetic-<family>/<split>-n<N>-<H>x<W>-s<seed>/`` (once;
    the directory appears atomically, so concurrent ranks never read a half-written set)."""
    import cv2

    from dabench.data.synthetic import SyntheticDataset
    from dabench.provenance import cache_dir

    h, w = (int(v) for v in size)
    base = Path(root) if root else cache_dir() / "seg"
    target = base / f"synthetic-{family}" / f"{split}-n{int(num_samples)}-{h}x{w}-s{int(seed)}-v{CACHE_VERSION}"
    if (target / "done.json").is_file():
        return target
    ds = SyntheticDataset(family, int(num_samples), (h, w), int(seed), split)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        (tmp / "img_dir").mkdir()
        (tmp / "ann_dir").mkdir()
        for i in range(len(ds)):
            s = ds[i]
            labels = s["labels"]
            if labels.min() < 0 or labels.max() > 255:
                raise ConfigError(f"synthetic labels out of uint8 range in scene {s['name']}")
            cv2.imwrite(str(tmp / "img_dir" / f"{i:06d}.png"), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(tmp / "ann_dir" / f"{i:06d}.png"), labels.astype(np.uint8))
        (tmp / "done.json").write_text(json.dumps({"family": family, "split": split, "num_samples": int(num_samples),
                                                   "size": [h, w], "seed": int(seed)}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@DATASETS.register_module()
class DabenchSyntheticSegDataset(BaseSegDataset):
    """Semantic segmentation on ``synthetic-<family>`` scenes (classes = ``SEMANTIC_CLASSES``).

    Args:
        family: ``outdoor`` (street scenes) or ``indoor`` (rooms).
        split: ``train``, ``val`` or ``test`` (disjoint scene seeds).
        num_samples: number of scenes; size: ``(H, W)`` pixels; seed: split seed offset.
        cache_root: where to render (default ``<DABENCH_HOME>/cache/seg``).
    """

    def __init__(self, family: str = "outdoor", split: str = "train", num_samples: int = 64,
                 size: tuple[int, int] = (84, 84), seed: int = 0, cache_root: str | None = None, **kwargs):
        from dabench.data.synthetic import SEMANTIC_CLASSES

        for key in ("data_root", "data_prefix", "img_suffix", "seg_map_suffix"):
            if key in kwargs:
                raise ConfigError(f"DabenchSyntheticSegDataset renders its own files; do not set {key}")
        root = materialise_synthetic(family, split, num_samples, tuple(size), seed, cache_root)
        self.family, self.split = family, split
        metainfo = dict(classes=tuple(SEMANTIC_CLASSES), palette=_palette(len(SEMANTIC_CLASSES)))
        metainfo.update(kwargs.pop("metainfo", None) or {})
        super().__init__(img_suffix=".png", seg_map_suffix=".png", data_root=str(root),
                         data_prefix=dict(img_path="img_dir", seg_map_path="ann_dir"), metainfo=metainfo,
                         **kwargs)
