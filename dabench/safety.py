"""Trust boundaries: names from files and flags that build paths, and output folders dabench may write.

- :func:`safe_join` joins a root folder with a name taken from a record, a suite, a card or a flag
  and refuses anything that would land outside the root (``..``, ``/``, an absolute path, a symlink
  that resolves elsewhere). Every path built from such a name goes through it.
- :func:`claim_out_dir` guards a training/fine-tuning ``--out``: dabench writes a marker file
  (:data:`OUT_MARKER`) into every run folder it creates, and refuses an existing, non-empty folder
  without that marker (someone else's files) unless ``--resume`` or ``--force`` is given.
- :func:`read_bounded` is how a file from outside is read: it opens only regular files (a FIFO, a
  device such as ``/dev/zero``, a socket or a folder is refused, never waited on) and refuses a file
  whose size is above a cap known before anything is read (a sparse 20 GiB file is 8 KiB on disk but
  20 GiB to read). :func:`read_text_bounded` adds the UTF-8 check.
- :func:`load_yaml` is the one YAML loader: bounded read, ``yaml.SafeLoader``, and aliases counted
  as they expand, so a "billion laughs" file is refused before anything builds or prints it.
- :func:`check_out_dir` checks an output folder before any work starts (not a file, no file where a
  folder is needed).
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from dabench.errors import ConfigError, DabenchError, DataError, MissingFileError, excerpt

OUT_MARKER = ".dabench-run"  # JSON {"created_by": "dabench", "command": ...} in every run folder dabench made


def safe_join(root: str | os.PathLike, *names: str, what: str = "name", subdirs: bool = False,
              error: type[DabenchError] = ConfigError) -> Path:
    """``root / names...``, or ``error`` (default ``ConfigError``) naming ``what`` when the result would
    leave ``root``.

    ``names`` come from untrusted places (a record's ``suite``, a card's file names, a flag). Each
    must be a plain file name — not empty, ``.``, ``..``, absolute, or holding ``/``, ``\\`` or NUL —
    unless ``subdirs=True``, which allows relative sub-paths (``scene/0001.png``) without ``..``.
    Symlinks are resolved: a link inside ``root`` pointing outside it is refused too. The returned
    path is ``root``-relative as given (not resolved), so messages show the user's spelling.
    """
    root = Path(root)
    for name in names:
        s = str(name)
        bad = (not s or "\x00" in s or "\\" in s or os.path.isabs(s)
               or (not subdirs and ("/" in s or s in (".", "..")))
               or (subdirs and any(part == ".." for part in s.split("/"))))
        if bad:
            raise error(f"{what} {s!r} cannot be used as a path inside {root}: names must not be empty, "
                              "absolute, '.', '..' or contain " + ("'..' components" if subdirs else "'/'"))
    path = root.joinpath(*map(str, names))
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise error(f"{what} {'/'.join(map(str, names))!r} resolves to {real}, outside {root} "
                          "(a symlink pointing out of it?)")
    return path


def registered_checkpoint_path(name: str) -> Path:
    """``checkpoints_dir()/<name>.safetensors``, where train/finetune register their final weights;
    a ``--name`` that would leave the folder (``../x``) is a ``ConfigError`` (checked before training)."""
    from dabench.provenance import checkpoints_dir

    return safe_join(checkpoints_dir(), f"{name}.safetensors", what="checkpoint name (--name)")


def _has_marker(folder: Path) -> bool:
    marker = folder / OUT_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("created_by") == "dabench"
    except (OSError, ValueError, AttributeError):
        return False


def _is_dabench_run(out: Path) -> bool:
    """``out`` carries the marker, or is a stage folder (``teacher/``, ...) of a marked pipeline run."""
    return _has_marker(out) or _has_marker(out.resolve().parent)


def claim_out_dir(out: str | os.PathLike, *, command: str, resume: bool = False, force: bool = False) -> Path:
    """Create (or accept) the run folder ``out`` and mark it as dabench's.

    Refused with a ``ConfigError``: ``out`` is an existing file; or an existing non-empty folder
    without dabench's marker file (a user's folder: its ``config.py`` or other files would be
    overwritten) unless ``resume`` (the user says it is a run) or ``force``.
    """
    from dabench.provenance import atomic_write_json, now_iso

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 checks and marks; the others only follow
        out.mkdir(parents=True, exist_ok=True)
        return out
    if out.is_dir() and any(out.iterdir()) and not _is_dabench_run(out) and not (resume or force):
        raise ConfigError(f"--out {out} already holds files that dabench did not create (no {OUT_MARKER} "
                          "marker); choose an empty or new folder, or pass --force to write into it anyway "
                          "(files with the same names are replaced)")
    out.mkdir(parents=True, exist_ok=True)
    if not _is_dabench_run(out):
        atomic_write_json(out / OUT_MARKER, {"created_by": "dabench", "command": command, "date": now_iso()})
    return out


def refuse_out_over_inputs(out, inputs, flag: str = "--out") -> None:
    """``ConfigError`` when the output file ``out`` is one of ``inputs`` (files or folders of result
    records) or an existing file inside one of the folders: a command never overwrites what it reads
    (a new file beside the records is allowed)."""
    if out is None:
        return
    real = Path(out).resolve()
    for p in inputs:
        if p is None or not Path(p).exists():
            continue
        src = Path(p).resolve()
        if real == src or (src.is_dir() and src in real.parents and real.exists()):
            raise ConfigError(f"{flag} {out} is an existing file inside the input {p}; write the output somewhere else "
                              "(dabench never overwrites what it reads)")


# ---------------------------------------------------------------- bounded reads
MAX_CONFIG_BYTES = 4 * 2**20      # a card, suite, published table or option file: YAML/JSON text
MAX_YAML_NODES = 200_000          # nodes of a YAML document once its aliases are expanded
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | os.PathLike, what: str, error: type[DabenchError] = DataError) -> tuple[int, int]:
    """``(fd, size)`` of ``path`` opened read-only, or ``error`` naming ``what`` when it is not a
    regular file (checked on the opened descriptor, so a file swapped for a FIFO after a check is still
    caught; ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer).
    ``MissingFileError`` when it does not exist. The caller closes ``fd``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(os.fspath(path), flags)
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise error(f"cannot open {what} {path} ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise error(f"{what} {path} is {kind}; expected a regular file")
    return fd, int(st.st_size)


def read_fd(fd: int, offset: int, size: int) -> bytes:
    """Exactly the bytes ``[offset, offset + size)`` of ``fd`` (fewer only at the end of the file)."""
    parts, got = [], 0
    while got < size:
        chunk = os.pread(fd, min(size - got, 64 * 2**20), offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_bounded(path: str | os.PathLike, what: str, max_bytes: int, *,
                 error: type[DabenchError] = DataError) -> bytes:
    """The bytes of regular file ``path`` (see :func:`open_regular`), refused with ``error`` naming
    ``what`` when its size is above ``max_bytes`` (checked before reading; a file that grows while being
    read is cut off at the cap and refused too)."""
    fd, size = open_regular(path, what, error)
    try:
        if size > max_bytes:
            raise error(f"{what} {path} is {size} bytes, too large for a {what} (above the {max_bytes}-byte cap); "
                        "refused")
        data = read_fd(fd, 0, max_bytes + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path} ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{what} {path} grew past the {max_bytes}-byte cap while being read")
    return data


def read_text_bounded(path: str | os.PathLike, what: str, max_bytes: int = MAX_CONFIG_BYTES, *,
                      error: type[DabenchError] = DataError, expected: str = "UTF-8 text") -> str:
    """:func:`read_bounded` decoded as UTF-8; ``error`` naming the file and ``expected`` otherwise."""
    data = read_bounded(path, what, max_bytes, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text ({e.reason} at byte {e.start}); expected {expected}") from None


def _expanded_nodes(node, sizes: dict, cap: int) -> int:
    """Node count of ``node`` with every alias expanded (memoised per node, so computing it costs the
    file's size, not the expansion's); stops as soon as ``cap`` is passed."""
    key = id(node)
    if key in sizes:
        if sizes[key] is None:
            raise ValueError("an alias refers to the node that holds it (a recursive structure)")
        return sizes[key]
    sizes[key] = None
    total = 1
    value = node.value
    if isinstance(value, list):
        for item in value:
            for sub in (item if isinstance(item, tuple) else (item,)):
                total += _expanded_nodes(sub, sizes, cap)
                if total > cap:
                    sizes[key] = total
                    return total
    sizes[key] = total
    return total


def load_yaml_text(text: str, what: str, *, error: type[DabenchError] = ConfigError,
                   max_nodes: int = MAX_YAML_NODES):
    """YAML ``text`` parsed with ``yaml.SafeLoader`` after its alias-expanded size was counted: a
    document of more than ``max_nodes`` nodes once aliases are expanded (a "billion laughs"), or a
    recursive one, is refused with ``error`` naming ``what`` before anything is built from it."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_nodes(node, {}, max_nodes)
        if n > max_nodes:
            raise error(f"{what}: its YAML expands (through aliases) to more than {max_nodes} nodes; refused")
        return loader.construct_document(node)
    except DabenchError:
        raise
    except yaml.YAMLError as e:
        raise error(f"{what}: invalid YAML ({excerpt(str(e), 300)})") from None
    except (RecursionError, ValueError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise error(f"{what}: YAML refused ({why})") from None
    finally:
        loader.dispose()


def load_yaml(path: str | os.PathLike, what: str, *, error: type[DabenchError] = ConfigError,
              max_bytes: int = MAX_CONFIG_BYTES, max_nodes: int = MAX_YAML_NODES):
    """The YAML file ``path`` (cards, suites, published tables, configs): read with
    :func:`read_text_bounded` (regular file, at most ``max_bytes``) and parsed by
    :func:`load_yaml_text`. Every YAML file dabench reads goes through here."""
    text = read_text_bounded(path, what, max_bytes, error=error, expected="a YAML file")
    return load_yaml_text(text, f"{what} {path}", error=error, max_nodes=max_nodes)


def check_out_dir(path: str | os.PathLike | None, flag: str, *, subdirs: tuple[str, ...] = ()) -> None:
    """``ConfigError`` (before any work starts) when output folder ``path`` cannot be one: it, or a
    folder above it, is an existing file, or one of ``subdirs`` (folders the command will create inside
    it) is an existing file."""
    if path is None:
        return
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            where = "" if q == p else f" (its parent {q} is a file)"
            raise ConfigError(f"{flag} {p} cannot be a folder{where}: it names an existing file; give a folder")
        if q.is_dir():
            break
    for sub in subdirs:
        q = p / sub
        if q.exists() and not q.is_dir():
            raise ConfigError(f"{flag} {p}: {q} is a file where dabench needs a folder; move it or choose another {flag}")


def load_config_file(path: str | os.PathLike, what: str = "config"):
    """An mmengine ``Config`` from ``path``. A ``.py`` config is Python (mmengine runs it: pass only
    configs you trust). A ``.yaml``/``.yml``/``.json`` config is data and is read as data: through
    :func:`load_yaml` / a bounded JSON read, never through mmengine's own YAML loader (which builds
    arbitrary Python objects from ``!!python/...`` tags); ``_base_`` is only supported in ``.py``."""
    from mmengine.config import Config

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        return Config.fromfile(str(p))
    if suffix == ".json":
        text = read_text_bounded(p, what, error=ConfigError, expected="a JSON config")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ConfigError(f"{what} {p} is not valid JSON ({excerpt(str(e), 200)})") from None
    else:
        data = load_yaml(p, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {p} must hold a mapping of config keys, got {type(data).__name__}")
    if "_base_" in data:
        raise ConfigError(f"{what} {p}: _base_ is only supported in Python (.py) configs")
    return Config(data, filename=str(p))
