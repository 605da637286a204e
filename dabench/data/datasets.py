"""Dataset classes: one reader per benchmark layout, chosen by the card's ``reader`` field.

``build_dataset`` loads the card, resolves the split and data root and hands them to the reader
registered in ``READERS``. File-based readers list their entries from the split file, check that
every file exists (missing -> ``MissingFileError`` naming the entry, or skipped and counted with
``skip_missing=True``) and read lazily in ``__getitem__``.
"""
from __future__ import annotations

import os

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dabench.data.cards import load_card, per_split, read_split_file, resolve_split, split_file_path
from dabench.errors import ConfigError, DataError, MissingFileError
from dabench.provenance import data_root as _data_root
from dabench.registry import Registry

READERS = Registry("dataset reader")


def build_dataset(name: str, split: str | None = None, data_root=None, limit: int | None = None,
                  skip_missing: bool = False, **kw: Any) -> torch.utils.data.Dataset:
    """The dataset ``name`` (a card in ``datasets/``) for ``split`` (default: the card's).

    ``data_root``: folder holding the real datasets (default ``$DABENCH_DATA``); the card's ``root``
    is relative to it. ``limit``: keep the first N entries. ``skip_missing``: skip (and count in
    ``.skipped_missing``) split entries whose files are absent instead of raising. Extra keywords go
    to the reader (synthetic: ``num_samples``, ``size=(H, W)``, ``seed``, ``sparse``; file readers:
    ``depth_range=(min, max)`` or None to keep the reader's own validity only).
    """
    card = load_card(name)
    if card["task"] == "segmentation":
        raise ConfigError(
            f"dataset {name!r} is a segmentation set read through mmsegmentation, not build_dataset; "
            f"use `dabench finetune seg --dataset {name}` (layout: datasets/{name}.yaml notes)")
    if limit is not None and int(limit) < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    split = resolve_split(card, split)
    reader = READERS.get(card["reader"])
    return reader.from_card(card, split=split, data_root=data_root, limit=limit, skip_missing=skip_missing, **kw)


def dataset_available(name: str, data_root=None) -> bool:
    """True for synthetic sets; for real sets, whether the data root, the card's folder and the
    split files exist (files named in the splits are checked by ``dabench data check``)."""
    card = load_card(name)
    if card["reader"] == "synthetic":
        return True
    if card["task"] == "segmentation":
        root = _data_root(data_root)
        return bool(root and card["root"] and (root / card["root"]).is_dir())
    root = _data_root(data_root)
    if root is None or card["root"] is None or not (root / card["root"]).is_dir():
        return False
    if card.get("annotations") and not (root / card["root"] / card["annotations"]).is_file():
        return False
    return all(split_file_path(card, s).is_file() for s, f in card["split_file"].items() if f)


def dataset_root(card: dict, data_root=None) -> Path:
    """``<data root>/<card root>``; a ``MissingFileError`` naming both when it does not exist."""
    root = _data_root(data_root)
    if root is None:
        raise MissingFileError(
            f"dataset {card['name']!r} needs a data root: pass --data-root DIR or set DABENCH_DATA "
            f"(expected {card['root']}/ inside it)")
    path = root / card["root"]
    if not path.is_dir():
        raise MissingFileError(f"dataset {card['name']!r}: folder {path} does not exist (data root {root})")
    return path


# ----------------------------------------------------------------------------------------
# Synthetic
# ----------------------------------------------------------------------------------------

