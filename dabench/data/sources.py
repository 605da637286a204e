"""Image sources for training at scale: ``wds:<brace pattern>``, ``list:<file>``, ``folder:<dir>``.

All three are map-style datasets (``len``, ``ds[i]`` -> ``{"image": uint8 H×W×3, "name": str}``,
plus ``depth``/``valid`` for labelled WebDataset samples), so the training sampler can shuffle
them per epoch and shard the order across ranks, and none walks a tree at every start:

- ``folder:<dir>``: the images under ``dir`` (recursively, sorted), listed once in
  ``<dir>/.dabench-index`` (or, when ``dir`` is read-only, in dabench's cache); later starts read
  that file. Delete it after changing the folder.
- ``list:<file>``: a text file of image paths, one a line, relative to the list's folder (``#``
  comments and blank lines skipped); a path that leaves that folder is refused.
- ``wds:<pattern>``: WebDataset tar shards, e.g. ``wds:/data/sa1b/shard-{000000..000999}.tar``
  (``braceexpand``, webdataset's own pattern syntax). Members are grouped into samples by
  webdataset's key rule (``base_plus_ext``); the first image member (jpg, jpeg, png, webp) is the
  image, an optional ``depth.npy`` (float32 metres, 0 invalid) makes the sample labelled. Each shard's
  member offsets are indexed once (cached under ``cache_dir()/wds-index``, keyed by path, size and
  modification time) and samples are read with ``os.pread``, so random access needs no extraction.

Decoded images are capped at ``dabench.data.formats.max_pixels()`` (read from the header before decoding).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
from pathlib import Path

import numpy as np
import torch

from dabench.errors import ConfigError, DataError, MissingFileError, excerpt

log = logging.getLogger("dabench.data")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
WDS_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
INDEX_NAME = ".dabench-index"
INDEX_HEADER = "# dabench-index/1"
SOURCE_KINDS = ("wds:", "list:", "folder:")

__all__ = ["build_image_source", "is_image_source", "decode_image", "FolderImages", "ListImages", "WdsImages",
           "write_shards", "INDEX_NAME"]


def is_image_source(name: str) -> bool:
    return isinstance(name, str) and name.startswith(SOURCE_KINDS)


def build_image_source(name: str, limit: int | None = None, follow_symlinks: bool = False):
    """The source a ``wds:`` / ``list:`` / ``folder:`` name stands for (first ``limit`` samples).
    ``follow_symlinks``: let ``folder:``/``list:`` images be symlinks resolving outside their root
    (refused by default)."""
    kind, _, arg = name.partition(":")
    if not arg:
        raise ConfigError(f"source {excerpt(name)} names no path (e.g. folder:/data/images)")
    if kind == "folder":
        return FolderImages(arg, limit=limit, follow_symlinks=follow_symlinks)
    if kind == "list":
        return ListImages(arg, limit=limit, follow_symlinks=follow_symlinks)
    if kind == "wds":
        return WdsImages(arg, limit=limit)
    raise ConfigError(f"unknown source kind {excerpt(kind)}; valid: {', '.join(k[:-1] for k in SOURCE_KINDS)}")


def decode_image(data: bytes, what: str) -> np.ndarray:
    """RGB uint8 H×W×3 from encoded bytes; ``DataError`` naming ``what`` if it is not an image or is
    larger than the pixel cap ``dabench.data.formats.max_pixels()`` (checked from the header, before decoding)."""
    import cv2

    from dabench.data.formats import decode_image_bytes

    return np.ascontiguousarray(decode_image_bytes(data, cv2.IMREAD_COLOR, what)[..., ::-1])


def _inside(root: Path, rel: str, what: str) -> Path:
    """``root / rel`` when ``rel`` is a relative path that stays inside ``root``; else ``DataError``."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not rel:
        raise DataError(f"{what}: entry {excerpt(rel)} must be a relative path inside {root} (no '..', not absolute)")
    return root / p


def check_link(root: Path, path: Path, follow_symlinks: bool, what: str) -> None:
    """``DataError`` when ``path`` (under ``root``) resolves outside ``root`` through a symlink and
    ``follow_symlinks`` is off: a folder or list source stays inside its folder unless asked."""
    if follow_symlinks:
        return
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise DataError(f"{what}: {path} is a symlink leading outside {root}; refused (pass --follow-symlinks, or "
                        "follow_symlinks=True in the source's config entry, to read linked files)")


