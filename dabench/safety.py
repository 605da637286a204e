"""Trust boundaries: names from files and flags that build paths, and output folders dabench may write.

- :func:`safe_join` joins a root folder with a name taken from a record, a suite, a card or a flag
  and refuses anything that would land outside the root (``..``, ``/``, an absolute path, a symlink
  that resolves elsewhere). Every path built from such a name goes through it.
- :func:`claim_out_dir` guards a training/fine-tuning ``--out``: dabench writes a marker file
  (:data:`OUT_MARKER`) into every run folder it creates, and refuses an existing, non-empty folder
  without that marker (someone else's files) unless ``--resume`` or ``--force`` is given.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from dabench.errors import ConfigError, DabenchError

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