class _SyntheticReader:
    @staticmethod
    def from_card(card, split, data_root=None, limit=None, skip_missing=False, **kw):
        from dabench.data.synthetic import SyntheticDataset

        allowed = {"num_samples", "size", "seed", "sparse"}
        unknown = set(kw) - allowed
        if unknown:
            raise ConfigError(f"synthetic dataset {card['name']!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"valid: {', '.join(sorted(allowed))}")
        n = kw.get("num_samples")
        n = int(card["num_samples"][split] if n is None else n)
        if limit is not None:
            n = min(n, int(limit))
        size = tuple(kw.get("size") or card.get("size") or (98, 126))
        seed = int(kw.get("seed", card.get("seed", 0)) or 0)
        sparse = bool(kw.get("sparse", card.get("sparse", False)))
        card = dict(card, num_samples=dict(card["num_samples"], **{split: n}), size=list(size), seed=seed, sparse=sparse)
        return SyntheticDataset(card["family"], num_samples=n, size=size, seed=seed, split=split, sparse=sparse, card=card)


READERS.register("synthetic", _SyntheticReader)


# ----------------------------------------------------------------------------------------
# File-based readers
# ----------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One split entry: the files of one sample (absolute paths) and what the split knows."""

    name: str
    image: Path
    depth: tuple[Path, ...]
    intrinsics: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def files(self) -> list[Path]:
        return [self.image, *self.depth]


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 H×W×3 from a PNG/JPEG/...: the header is checked against the pixel cap
    (``dabench.data.formats.max_pixels``) before the image is decoded, once; ``DataError`` naming the
    file when it is too large or cannot be decoded."""
    import cv2

    from dabench.data.formats import decode_image_file

    img = decode_image_file(path, cv2.IMREAD_COLOR, "image file")
    return np.ascontiguousarray(img[..., ::-1])


def _leaves(path: Path, root: Path) -> bool:
    """``path`` lies outside ``root`` lexically (``..``, absolute elsewhere). Symlinks are not resolved:
    a dataset folder may link to another disk."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel)


class FileDepthDataset(torch.utils.data.Dataset):
    """Base class of the readers of real benchmarks. Subclasses implement ``entries(card, split,
    root)`` and ``read_depth(entry) -> (depth, valid)``."""

    def __init__(self, card: dict, split: str, root: Path, entries, limit=None,
                 skip_missing: bool = False, depth_range="card"):
        self.card, self.split, self.root = card, split, Path(root)
        # readers may return (entries, counts), e.g. KITTI's rows without ground truth
        entries, self.counts = entries if isinstance(entries, tuple) else (entries, {})
        if limit is not None:
            entries = entries[: int(limit)]
        kept, self.missing = [], []
        for e in entries:
            outside = [p for p in e.files() if _leaves(p, self.root)]
            if outside:  # a split list naming ../../x: never read files outside the dataset folder
                raise DataError(f"dataset {card['name']!r} split {split!r}: entry {e.name!r} names {outside[0]}, "
                                f"outside the dataset folder {self.root} (split lists hold paths relative to it, "
                                "without '..')")
            missing = [p for p in e.files() if not p.is_file()]
            if missing:
                if not skip_missing:
                    raise MissingFileError(
                        f"dataset {card['name']!r} split {split!r}: entry {e.name!r} lacks file {missing[0]} "
                        f"(pass --skip-missing to skip and count such entries)")
                self.missing.append((e.name, missing[0]))
                continue
            kept.append(e)
        self.entries = kept
        self.skipped_missing = len(self.missing)
        if depth_range == "card":
            depth_range = (float(card["min_depth"]), float(card["max_depth"]))
        self.depth_range = depth_range

    @classmethod
    def from_card(cls, card, split, data_root=None, limit=None, skip_missing=False, depth_range="card", **kw):
        if kw:
            raise ConfigError(f"dataset {card['name']!r}: unknown option(s) {', '.join(sorted(kw))}")
        root = dataset_root(card, data_root)
        return cls(card, split, root, cls.entries(card, split, root), limit=limit, skip_missing=skip_missing,
                   depth_range=depth_range)

    @classmethod
    def entries(cls, card: dict, split: str, root: Path) -> list[Entry] | tuple[list[Entry], dict]:
        raise NotImplementedError

    def read_depth(self, entry: Entry) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def read_sample(self, entry: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(image, depth, valid, intrinsics or None)`` of one entry."""
        image = read_image(entry.image)
        depth, valid = self.read_depth(entry)
        return image, depth, valid, entry.intrinsics

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        e = self.entries[index]
        image, depth, valid, K = self.read_sample(e)
        if image.shape[:2] != depth.shape:
            raise DataError(f"dataset {self.card['name']!r} entry {e.name!r}: image {e.image} is "
                            f"{image.shape[0]}x{image.shape[1]} but depth {e.depth[0]} is "
                            f"{depth.shape[0]}x{depth.shape[1]} (H x W)")
        if self.depth_range is not None:
            lo, hi = self.depth_range
            valid = valid & (depth >= lo) & (depth <= hi)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
        sample = {"image": image, "depth": depth, "valid": valid, "name": e.name}
        if K is not None:
            sample["intrinsics"] = np.asarray(K, dtype=np.float32)
        return sample


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float32)


def split_rows(card: dict, split: str) -> list[list[str]]:
    return read_split_file(split_file_path(card, split))


def _scan(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def _rel_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def listed_or_scanned(card: dict, split: str, root: Path, pattern: str) -> list[str]:
    """Image names (relative to ``root``): the split file's first column when the card has one for
    ``split``, else every ``root.glob(pattern)`` match; ``MissingFileError`` naming the folder if none."""
    if card["split_file"].get(split):
        names = [r[0] for r in split_rows(card, split)]
    else:
        names = [_rel_name(p, root) for p in _scan(root, pattern)]
    if not names:
        raise MissingFileError(f"dataset {card['name']!r}: no {pattern} under {root}")
    return names


def _kitti_calib_intrinsics(calib: Path) -> np.ndarray | None:
    """K of the rectified left colour camera (P_rect_02) from KITTI raw ``calib_cam_to_cam.txt``."""
    if not calib.is_file():
        return None
    for line in calib.read_text().splitlines():
        if line.startswith("P_rect_02:"):
            vals = [float(v) for v in line.split()[1:]]
            if len(vals) != 12:
                raise DataError(f"KITTI calibration {calib}: P_rect_02 has {len(vals)} values, expected 12")
            P = np.array(vals).reshape(3, 4)
            return P[:, :3].astype(np.float32)
    return None


class KittiDataset(FileDepthDataset):
    """KITTI Eigen split. Split rows: ``<raw image> <annotated depth | None> <focal px>``; image at
    ``<root>/raw/<col 1>``, depth at ``<root>/gts/<col 2>`` (data_depth_annotated train+val merged).
    Rows without ground truth (``None``) are dropped and counted in ``.no_ground_truth``."""

    @classmethod
    def entries(cls, card, split, root):
        image_dir = root / per_split(card, "image_dir", split, "raw")
        depth_dir = root / per_split(card, "depth_dir", split, "gts")
        out, no_gt = [], 0
        calib_cache: dict[str, np.ndarray | None] = {}
        for row in split_rows(card, split):
            if len(row) < 2:
                raise DataError(f"split file {split_file_path(card, split)}: row {' '.join(row)!r} needs "
                                f"'<image> <depth|None> [focal]'")
            if row[1] == "None":
                no_gt += 1
                continue
            date = row[0].split("/")[0]
            if date not in calib_cache:
                calib_cache[date] = _kitti_calib_intrinsics(image_dir / date / "calib_cam_to_cam.txt")
            K = calib_cache[date]
            if K is None and len(row) > 2:
                # principal point unknown without the calibration file: image centre of 1242x375
                f = float(row[2])
                K = intrinsics_matrix(f, f, 1241 / 2, 374 / 2)
            out.append(Entry(row[0], image_dir / row[0], (depth_dir / row[1],), K))
        return out, {"no_ground_truth": no_gt}

    def read_depth(self, e):
        from dabench.data.formats import read_kitti_depth

        return read_kitti_depth(e.depth[0])


class NyuDataset(FileDepthDataset):
    """NYUv2 official test split (654). Extracted layout: ``<root>/official_splits/test/<scene>/rgb_XXXXX.jpg``
    and ``sync_depth_XXXXX.png`` (uint16 mm), as written by BTS's extraction script: ``XXXXX`` is
    the 0-based frame of the labelled .mat, depth is its ``rawDepths`` truncated to millimetres and
    the image keeps only rows 7:474, cols 7:632 (black border). When that folder is absent but
    ``<root>/nyu_depth_v2_labeled.mat`` exists, the same frames are read from the .mat with the same
    border and quantisation, so both routes give identical samples."""

    @classmethod
    def entries(cls, card, split, root):
        base = root / per_split(card, "image_dir", split, "official_splits/test")
        mat = root / card.get("mat_file", "nyu_depth_v2_labeled.mat")
        use_mat = split == "test" and not base.is_dir() and mat.is_file()
        fx, fy, cx, cy = card.get("intrinsics", None) or (518.8579, 519.4696, 325.5824, 253.7362)
        K = intrinsics_matrix(fx, fy, cx, cy)
        out = []
        for row in split_rows(card, split):
            name = row[0].lstrip("/")
            if use_mat:
                digits = "".join(ch for ch in Path(name).stem if ch.isdigit())
                if not digits:
                    raise DataError(f"split file {split_file_path(card, split)}: cannot take a .mat index from {name!r}")
                out.append(Entry(name, mat, (mat,), K, {"mat_index": int(digits) + 1}))
            else:
                out.append(Entry(name, base / name, (base / row[1].lstrip("/"),), K))
        return out

    def read_sample(self, e):
        if "mat_index" in e.extra:
            from dabench.data.formats import read_nyu_mat

            image, depth, _ = read_nyu_mat(e.image, e.extra["mat_index"], key=self.card.get("mat_depth_key", "rawDepths"))
            border = np.zeros_like(image)
            border[7:474, 7:632] = image[7:474, 7:632]
            mm = (depth.astype(np.float32) * np.float32(1000.0)).astype(np.uint16)  # as the extracted PNGs store it
            return border, mm.astype(np.float32) / 1000.0, mm > 0, e.intrinsics
        return super().read_sample(e)

    def read_depth(self, e):
        from dabench.data.formats import read_nyu_depth

        return read_nyu_depth(e.depth[0])


class SintelDataset(FileDepthDataset):
    """MPI Sintel training set: ``<root>/training/<pass>/<scene>/frame_XXXX.png`` with depth
    ``<root>/training/depth/<scene>/frame_XXXX.dpt`` and, when present, intrinsics from
    ``<root>/training/camdata_left/<scene>/frame_XXXX.cam``. Without a split file, all frames."""

    @classmethod
    def entries(cls, card, split, root):
        rel = card["split_file"].get(split)
        pass_ = card.get("pass", "final")
        if rel:
            names = [r[0] for r in split_rows(card, split)]
        else:
            names = [_rel_name(p, root / "training" / pass_) for p in _scan(root / "training" / pass_, "*/frame_*.png")]
            if not names:
                raise MissingFileError(f"dataset {card['name']!r}: no frames under {root / 'training' / pass_}/*/frame_*.png")
        out = []
        for n in names:
            stem = Path(n).with_suffix("")
            cam = root / "training" / "camdata_left" / stem.with_suffix(".cam")
            out.append(Entry(n, root / "training" / pass_ / n, (root / "training" / "depth" / stem.with_suffix(".dpt"),),
                             None, {"cam": cam}))
        return out

    def read_depth(self, e):
        from dabench.data.formats import read_sintel_depth

        return read_sintel_depth(e.depth[0])

    def read_sample(self, e):
        from dabench.data.formats import read_sintel_cam

        image, depth, valid, _ = super().read_sample(e)
        K = read_sintel_cam(e.extra["cam"])[0] if e.extra["cam"].is_file() else None
        return image, depth, valid, K


class Eth3dDataset(FileDepthDataset):
    """ETH3D high-res multi-view training DSLR images (454). Split rows ``<image> <depth>`` relative
    to the root (``rgb/<scene>/images/dslr_images/DSC_XXXX.JPG`` and
    ``depth/<scene>_dslr_depth/<scene>/ground_truth_depth/dslr_images/DSC_XXXX.JPG``, raw float32)."""

    @classmethod
    def entries(cls, card, split, root):
        return [Entry(r[0], root / r[0], (root / r[1],)) for r in split_rows(card, split)]

    def read_depth(self, e):
        from dabench.data.formats import read_eth3d_depth

        h, w = self.card.get("depth_size", (4032, 6048))
        return read_eth3d_depth(e.depth[0], height=h, width=w)


class DiodeDataset(FileDepthDataset):
    """DIODE validation set: rows ``<image.png> <_depth.npy> <_depth_mask.npy>`` relative to
    ``<root>/val``."""

    @classmethod
    def entries(cls, card, split, root):
        base = root / per_split(card, "image_dir", split, "val")
        out = []
        for r in split_rows(card, split):
            if len(r) < 3:
                raise DataError(f"split file {split_file_path(card, split)}: row {' '.join(r)!r} needs "
                                f"'<image> <depth.npy> <mask.npy>'")
            out.append(Entry(r[0], base / r[0], (base / r[1], base / r[2])))
        return out

    def read_depth(self, e):
        from dabench.data.formats import read_diode_depth

        return read_diode_depth(e.depth[0], e.depth[1])


class DdadDataset(FileDepthDataset):
    """DDAD validation frames as preprocessed for ZoeDepth/Depth Anything's metric evaluation:
    ``<root>/<id>_rgb.png`` + ``<root>/<id>_depth.npy`` (metres, 0 = no LiDAR point)."""

    @classmethod
    def entries(cls, card, split, root):
        names = listed_or_scanned(card, split, root, "**/*_rgb.png")
        return [Entry(n, root / n, (root / n.replace("_rgb.png", "_depth.npy"),)) for n in names]

    def read_depth(self, e):
        from dabench.data.formats import read_npy_depth

        return read_npy_depth(e.depth[0])


class SunRgbdDataset(FileDepthDataset):
    """SUN RGB-D test set as used by Depth Anything's metric evaluation: ``<root>/rgb/img-XXXXXX.jpg``
    and ``<root>/depth/<XXXXXX as int>.png`` (uint16, metres = value / 10000)."""

    @classmethod
    def entries(cls, card, split, root):
        names = listed_or_scanned(card, split, root, "rgb/img-*.jpg")
        out = []
        for n in names:
            num = int(Path(n).stem.replace("img-", ""))
            out.append(Entry(n, root / n, (root / "depth" / f"{num}.png",)))
        return out

    def read_depth(self, e):
        from dabench.data.formats import read_sunrgbd_depth

        return read_sunrgbd_depth(e.depth[0], scale=float(self.card.get("depth_scale", 10000.0)))


class IbimsDataset(FileDepthDataset):
    """iBims-1 core: ``<root>/imagelist.txt`` names; ``rgb/<n>.png``, ``depth/<n>.png`` (×50/65535 m),
    ``mask_invalid/<n>.png``, ``mask_transp/<n>.png``."""

    @classmethod
    def entries(cls, card, split, root):
        lst = root / "imagelist.txt"
        rel = card["split_file"].get(split)
        names = [r[0] for r in split_rows(card, split)] if rel else [r[0] for r in read_split_file(lst)]
        return [Entry(n, root / "rgb" / f"{n}.png", (root / "depth" / f"{n}.png", root / "mask_invalid" / f"{n}.png",
                                                      root / "mask_transp" / f"{n}.png")) for n in names]

    def read_depth(self, e):
        from dabench.data.formats import read_ibims_depth

        return read_ibims_depth(*e.depth)


class HypersimDataset(FileDepthDataset):
    """HyperSim as downloaded: ``<root>/<scene>/images/scene_cam_XX_final_preview/frame.XXXX.tonemap.jpg``
    with ``scene_cam_XX_geometry_hdf5/frame.XXXX.depth_meters.hdf5`` (ray distance → planar depth,
    focal 886.81 px). Without a split file, every frame found."""

    @classmethod
    def entries(cls, card, split, root):
        names = listed_or_scanned(card, split, root, "*/images/scene_cam_*_final_preview/frame.*.tonemap.jpg")
        f = float(card.get("focal", 886.81))
        out = []
        for n in names:
            d = n.replace("_final_preview", "_geometry_hdf5").replace(".tonemap.jpg", ".depth_meters.hdf5")
            out.append(Entry(n, root / n, (root / d,), intrinsics_matrix(f, f, 1023 / 2, 767 / 2)))
        return out

    def read_depth(self, e):
        from dabench.data.formats import read_hypersim_depth

        return read_hypersim_depth(e.depth[0], focal=float(self.card.get("focal", 886.81)))


class Vkitti2Dataset(FileDepthDataset):
    """Virtual KITTI 2: ``<root>/SceneXX/<variant>/frames/rgb/Camera_N/rgb_XXXXX.jpg`` and
    ``.../frames/depth/Camera_N/depth_XXXXX.png`` (uint16 cm)."""

    @classmethod
    def entries(cls, card, split, root):
        names = listed_or_scanned(card, split, root, "Scene*/*/frames/rgb/Camera_*/rgb_*.jpg")
        K = intrinsics_matrix(725.0087, 725.0087, 620.5, 187.0)
        out = []
        for n in names:
            d = n.replace("/frames/rgb/", "/frames/depth/").replace("/rgb_", "/depth_").replace(".jpg", ".png")
            out.append(Entry(n, root / n, (root / d,), K))
        return out

    def read_depth(self, e):
        from dabench.data.formats import read_vkitti2_depth

        return read_vkitti2_depth(e.depth[0])


for _name, _cls in (("kitti", KittiDataset), ("nyu", NyuDataset), ("sintel", SintelDataset), ("eth3d", Eth3dDataset),
                    ("diode", DiodeDataset), ("ddad", DdadDataset), ("sunrgbd", SunRgbdDataset),
                    ("ibims", IbimsDataset), ("hypersim", HypersimDataset), ("vkitti2", Vkitti2Dataset)):
    READERS.register(_name, _cls)
READERS.register("da2k", "dabench.data.da2k:Da2kDataset")
READERS.register("scannet", "dabench.data.scannet:ScannetDataset")