class _Files(torch.utils.data.Dataset):
    """Images at ``root / rel`` for each relative name."""

    def __init__(self, root: Path, names: list[str], limit: int | None, follow_symlinks: bool = False):
        self.root = root
        self.follow_symlinks = bool(follow_symlinks)
        self.names = names[: int(limit)] if limit is not None else names

    def __len__(self) -> int:
        return len(self.names)

    def image_bytes(self, i: int) -> bytes:
        """The encoded bytes of image ``i``: a regular file inside the root (symlinks leaving it refused
        unless ``follow_symlinks``), size-capped, its header checked from a bounded prefix."""
        from dabench.data.formats import read_image_file

        path = self.root / self.names[int(i)]
        if not os.path.lexists(path):
            raise MissingFileError(f"image {path} (listed in {self.listing}) does not exist")
        check_link(self.root, path, self.follow_symlinks, f"image listed in {self.listing}")
        return read_image_file(path)

    def __getitem__(self, i: int) -> dict:
        rel = self.names[int(i)]
        return {"image": decode_image(self.image_bytes(i), f"image file {self.root / rel}"), "name": rel}


class FolderImages(_Files):
    """``folder:<dir>``: every image under ``dir``, listed once in ``.dabench-index``. Only regular
    files are listed (a FIFO or device named ``x.jpg`` is skipped); a symlink resolving outside ``dir``
    is refused unless ``follow_symlinks``."""

    def __init__(self, root: str | os.PathLike, limit: int | None = None, follow_symlinks: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise MissingFileError(f"image folder {root} does not exist")
        self.listing = folder_index_path(root)
        if self.listing.is_file():
            names = _read_index(self.listing, root)
        else:
            names = []
            for p in root.rglob("*"):
                if p.suffix.lower() in IMAGE_EXTS and p.is_file():
                    check_link(root, p, follow_symlinks, f"folder source {root}")
                    names.append(p.relative_to(root).as_posix())
            names.sort(key=os.fsencode)
            _write_index(self.listing, names)
            log.info("indexed %d images under %s in %s", len(names), root, self.listing)
        super().__init__(root, names, limit, follow_symlinks)


def folder_index_path(root: Path) -> Path:
    """``root/.dabench-index``, or a cache file when ``root`` is not writable (never touch the data)."""
    own = root / INDEX_NAME
    if own.is_file() or os.access(root, os.W_OK):
        return own
    from dabench.provenance import cache_dir

    key = hashlib.sha1(os.fsencode(root.resolve())).hexdigest()[:16]
    return cache_dir() / "folder-index" / f"{key}{INDEX_NAME}"


MAX_LIST_BYTES = 4 * 2**30  # a list or index file: 40 million paths of 100 bytes


def _write_index(path: Path, names: list[str]) -> None:
    """One name a line, written as the OS gave it (``os.fsencode``: a Latin-1 file name keeps its bytes)."""
    from dabench.provenance import atomic_write_bytes

    atomic_write_bytes(path, f"{INDEX_HEADER} {len(names)}\n".encode() + b"".join(os.fsencode(n) + b"\n" for n in names))


def _read_lines(path: Path, what: str) -> list[str]:
    """``path``'s lines, or one DataError naming it (binary, unreadable, not a regular file, too large).
    Lines are file names as the OS gives them: bytes that are not UTF-8 are kept (surrogateescape, as
    ``os.fsdecode``); a NUL byte (no file name holds one) marks a binary file."""
    from dabench.safety import read_bounded

    data = read_bounded(path, what, MAX_LIST_BYTES)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{what} {path} is not UTF-8 text (a NUL byte at byte {nul}: a binary file?); expected one "
                        "relative image path a line")
    return data.decode("utf-8", "surrogateescape").splitlines()


def _read_index(path: Path, root: Path) -> list[str]:
    lines = _read_lines(path, "folder index")
    if not lines or not lines[0].startswith(INDEX_HEADER):
        raise DataError(f"{path} is not a dabench folder index (first line should be {excerpt(INDEX_HEADER)}); delete it "
                        "to rebuild")
    try:
        count = int(lines[0].split()[-1])
    except ValueError:
        raise DataError(f"{path}: bad header {excerpt(lines[0])}") from None
    names = [ln for ln in lines[1:] if ln]
    if len(names) != count:
        raise DataError(f"{path} lists {len(names)} images but its header says {count} (truncated?); delete it "
                        "to rebuild")
    for n in names:
        _inside(root, n, str(path))
    return names


class ListImages(_Files):
    """``list:<file>``: image paths relative to the list's folder, one a line."""

    def __init__(self, listing: str | os.PathLike, limit: int | None = None, follow_symlinks: bool = False):
        self.listing = Path(listing)
        if not self.listing.is_file():
            raise MissingFileError(f"image list {self.listing} does not exist")
        root = self.listing.resolve().parent
        names = []
        for ln in _read_lines(self.listing, "image list"):
            ln = ln.strip()
            if ln and not ln.startswith("#"):
                _inside(root, ln, f"image list {self.listing}")
                names.append(ln)
        super().__init__(root, names, limit, follow_symlinks)


