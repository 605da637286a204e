"""Readers for the depth formats the benchmarks are distributed in.

Every ``read_*_depth`` returns ``(depth, valid)``: ``depth`` float32 H×W in metres (planar z-depth,
0 where invalid) and ``valid`` bool H×W. Invalid pixels (0, NaN, inf, negative, masked) are False,
so a NaN never reaches a metric. A missing file raises ``MissingFileError``; a corrupt, truncated
or wrongly typed file raises ``DataError`` naming the file and what was expected.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from dabench.errors import DataError, MissingFileError

SINTEL_TAG = 202021.25          # first float32 of a Sintel .dpt / .cam file
ETH3D_SIZE = (4032, 6048)       # (H, W) of ETH3D's DSLR ground-truth depth
HYPERSIM_SIZE = (768, 1024)     # (H, W)
HYPERSIM_FOCAL = 886.81         # pixels (HyperSim's 60° horizontal field of view at 1024 px)
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)   # fx, fy, cx, cy (NYU toolbox, 640×480)
VKITTI2_INTRINSICS = (725.0087, 725.0087, 620.5, 187.0)     # fx, fy, cx, cy (vKITTI2 README)


# ---------------------------------------------------------------------------------------------
# Size cap: headers are read before anything is decoded, so a tiny file claiming a huge image
# (a PNG header of 100000x100000, an .npy header of (10**6, 10**6)) is refused instead of
# allocating gigabytes. The cap is in pixels (H*W); DABENCH_MAX_PIXELS or --max-pixels raise it.
# ---------------------------------------------------------------------------------------------
DEFAULT_MAX_PIXELS = 64_000_000  # 64 megapixels (8000x8000; ETH3D's 6048x4032 DSLR frames are 24 MP)
MAX_PIXELS_ENV = "DABENCH_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel cap (H*W) for one decoded image or depth map: ``$DABENCH_MAX_PIXELS`` or 64 megapixels."""
    from dabench.errors import ConfigError

    raw = os.environ.get(MAX_PIXELS_ENV)
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive number of pixels, got {raw!r}")
    return value


def set_max_pixels(value: int | None) -> None:
    """Apply a ``--max-pixels`` flag (``None``: keep the current cap). Stored in the environment so
    DataLoader worker processes see it too."""
    from dabench.errors import ConfigError

    if value is None:
        return
    if value < 1:
        raise ConfigError(f"--max-pixels must be >= 1, got {value}")
    os.environ[MAX_PIXELS_ENV] = str(int(value))


def check_pixels(height: int, width: int, label: str) -> None:
    """``DataError`` naming ``label`` (e.g. ``"image file a.png"``) when an ``height``×``width`` image is
    empty or above :func:`max_pixels`."""
    if height <= 0 or width <= 0:
        raise DataError(f"{label} is empty ({width}x{height})")
    cap = max_pixels()
    if height * width > cap:
        raise DataError(f"{label} is {width}x{height} = {height * width / 1e6:.1f} megapixels, above the "
                        f"{cap / 1e6:g}-megapixel cap (raise it with --max-pixels or {MAX_PIXELS_ENV})")


IMAGE_HEADER_PREFIX = 4 * 2**20  # an image's header must lie in its first 4 MiB (EXIF/ICC segments included)


def max_file_bytes(pixels: int | None = None) -> int:
    """The size cap of one data file (image, depth map, PFM/EXR/.dpt), known before reading: 16 bytes
    a pixel (four float32 channels) of ``pixels`` (default the pixel cap) plus 16 MiB of headers and
    metadata. A sparse 20 GiB ``.jpg`` is refused by its size, not read."""
    return 16 * int(max_pixels() if pixels is None else pixels) + 16 * 2**20


def read_data_file(path, what: str) -> bytes:
    """The bytes of the regular file ``path`` (a FIFO, device or folder is refused, never read),
    at most :func:`max_file_bytes`; ``MissingFileError`` / ``DataError`` naming it."""
    from dabench.safety import read_bounded

    return read_bounded(path, what, max_file_bytes())


