"""Readers of Depth Anything's labelled training sets, in their on-disk formats as downloaded.

Every reader hands the trainer what the affine-invariant disparity loss needs: ``depth`` (float32,
0 where invalid) whose inverse is proportional to the true disparity, ``valid`` and, where the
set marks it, ``sky`` (trained at disparity 0, as the paper does). What the ground truth *is*
differs per set and is stated on its card (``ground_truth``):

- ``metric_depth`` (DIML indoor/outdoor, TartanAir, Hypersim, vKITTI2): metres as stored;
- ``disparity`` (HRWSI: relative disparity; IRS: stereo disparity in pixels): HRWSI's disparity
  ``d`` is returned as ``depth = 1 / d`` (up to scale, which the loss removes), IRS's as metric
  depth ``f·B / d`` with the card's focal length and baseline;
- ``up_to_scale_depth`` (BlendedMVS, MegaDepth: multi-view reconstructions with an arbitrary scale
  per scene): returned as stored; the card's range is wide open, since metres mean nothing here.

Formats: PFM (BlendedMVS), 16-bit PNG in millimetres (DIML), PNG disparity + mask (HRWSI), OpenEXR
disparity (IRS; single-part scanline files with NONE/ZIPS/ZIP compression, read here because the
OpenCV build has no EXR codec), HDF5 ``depth`` (MegaDepth), ``.npy`` metres (TartanAir).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from dabench.data.cards import GROUND_TRUTHS  # noqa: F401  (what a card's ground_truth may say)
from dabench.data.datasets import Entry, FileDepthDataset, listed_or_scanned
from dabench.data.formats import existing_file, finish_depth, load_npy, read_data_file, read_png_mask
from dabench.errors import DataError, excerpt


# ---------------------------------------------------------------- formats
def read_pfm(path) -> np.ndarray:
    """A PFM image (``Pf`` grey or ``PF`` colour; first channel) as float32 H×W, top row first
    (PFM stores rows bottom-up; a negative scale means little-endian)."""
    p = existing_file(path)
    data = read_data_file(p, "depth file")
    parts, pos = [], 0
    while len(parts) < 4 and pos < len(data) and pos < 256:  # header: type, width, height, scale
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        parts.append(data[pos:end].decode("ascii", "replace"))
        pos = end
    pos += 1  # the single whitespace byte after the scale
    if len(parts) < 4 or parts[0] not in ("Pf", "PF"):
        raise DataError(f"PFM file {p} has no Pf/PF header")
    try:
        w, h, scale = int(parts[1]), int(parts[2]), float(parts[3])
    except ValueError:
        raise DataError(f"PFM file {p} has a bad header {excerpt(parts)}") from None
    c = 3 if parts[0] == "PF" else 1
    if not (0 < w < 100000 and 0 < h < 100000):
        raise DataError(f"PFM file {p} has implausible size {w}x{h}")
    from dabench.data.formats import check_pixels

    check_pixels(h, w, f"PFM file {p}")
    need = 4 * w * h * c
    if len(data) - pos < need:
        raise DataError(f"PFM file {p} is truncated: {len(data) - pos} data bytes, expected {need}")
    arr = np.frombuffer(data, dtype="<f4" if scale < 0 else ">f4", count=w * h * c, offset=pos)
    return np.ascontiguousarray(arr.reshape(h, w, c)[::-1, :, 0]).astype(np.float32)


_EXR_MAGIC = 20000630
_EXR_LINES = {0: 1, 2: 1, 3: 16}  # compression -> scanlines per chunk (NONE, ZIPS, ZIP)
_EXR_NAMES = {0: "NONE", 1: "RLE", 2: "ZIPS", 3: "ZIP", 4: "PIZ", 5: "PXR24", 6: "B44", 7: "B44A"}


def read_exr(path) -> np.ndarray:
    """The first channel (``R``, ``Y`` or the only one) of a single-part scanline OpenEXR file as
    float32 H×W. Supported compressions: NONE, ZIPS, ZIP; others are a ``DataError`` naming them."""
    p = existing_file(path)
    data = read_data_file(p, "depth file")
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _EXR_MAGIC:
        raise DataError(f"{p} is not an OpenEXR file (bad magic number)")
    flags = struct.unpack_from("<I", data, 4)[0]
    if flags & 0x200 or flags & 0x1000 or flags & 0x800:
        raise DataError(f"OpenEXR file {p} is tiled, multi-part or deep: only single-part scanline files are read")
    pos, attrs = 8, {}
    try:
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            name, size = data[pos:name_end].decode(), struct.unpack_from("<i", data, type_end + 1)[0]
            attrs[name] = data[type_end + 5:type_end + 5 + size]
            pos = type_end + 5 + size
        pos += 1
        channels, cp = [], 0
        chl = attrs["channels"]
        while chl[cp] != 0:
            end = chl.index(b"\0", cp)
            channels.append((chl[cp:end].decode(), struct.unpack_from("<i", chl, end + 1)[0]))
            cp = end + 1 + 16
        comp = attrs["compression"][0]
        x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"])
    except (IndexError, KeyError, ValueError, struct.error):
        raise DataError(f"OpenEXR file {p} has a damaged header") from None
    if comp not in _EXR_LINES:
        raise DataError(f"OpenEXR file {p} uses {_EXR_NAMES.get(comp, comp)} compression; only NONE, ZIPS and ZIP "
                        "are read (convert it with `exrmaketiled`/OpenEXR tools or Python OpenEXR)")
    w, h = x1 - x0 + 1, y1 - y0 + 1
    if not (0 < w < 100000 and 0 < h < 100000) or not channels:
        raise DataError(f"OpenEXR file {p} has implausible size {w}x{h} or no channels")
    from dabench.data.formats import check_pixels

    check_pixels(h, w, f"OpenEXR file {p}")  # before allocating the H×W output (ZIP chunks inflate ~1000×)
    names = [c for c, _ in channels]
    want = next((c for c in ("R", "Y") if c in names), names[0])
    sizes = {0: 4, 1: 2, 2: 4}
    if any(t not in sizes for _, t in channels):
        raise DataError(f"OpenEXR file {p} has an unknown pixel type")
    lines = _EXR_LINES[comp]
    n_chunks = (h + lines - 1) // lines
    try:
        offsets = struct.unpack_from(f"<{n_chunks}Q", data, pos)
    except struct.error:
        raise DataError(f"OpenEXR file {p} is truncated (offset table)") from None
    out = np.zeros((h, w), dtype=np.float32)
    for off in offsets:
        try:
            y, size = struct.unpack_from("<ii", data, off)
            raw = data[off + 8:off + 8 + size]
            rows = min(lines, y1 - y + 1)
            expect = rows * w * sum(sizes[t] for _, t in channels)
            if not 0 <= y - y0 < h:
                raise DataError(f"OpenEXR file {p}: a chunk names line {y}, outside its data window {y0}..{y1}")
            if comp != 0 and size < expect:
                raw = _exr_unzip(raw, expect)
            if len(raw) != expect:
                raise DataError(f"OpenEXR file {p}: chunk at line {y} holds {len(raw)} bytes, expected {expect}")
        except (struct.error, zlib.error) as e:
            raise DataError(f"OpenEXR file {p} is truncated or corrupt ({e})") from None
        cur = 0
        for r in range(rows):
            for cname, t in channels:
                n = w * sizes[t]
                if cname == want:
                    dt = {0: "<u4", 1: "<f2", 2: "<f4"}[t]
                    out[y - y0 + r] = np.frombuffer(raw, dtype=dt, count=w, offset=cur).astype(np.float32)
                cur += n
    return out


def _exr_unzip(raw: bytes, expect: int) -> bytes:
    """OpenEXR ZIP(S) chunk: zlib (inflated to at most ``expect`` + 1 bytes: a bomb stops there), then
    undo the byte predictor and the two-halves interleave."""
    t = np.frombuffer(zlib.decompressobj().decompress(raw, expect + 1), dtype=np.uint8).astype(np.int64)
    t = ((np.cumsum(t - 128) + 128) % 256).astype(np.uint8)  # t[i] = t[i-1] + t[i] - 128 (t[0] kept)
    half = (len(t) + 1) // 2
    out = np.empty_like(t)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def read_megadepth_depth(path) -> tuple[np.ndarray, np.ndarray]:
    """MegaDepth ``depths/<name>.h5``: HDF5 dataset ``depth``, up-to-scale depth, 0 invalid."""
    import h5py

    p = existing_file(path)
    try:
        with h5py.File(p, "r") as f:
            if "depth" not in f:
                raise DataError(f"MegaDepth depth {p} lacks the HDF5 dataset 'depth'")
            ds = f["depth"]
            # the header's shape and type, before anything is read (a 3-D or huge dataset is never loaded)
            if not isinstance(ds, h5py.Dataset) or len(ds.shape) != 2:
                raise DataError(f"MegaDepth depth {p}: 'depth' must be an HxW dataset, got "
                                f"{getattr(ds, 'shape', type(ds).__name__)}")
            if ds.dtype.kind not in "fiu":
                raise DataError(f"MegaDepth depth {p}: 'depth' holds {ds.dtype}, expected numbers")
            from dabench.data.formats import check_pixels

            check_pixels(*ds.shape, f"MegaDepth depth {p}")
            d = np.asarray(ds, dtype=np.float32)
    except OSError as e:
        raise DataError(f"MegaDepth depth {p} is not a readable HDF5 file: {e}") from None
    return finish_depth(d)


# ---------------------------------------------------------------- readers
class TrainDepthDataset(FileDepthDataset):
    """A labelled training set: ``read_labels(entry) -> (depth, valid, sky or None)``; samples carry
    ``sky`` when the set marks it. The card's ``ground_truth`` says what the stored values are."""

    def read_labels(self, e: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        depth, valid = self.read_depth(e)
        return depth, valid, None

    def __getitem__(self, index: int) -> dict:
        from dabench.data.datasets import read_image

        e = self.entries[index]
        image = read_image(e.image)
        depth, valid, sky = self.read_labels(e)
        if image.shape[:2] != depth.shape:
            raise DataError(f"dataset {excerpt(self.card['name'])} entry {excerpt(e.name)}: image {e.image} is "
                            f"{image.shape[0]}x{image.shape[1]} but its ground truth is "
                            f"{depth.shape[0]}x{depth.shape[1]}")
        if self.depth_range is not None:
            lo, hi = self.depth_range
            valid = valid & (depth >= lo) & (depth <= hi)
        sample = {"image": image, "depth": np.where(valid, depth, 0.0).astype(np.float32), "valid": valid,
                  "name": e.name}
        if sky is not None:
            sample["sky"] = sky & ~valid
        return sample


def _pairs(card, split, root, pattern, to_depth) -> list[Entry]:
    return [Entry(n, root / n, tuple(root / d for d in to_depth(n))) for n in
            listed_or_scanned(card, split, root, pattern.format(split=split))]


class BlendedMvsDataset(TrainDepthDataset):
    """BlendedMVS (low-res set): ``<PID>/blended_images/NNNNNNNN.jpg`` (not the ``_masked`` copies)
    with ``<PID>/rendered_depth_maps/NNNNNNNN.pfm``."""

    @classmethod
    def entries(cls, card, split, root):
        es = _pairs(card, split, root, "*/blended_images/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9].jpg",
                    lambda n: (n.replace("/blended_images/", "/rendered_depth_maps/").replace(".jpg", ".pfm"),))
        return [e for e in es if not e.name.endswith("_masked.jpg")]

    def read_depth(self, e):
        return finish_depth(read_pfm(e.depth[0]))


class DimlIndoorDataset(TrainDepthDataset):
    """DIML/CVL indoor: ``<HR|LR>/<scene>/color/<name>_c.png`` with
    ``<HR|LR>/<scene>/depth_filled/<name>_depth_filled.png`` (uint16 millimetres, 0 invalid)."""

    @classmethod
    def entries(cls, card, split, root):
        return _pairs(card, split, root, "*/*/color/*_c.png",
                      lambda n: (n.replace("/color/", "/depth_filled/").replace("_c.png", "_depth_filled.png"),))

    def read_depth(self, e):
        from dabench.data.formats import read_png_uint16

        raw = read_png_uint16(e.depth[0])
        return finish_depth(raw.astype(np.float32) / 1000.0, raw > 0)


class DimlOutdoorDataset(TrainDepthDataset):
    """DIML/CVL outdoor: ``<scene>/outleft/<name>.png`` with ``<scene>/depthmap/<name>.png``
    (uint16 millimetres from stereo, 0 invalid — sky included)."""

    @classmethod
    def entries(cls, card, split, root):
        return _pairs(card, split, root, "*/outleft/*.png", lambda n: (n.replace("/outleft/", "/depthmap/"),))

    read_depth = DimlIndoorDataset.read_depth


class HrwsiDataset(TrainDepthDataset):
    """HR-WSI: ``<split>/imgs/<n>.jpg``, ``<split>/gts/<n>.png`` (disparity, 8- or 16-bit) and
    ``<split>/valid_masks/<n>.png``. Returned as ``depth = 1 / disparity``; masked-valid pixels at
    disparity 0 are sky."""

    @classmethod
    def entries(cls, card, split, root):
        return _pairs(card, split, root, "{split}/imgs/*.jpg",
                      lambda n: (n.replace("/imgs/", "/gts/").replace(".jpg", ".png"),
                                 n.replace("/imgs/", "/valid_masks/").replace(".jpg", ".png")))

    def read_labels(self, e):
        from dabench.data.formats import decode_png

        disp = decode_png(e.depth[0], "HRWSI disparity PNG")
        if disp.ndim == 3:
            disp = disp[..., 0]
        mask = read_png_mask(e.depth[1])
        if mask.shape != disp.shape:
            raise DataError(f"HRWSI mask {e.depth[1]} is {mask.shape} but disparity {e.depth[0]} is {disp.shape}")
        d = disp.astype(np.float32)
        valid = mask & (d > 0)
        depth = np.where(valid, 1.0 / np.maximum(d, 1e-6), 0.0).astype(np.float32)
        return depth, valid, mask & (d == 0)


class IrsDataset(TrainDepthDataset):
    """IRS: ``<category>/<scene>/l_<n>.png`` with disparity ``<category>/<scene>/d_<n>.exr`` (pixels,
    left view); depth = ``focal · baseline / disparity`` (card: 480 px, 0.1 m)."""

    @classmethod
    def entries(cls, card, split, root):
        def depth_of(n):
            p = Path(n)
            return (str(p.with_name("d_" + p.name[2:]).with_suffix(".exr")),)

        return _pairs(card, split, root, "*/*/l_*.png", depth_of)

    def read_depth(self, e):
        disp = read_exr(e.depth[0])
        ok = np.isfinite(disp) & (disp > 0)
        fb = float(self.card.get("focal", 480.0)) * float(self.card.get("baseline", 0.1))
        return finish_depth(np.where(ok, fb / np.where(ok, disp, 1.0), 0.0), ok)


class MegaDepthDataset(TrainDepthDataset):
    """MegaDepth v1: ``<scene>/dense<k>/imgs/<name>.jpg`` with ``<scene>/dense<k>/depths/<name>.h5``."""

    @classmethod
    def entries(cls, card, split, root):
        return _pairs(card, split, root, "*/dense*/imgs/*.jpg",
                      lambda n: (str(Path(n.replace("/imgs/", "/depths/")).with_suffix(".h5")),))

    def read_depth(self, e):
        return read_megadepth_depth(e.depth[0])


class TartanAirDataset(TrainDepthDataset):
    """TartanAir: ``<env>/<Easy|Hard>/<P###>/image_left/<n>_left.png`` with
    ``.../depth_left/<n>_left_depth.npy`` (float32 metres); depth at or beyond the card's
    ``sky_min_depth`` is sky."""

    @classmethod
    def entries(cls, card, split, root):
        return _pairs(card, split, root, "*/*/P*/image_left/*_left.png",
                      lambda n: (n.replace("/image_left/", "/depth_left/").replace("_left.png", "_left_depth.npy"),))

    def read_labels(self, e):
        d = load_npy(e.depth[0], "TartanAir depth")
        if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
            raise DataError(f"TartanAir depth {e.depth[0]} must be a float HxW array, got {d.dtype} {d.shape}")
        sky = np.isfinite(d) & (d >= float(self.card.get("sky_min_depth", 1000.0)))
        depth, valid = finish_depth(np.where(sky, 0.0, d))
        return depth, valid, sky


READERS_OF_TRAIN_SETS = {"blendedmvs": BlendedMvsDataset, "diml-indoor": DimlIndoorDataset,
                         "diml-outdoor": DimlOutdoorDataset, "hrwsi": HrwsiDataset, "irs": IrsDataset,
                         "megadepth": MegaDepthDataset, "tartanair": TartanAirDataset}