# ---------------------------------------------------------------- WebDataset shards
MAX_SHARDS = 100_000  # shards one wds: pattern may name (SA-1B is 1000 shards)


def expand_pattern(pattern: str, max_shards: int = MAX_SHARDS) -> list[Path]:
    """The shards a brace pattern names, counted first (:func:`dabench.data.brace.count_members`, no
    expansion) and refused above ``max_shards``, then expanded lazily: the first missing shard is
    reported with how many of the named shards are missing."""
    from braceexpand import braceexpand

    from dabench.data.brace import count_members

    try:
        count = count_members(pattern)
    except ValueError as e:
        raise ConfigError(f"bad shard pattern {excerpt(pattern)}: {e}") from None
    if count > max_shards:
        raise ConfigError(f"shard pattern {excerpt(pattern)} names {count} shards, more than the {max_shards} "
                          "allowed; split the data or check the pattern")
    shards, missing = [], []
    try:
        for s in braceexpand(pattern):
            shards.append(Path(s))
            if not shards[-1].is_file():
                missing.append(shards[-1])
    except Exception as e:  # noqa: BLE001 - braceexpand raises plain errors on bad patterns
        raise ConfigError(f"bad shard pattern {excerpt(pattern)}: {type(e).__name__} {excerpt(str(e))}") from None
    if missing:
        raise MissingFileError(f"shard {missing[0]} of wds:{excerpt(pattern)} does not exist ({len(missing)} of "
                               f"{len(shards)} missing)")
    return shards


def _tail_cut(shard: Path, end: int, size: int) -> int:
    """Bytes after the last complete member that are not tar's zero end-of-archive blocks (a member
    cut inside its header or data); 0 for a complete shard."""
    if end >= size:
        return 0
    with open(shard, "rb") as f:
        f.seek(end)
        tail = f.read(min(size - end, 1 << 20))
    return size - end if tail.strip(b"\0") else 0


def shard_index(shard: Path) -> list[dict]:
    """``[{"key", "members": {ext: [offset, size]}}]`` of one tar shard, in file order (cached)."""
    info = shard_scan(shard)
    return info["samples"]


