"""Readers of the evaluation benchmarks' own layouts (KITTI, NYUv2, Sintel, ETH3D, DIODE, DDAD,
SUN RGB-D, iBims-1, HyperSim, Virtual KITTI 2), registered by name in
``dabench.data.datasets.READERS``; each lists its entries from the card's split file (or a scan) and
reads depth with ``dabench.data.formats``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dabench.data.cards import per_split, read_split_file, split_file_path
from dabench.data.datasets import (Entry, FileDepthDataset, intrinsics_matrix, listed_or_scanned, relative_name,
                                   scan_files, split_rows)
from dabench.errors import DataError, MissingFileError, excerpt


def _kitti_calib_intrinsics(calib: Path) -> np.ndarray | None:
    """K of the rectified left colour camera (P_rect_02) from KITTI raw ``calib_cam_to_cam.txt``."""
    if not calib.is_file():
        return None
    from dabench.safety import read_bounded

    for line in read_bounded(calib, "KITTI calibration", 1 << 20).decode("utf-8", "replace").splitlines():
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
                raise DataError(f"split file {split_file_path(card, split)}: row {excerpt(' '.join(row))} needs "
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
                    raise DataError(f"split file {split_file_path(card, split)}: cannot take a .mat index from {excerpt(name)}")
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
            names = [relative_name(p, root / "training" / pass_) for p in scan_files(root / "training" / pass_, "*/frame_*.png")]
            if not names:
                raise MissingFileError(f"dataset {excerpt(card['name'])}: no frames under {root / 'training' / pass_}/*/frame_*.png")
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
        from dabench.data.cameras import read_sintel_cam

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

    def read_sample(self, e):
        image, depth, valid, _ = super().read_sample(e)
        return image, depth, valid, self._intrinsics(e)

    def _intrinsics(self, e):
        """K from the scene's COLMAP calibration (``<scene>/dslr_calibration_undistorted/`` or
        ``dslr_calibration_jpg/`` next to ``images/``: cameras.txt + images.txt), None when absent."""
        from dabench.data.cameras import read_colmap_intrinsics

        scene_dir = e.image.parent.parent.parent  # <scene>/images/dslr_images/DSC_XXXX.JPG
        cache = self.__dict__.setdefault("_calib", {})
        if scene_dir not in cache:
            cache[scene_dir] = {}
            for sub in ("dslr_calibration_undistorted", "dslr_calibration_jpg"):
                d = scene_dir / sub
                if (d / "cameras.txt").is_file() and (d / "images.txt").is_file():
                    cache[scene_dir] = read_colmap_intrinsics(d / "cameras.txt", d / "images.txt")
                    break
        return cache[scene_dir].get(f"{e.image.parent.name}/{e.image.name}")

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
                raise DataError(f"split file {split_file_path(card, split)}: row {excerpt(' '.join(r))} needs "
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