def read_image_file(path, what: str = "image file") -> bytes:
    """The encoded bytes of the image at ``path``, checked before the file is read in full: a regular
    file (:func:`dabench.safety.open_regular`), its header read from a bounded prefix
    (:data:`IMAGE_HEADER_PREFIX`) and within the pixel cap, and the file no larger than such an image
    can need (:func:`max_file_bytes` of its pixels)."""
    import io

    from dabench.safety import open_regular, read_fd

    fd, size = open_regular(path, what)
    label = f"{what} {path}"
    try:
        prefix = read_fd(fd, 0, min(size, IMAGE_HEADER_PREFIX))
        height, width = image_header_size(io.BytesIO(prefix), label)
        cap = max_file_bytes(height * width)
        if size > cap:
            raise DataError(f"{label} is {size} bytes, more than a {width}x{height} image can need ({cap}); "
                            "refused (a padded or sparse file?)")
        rest = read_fd(fd, len(prefix), size - len(prefix)) if size > len(prefix) else b""
    except OSError as e:
        raise DataError(f"cannot read {label} ({e.strerror or e})") from None
    finally:
        os.close(fd)
    return prefix + rest


def image_header_size(source, what: str = "image file") -> tuple[int, int]:
    """``(height, width)`` from an image's header (PIL reads only the header: nothing is decoded),
    checked against :func:`max_pixels`; ``DataError`` when it is not an image's header. ``source``:
    a path (named in messages as ``what path``) or a binary file object (named as ``what``)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    if not hasattr(source, "read"):  # a path: its header from a bounded prefix of a regular file
        import io

        from dabench.safety import open_regular, read_fd

        fd, size = open_regular(source, what)
        try:
            prefix = read_fd(fd, 0, min(size, IMAGE_HEADER_PREFIX))
        finally:
            os.close(fd)
        return image_header_size(io.BytesIO(prefix), f"{what} {source}")
    label = what
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # dabench's own cap applies (below), with a message naming the file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as im:
                width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{label} is corrupt or not an image (its header cannot be read: {e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    check_pixels(height, width, label)
    return height, width


def decode_image_bytes(data: bytes, flags: int, what: str) -> np.ndarray:
    """Encoded image bytes decoded once with ``cv2.imdecode(flags)`` after the header passed the pixel
    cap; ``DataError`` naming ``what``."""
    import io

    import cv2

    image_header_size(io.BytesIO(data), what)
    try:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    except cv2.error as e:
        raise DataError(f"{what} cannot be decoded ({str(e).strip().splitlines()[-1]})") from None
    if arr is None:
        raise DataError(f"{what} is corrupt or not an image (cv2 could not decode it)")
    return arr


def decode_image_file(path, flags: int, what: str = "image file") -> np.ndarray:
    """The image at ``path`` decoded once with ``cv2.imdecode(flags)``, after its header passed the
    pixel cap; ``MissingFileError`` / ``DataError`` naming the file."""
    p = Path(path)
    return decode_image_bytes(read_image_file(p, what), flags, f"{what} {p}")


def _npy_header(f, size: int, label: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
    except ValueError:
        f.seek(0)
        zipped = f.read(2) == b"PK"
        raise DataError(f"{label} is not a .npy file" +
                        (" (it is a zip archive: an .npz saved under a .npy name?)" if zipped else "")) from None
    try:
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            if version != (3, 0):
                raise ValueError(f"unknown .npy format version {version}")
            from numpy.lib import _format_impl  # 3.0 (utf-8 field names) has no public header reader

            shape, _, dtype = _format_impl._read_array_header(f, version)
    except (ValueError, SyntaxError, TypeError, ImportError, AttributeError) as e:
        raise DataError(f"{label} has a corrupt .npy header ({e})") from None
    offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"{label} holds Python objects (dtype {dtype}); expected a numeric array")
    shape = tuple(int(n) for n in shape)
    if len(shape) >= 2:
        check_pixels(shape[0], shape[1], label)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > 4 * max_pixels():
        raise DataError(f"{label} has shape {shape}: more values than the pixel cap allows")
    need = offset + count * dtype.itemsize
    if size < need:
        raise DataError(f"{label} is truncated: {size} bytes, its header says {need} ({dtype} {shape})")
    return shape, dtype


def read_npy_header(path, what: str = "array file") -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` from a ``.npy`` header, checked before any data is read: a real ``.npy``
    (not an ``.npz`` archive or pickle), a plain (non-object) dtype, at most :func:`max_pixels`
    pixels, and a file long enough to hold the array."""
    from dabench.safety import open_regular

    p = existing_file(path, what)
    fd, size = open_regular(p, what)
    with os.fdopen(fd, "rb") as f:
        return _npy_header(f, size, f"{what} {p}")