def shard_scan(shard: Path) -> dict:
    """``{"samples": shard_index, "members": N, "cut_bytes": B}`` of one shard (cached): ``cut_bytes``
    counts the bytes after the last complete member when the shard was cut (e.g. inside a member
    header: tar readers silently stop there), 0 for a complete shard."""
    from dabench.provenance import atomic_write_json, cache_dir
    from webdataset.tariterators import base_plus_ext

    st = shard.stat()
    key = hashlib.sha1(os.fsencode(shard.resolve()) + f"|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    cached = cache_dir() / "wds-index" / f"{key}.json"
    if cached.is_file():
        try:
            c = json.loads(cached.read_text())
            return {"samples": c["samples"], "members": int(c["members"]), "cut_bytes": int(c["cut_bytes"])}
        except (ValueError, KeyError, TypeError):
            pass  # a damaged (or older) cache entry is rebuilt
    samples: list[dict] = []
    members = 0
    try:
        with tarfile.open(shard, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                base, ext = base_plus_ext(m.name)
                if base is None:
                    continue
                if not samples or samples[-1]["key"] != base:
                    samples.append({"key": base, "members": {}})
                if m.offset_data + m.size > st.st_size:  # a header may declare any size: never read past the end
                    raise DataError(f"WebDataset shard {shard}: member {excerpt(m.name)} declares {m.size} bytes at "
                                    f"byte {m.offset_data}, past the file's end ({st.st_size} bytes; truncated?)")
                samples[-1]["members"][ext.lower()] = [m.offset_data, m.size]
                members += 1
            cut = _tail_cut(shard, tf.offset, st.st_size)
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"WebDataset shard {shard} is not a readable (uncompressed) tar file: {e}") from None
    if cut:
        log.warning("WebDataset shard %s was cut: %d members read, then %d bytes that are not a complete member "
                    "(a partial header or missing end-of-archive marker); the rest of the shard is lost", shard,
                    members, cut)
    info = {"samples": samples, "members": members, "cut_bytes": cut}
    atomic_write_json(cached, {"shard": os.fsencode(shard).decode("utf-8", "backslashreplace"), **info})
    return info


class WdsImages(torch.utils.data.Dataset):
    """``wds:<pattern>``: samples of WebDataset tar shards, by global index (shard order, then file order)."""

    def __init__(self, pattern: str, limit: int | None = None):
        self.pattern = pattern
        self.shards = expand_pattern(pattern)
        self.samples: list[tuple[int, dict]] = []
        self.cut: list[dict] = []  # shards whose tail was cut: {"shard", "members_read", "cut_bytes"}
        for k, shard in enumerate(self.shards):
            info = shard_scan(shard)
            if info["cut_bytes"]:
                self.cut.append({"shard": str(shard), "members_read": info["members"], "cut_bytes": info["cut_bytes"]})
            for s in info["samples"]:
                img = next((e for e in WDS_IMAGE_KEYS if e in s["members"]), None)
                if img is None:
                    continue  # a sample without an image (e.g. metadata only) is not a training sample
                self.samples.append((k, {"key": s["key"], "image": s["members"][img],
                                         "depth": s["members"].get("depth.npy")}))
                if limit is not None and len(self.samples) >= int(limit):
                    break
            if limit is not None and len(self.samples) >= int(limit):
                break
        self._fds: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def report(self) -> dict:
        """What was read, for the run's records: shard and sample counts, and the shards that were cut."""
        return {"source": f"wds:{self.pattern}", "shards": len(self.shards), "samples": len(self.samples),
                "cut_shards": list(self.cut)}

    def _read(self, k: int, offset: int, size: int) -> bytes:
        pid = os.getpid()
        if k not in self._fds or self._fds[k][0] != pid:  # descriptors are per process (DataLoader workers)
            self._fds[k] = (pid, os.open(self.shards[k], os.O_RDONLY))
        data = os.pread(self._fds[k][1], size, offset)
        if len(data) != size:
            raise DataError(f"WebDataset shard {self.shards[k]} is truncated at byte {offset}")
        return data

    def __getitem__(self, i: int) -> dict:
        k, s = self.samples[int(i)]
        where = f"sample {excerpt(s['key'])} of shard {self.shards[k]}"
        out = {"image": decode_image(self._read(k, *s["image"]), where), "name": f"{self.shards[k].name}/{s['key']}"}
        if s["depth"] is not None:
            from dabench.data.formats import load_npy_bytes

            depth = load_npy_bytes(self._read(k, *s["depth"]), f"depth.npy of {where}")
            if depth.shape != out["image"].shape[:2]:
                raise DataError(f"depth.npy of {where} is {depth.shape}, its image {out['image'].shape[:2]}")
            depth = np.asarray(depth, dtype=np.float32)
            valid = np.isfinite(depth) & (depth > 0)
            out["depth"], out["valid"] = np.where(valid, depth, 0).astype(np.float32), valid
        return out

    def __del__(self):
        for pid, fd in getattr(self, "_fds", {}).values():
            if pid == os.getpid():
                try:
                    os.close(fd)
                except OSError:
                    pass


def write_shards(source, out_dir: str | os.PathLike, *, maxcount: int = 1000, prefix: str = "shard",
                 quality: int = 95) -> list[Path]:
    """Write ``source``'s images (a ``folder:`` / ``list:`` source or any dataset of ``{"image",
    "name"}``) as WebDataset shards ``out_dir/<prefix>-NNNNNN.tar`` of ``maxcount`` samples each;
    JPEG inputs are copied byte for byte, others encoded as JPEG (``quality``). Returns the shards."""
    import webdataset as wds

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; shards go into an empty folder")
    root = getattr(source, "root", None)
    if root is not None and (out_dir.resolve() == Path(root).resolve()
                             or Path(root).resolve() in out_dir.resolve().parents):
        raise ConfigError(f"--out {out_dir} is inside the input folder {root}; choose a folder outside the data")
    if out_dir.exists() and any(out_dir.glob(f"{prefix}-*.tar")):
        raise ConfigError(f"{out_dir} already holds {prefix}-*.tar shards; choose an empty --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir} is not empty; shards go into an empty (or new) folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = str(out_dir / f"{prefix}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=int(maxcount), verbose=0) as sink:
        for i in range(len(source)):
            name = getattr(source, "names", None)
            if name is not None and Path(name[i]).suffix.lower() in (".jpg", ".jpeg"):
                # the same checks as training's reads: a regular file inside the root, size-capped,
                # header and pixel cap from a bounded prefix, then a full decode (corrupt files refused)
                data = source.image_bytes(i)
                decode_image(data, f"image {source.root / name[i]}")
            else:
                data = _encode_jpeg(source[i]["image"], quality)
            sink.write({"__key__": f"{i:09d}", "jpg": data})
    return sorted(out_dir.glob(f"{prefix}-*.tar"))


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError("could not encode an image as JPEG")
    return buf.tobytes()
