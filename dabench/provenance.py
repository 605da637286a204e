"""Where dabench keeps things, and what every result record carries about how it was made.

- ``dabench_home()``: ``$DABENCH_HOME`` or ``~/.cache/dabench``; checkpoints live in
  ``dabench_home()/checkpoints``, prediction caches in ``dabench_home()/cache``.
- ``data_root()``: ``--data-root`` or ``$DABENCH_DATA`` (datasets on disk).
- ``checkout_root()``: the git checkout dabench runs from (editable installs), else None (a wheel);
  shipped configuration is found through ``dabench.configs``, never through a checkout.
- ``atomic_write_*``: temp file in the same directory + ``os.replace``, so a crash never leaves
  a half-written result.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The git checkout holding this package (an editable install), or None (installed from a wheel)."""
    root = PACKAGE_DIR.parent
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def dabench_home() -> Path:
    env = os.environ.get("DABENCH_HOME")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "dabench"


def checkpoints_dir() -> Path:
    return dabench_home() / "checkpoints"


def cache_dir() -> Path:
    return dabench_home() / "cache"


def default_results_dir() -> Path:
    env = os.environ.get("DABENCH_RESULTS")
    return Path(env).expanduser().resolve() if env else dabench_home() / "results"


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The datasets root: the explicit argument, else ``$DABENCH_DATA``, else ``None``."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("DABENCH_DATA")
    return Path(env).expanduser().resolve() if env else None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the dabench checkout (``+dirty`` when it has uncommitted changes), or None when
    dabench is installed from a wheel (records then carry the package version)."""
    root = checkout_root()
    if root is None:
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of python and the packages that can change a number."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("dabench", "torch", "timm", "numpy", "pandas", "mmsegmentation", "mmengine", "mmcv", "mmcv-lite"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance(seed: int | None = None, config: dict | None = None) -> dict[str, Any]:
    """The reproducibility block every result record carries."""
    return {"seed": seed, "config": config or {}, "versions": package_versions(),
            "git_commit": git_commit(), "date": now_iso()}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (atomic on POSIX),
    on any error it is removed, so ``path`` is never half-written. The file gets the permissions of a
    new file under the user's umask (not mkstemp's 0600). For writers that take a file name
    (safetensors, savefig, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; results are shared like any new file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _current_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    _atomic_write(Path(path), data)


def atomic_write_text(path: str | os.PathLike, text: str, errors: str = "strict") -> None:
    """``text`` as UTF-8, atomically. ``errors="surrogateescape"`` writes file names that are not UTF-8
    (``os.fsdecode``'s surrogates) back as the bytes the OS gave (per-sample CSVs, indexes)."""
    _atomic_write(Path(path), text.encode("utf-8", errors))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    _atomic_write(Path(path), (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode("utf-8"))


def _json_default(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