def load_npy_bytes(data: bytes, label: str) -> np.ndarray:
    """An in-memory ``.npy`` (e.g. a WebDataset member), its header checked as :func:`read_npy_header`."""
    import io

    _npy_header(io.BytesIO(data), len(data), label)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{label} is not a readable .npy: {e}") from None


def existing_file(path, what: str = "depth file") -> Path:
    """``path`` as a Path when it is a regular file; ``MissingFileError`` naming it when it does not
    exist, ``DataError`` when it is a folder, FIFO, device or socket (never opened, never waited on)."""
    import stat

    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise MissingFileError(f"{what} {p} does not exist") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {p} ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{what} {p} is not a regular file (a folder, FIFO, device or socket)")
    return p


def finish_depth(depth: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mark non-finite and non-positive depth invalid; zero the invalid pixels."""
    depth = np.asarray(depth, dtype=np.float32)
    ok = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok &= valid
    return np.where(ok, depth, np.float32(0.0)), ok  # float32 throughout: no float64 temporary


def decode_png(path, what: str) -> np.ndarray:
    """The PNG at ``path`` decoded as stored (bit depth and channels kept), its header checked against
    the pixel cap first; ``DataError`` naming it if corrupt."""
    import cv2

    p = existing_file(path)
    return decode_image_file(p, cv2.IMREAD_UNCHANGED, what)


def read_png_uint16(path) -> np.ndarray:
    """A single-channel 16-bit PNG as uint16 H×W; ``DataError`` if corrupt or not 16-bit."""
    arr = decode_png(path, "depth PNG")
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise DataError(f"depth PNG {path} must be single-channel 16-bit, got {arr.dtype} with shape {arr.shape}")
    return arr


def read_png_mask(path) -> np.ndarray:
    """A mask PNG (any bit depth, first channel) as bool: non-zero is True."""
    arr = decode_png(path, "mask PNG")
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr > 0


def read_kitti_depth(path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI annotated depth (data_depth_annotated): uint16 PNG, metres = value / 256, 0 = no LiDAR point."""
    raw = read_png_uint16(path)
    return finish_depth(raw.astype(np.float32) / 256.0, raw > 0)


def read_nyu_depth(path) -> tuple[np.ndarray, np.ndarray]:
    """NYUv2 extracted test depth (``sync_depth_XXXXX.png``): uint16 PNG in millimetres, 0 invalid."""
    raw = read_png_uint16(path)
    return finish_depth(raw.astype(np.float32) / 1000.0, raw > 0)


def read_nyu_mat(path, index: int, key: str = "rawDepths") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``index`` (1-based, as MATLAB's ``testNdxs``) of the official labelled
    ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5): returns ``(image uint8 480×640×3, depth, valid)``.

    ``key``: ``rawDepths`` (sensor depth with holes, what the common extracted test set stores) or
    ``depths`` (in-painted). h5py sees MATLAB's column-major arrays transposed: ``images`` is
    N×3×640×480 and depths N×640×480 (metres), so each is transposed back to row-major H×W.
    """
    import h5py

    p = existing_file(path)
    try:
        with h5py.File(p, "r") as f:
            if key not in f or "images" not in f:
                raise DataError(f"NYU .mat {p} lacks the '{key}'/'images' datasets (is it nyu_depth_v2_labeled.mat?)")
            n = f[key].shape[0]
            if not 1 <= index <= n:
                raise DataError(f"NYU .mat {p}: index {index} out of range 1..{n}")
            depth = np.asarray(f[key][index - 1], dtype=np.float32).T
            image = np.asarray(f["images"][index - 1]).transpose(2, 1, 0)
    except OSError as e:
        raise DataError(f"NYU .mat {p} is not a readable HDF5 (MATLAB v7.3) file: {e}") from None
    depth, valid = finish_depth(depth)
    return np.ascontiguousarray(image.astype(np.uint8)), depth, valid


def read_sintel_depth(path) -> tuple[np.ndarray, np.ndarray]:
    """MPI Sintel ``.dpt``: float32 tag 202021.25, int32 width, int32 height, then width*height
    float32 depths (row-major, little-endian)."""
    p = existing_file(path)
    data = read_data_file(p, "Sintel depth")
    if len(data) < 12:
        raise DataError(f"Sintel depth {p} is truncated: {len(data)} bytes, need a 12-byte header")
    tag, width, height = struct.unpack("<fii", data[:12])
    if tag != np.float32(SINTEL_TAG):
        raise DataError(f"Sintel depth {p} has tag {tag!r}, expected {SINTEL_TAG} (wrong file or endianness)")
    if not (0 < width < 100000 and 0 < height < 100000):
        raise DataError(f"Sintel depth {p} has implausible size {width}x{height}")
    need = 12 + 4 * width * height
    if len(data) < need:
        raise DataError(f"Sintel depth {p} is truncated: {len(data)} bytes, expected {need} for {width}x{height}")
    depth = np.frombuffer(data, dtype="<f4", count=width * height, offset=12).reshape(height, width)
    return finish_depth(depth)


def read_eth3d_depth(path, height: int = ETH3D_SIZE[0], width: int = ETH3D_SIZE[1]) -> tuple[np.ndarray, np.ndarray]:
    """ETH3D DSLR ground truth: headerless little-endian float32, ``height``×``width`` row-major,
    ``inf`` where there is no ground truth."""
    p = existing_file(path)
    need = 4 * height * width
    size = os.path.getsize(p)
    if size != need:
        raise DataError(f"ETH3D depth {p} has {size} bytes, expected {need} (float32 {width}x{height})")
    depth = np.fromfile(str(p), dtype="<f4").reshape(height, width)
    return finish_depth(depth)


def load_npy(path, what: str) -> np.ndarray:
    """A numeric (or bool) ``.npy`` array, its header checked (:func:`read_npy_header`) before loading."""
    p = existing_file(path, what)
    _, dtype = read_npy_header(p, what)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise DataError(f"{what} {p} has dtype {dtype}; expected numbers (float depth, 0/1 or bool mask)")
    try:
        return np.load(str(p), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{what} {p} is not a readable .npy file: {e}") from None


def read_diode_depth(depth_npy, mask_npy) -> tuple[np.ndarray, np.ndarray]:
    """DIODE: ``*_depth.npy`` (H×W×1 float32 metres) + ``*_depth_mask.npy`` (H×W, 1 = valid)."""
    depth = load_npy(depth_npy, "DIODE depth")
    mask = load_npy(mask_npy, "DIODE depth mask")
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise DataError(f"DIODE depth {depth_npy} must be HxWx1, got shape {depth.shape}")
    if mask.shape != depth.shape:
        raise DataError(f"DIODE mask {mask_npy} is {mask.shape} but depth {depth_npy} is {depth.shape}")
    return finish_depth(depth, mask > 0)


def read_npy_depth(path) -> tuple[np.ndarray, np.ndarray]:
    """A preprocessed ``.npy`` depth map in metres (H×W or H×W×1), 0 / NaN / inf invalid. Used for
    DDAD as distributed with ZoeDepth/Depth Anything's metric-depth evaluation (``*_depth.npy``)."""
    depth = load_npy(path, "depth .npy")
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise DataError(f"depth .npy {path} must be a numeric HxW array, got {depth.dtype} {depth.shape}")
    return finish_depth(depth)


read_ddad_depth = read_npy_depth


def read_sunrgbd_depth(path, scale: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """SUN RGB-D test depth as used by Depth Anything's metric evaluation: uint16 PNG, metres =
    value / 10000, 0 invalid."""
    raw = read_png_uint16(path)
    return finish_depth(raw.astype(np.float32) / float(scale), raw > 0)


def read_ibims_depth(depth_png, mask_invalid_png=None, mask_transp_png=None) -> tuple[np.ndarray, np.ndarray]:
    """iBims-1: uint16 PNG, metres = value * 50 / 65535; ``mask_invalid`` and ``mask_transp`` PNGs are
    1 (non-zero) where the depth is usable."""
    raw = read_png_uint16(depth_png)
    valid = raw > 0
    for m in (mask_invalid_png, mask_transp_png):
        if m is not None:
            mask = read_png_mask(m)
            if mask.shape != raw.shape:
                raise DataError(f"iBims mask {m} is {mask.shape} but depth {depth_png} is {raw.shape}")
            valid &= mask
    return finish_depth(raw.astype(np.float32) * (50.0 / 65535.0), valid)


def distance_to_planar(distance: np.ndarray, focal: float) -> np.ndarray:
    """Convert per-pixel ray distance (metres, from the camera centre) to planar z-depth for a
    centred pinhole camera: z = r * f / sqrt(f² + u² + v²), u, v from the image centre to each pixel
    centre."""
    h, w = distance.shape
    u = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    v = np.arange(h, dtype=np.float64) - (h - 1) / 2.0
    norm = np.sqrt(focal ** 2 + u[None, :] ** 2 + v[:, None] ** 2)
    return (distance * (focal / norm)).astype(np.float32)


def read_hypersim_depth(path, focal: float = HYPERSIM_FOCAL) -> tuple[np.ndarray, np.ndarray]:
    """HyperSim ``frame.XXXX.depth_meters.hdf5``: dataset ``"dataset"`` of ray distances in metres
    (NaN where no geometry), converted to planar depth with the focal length in pixels."""
    import h5py

    p = existing_file(path)
    try:
        with h5py.File(p, "r") as f:
            if "dataset" not in f:
                raise DataError(f"HyperSim depth {p} lacks the HDF5 dataset 'dataset'")
            shape = f["dataset"].shape
            if len(shape) != 2:
                raise DataError(f"HyperSim depth {p} must be HxW, got shape {shape}")
            check_pixels(shape[0], shape[1], f"HyperSim depth {p}")
            dist = np.asarray(f["dataset"], dtype=np.float64)
    except OSError as e:
        raise DataError(f"HyperSim depth {p} is not a readable HDF5 file: {e}") from None
    if dist.ndim != 2:
        raise DataError(f"HyperSim depth {p} must be HxW, got shape {dist.shape}")
    with np.errstate(invalid="ignore"):
        return finish_depth(distance_to_planar(dist, focal))


def read_vkitti2_depth(path) -> tuple[np.ndarray, np.ndarray]:
    """Virtual KITTI 2 depth: uint16 PNG in centimetres (metres = value / 100); the far plane
    (65535 = 655.35 m, sky) is invalid."""
    raw = read_png_uint16(path)
    return finish_depth(raw.astype(np.float32) / 100.0, (raw > 0) & (raw < 65535))


def write_png_uint16(path, array: np.ndarray) -> None:
    """Write a uint16 H×W array as a 16-bit PNG (for fixtures and data preparation)."""
    import cv2

    arr = np.asarray(array)
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise DataError(f"write_png_uint16 needs a uint16 HxW array, got {arr.dtype} {arr.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), arr):
        raise DataError(f"could not write PNG {path}")
