"""Everything dabench reads at run time ships here, inside the package, and is found through
``importlib.resources`` (the way matplotlib ships style sheets): it works the same from a wheel, an
editable checkout or a zip of site-packages unpacked anywhere. One layout, one folder per kind::

    dabench/configs/
      datasets/        <name>.yaml dataset cards, splits/ (split lists)
      suites/          <name>.yaml evaluation suites
      published/       <id>.yaml   published tables (paper numbers with their sources)
      ci-baseline/     the records the CI regression gate compares against
      heads/metric/    metric-depth head configs (mmengine, ``_base_`` composition)
      heads/seg/       segmentation head configs (mmengine, ``_base_`` composition)
      train/           training presets (mmengine, ``_base_`` composition)

Users extend it without editing the package: ``$DABENCH_CONFIG_PATH`` lists folders (``os.pathsep``
separated) with the same sub-layout. Their entries come first, so a user entry with a shipped name
shadows the shipped one; ``dabench ls`` marks it. An explicit file path (``--suite my.yaml``,
``--config my_head.py``) bypasses the search entirely.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

#: kind -> the file suffix of its entries (None: a folder tree read as a whole, e.g. the CI baseline)
KINDS: dict[str, str | None] = {
    "datasets": ".yaml",
    "suites": ".yaml",
    "published": ".yaml",
    "ci-baseline": None,
    "heads/metric": ".py",
    "heads/seg": ".py",
    "train": ".py",
}
ENV_VAR = "DABENCH_CONFIG_PATH"


@dataclass(frozen=True)
class Entry:
    """One named configuration file: where it is, whether it is the user's, and what it shadows."""

    name: str
    path: Path
    origin: str  # "shipped" | "user"
    shadows: Path | None = None  # the shipped (or lower user) file this entry hides


def _suffix(kind: str) -> str | None:
    """The entry suffix of ``kind`` (``KINDS``); an unknown kind raises naming the valid ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown configuration kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return KINDS[kind]


def shipped_dir(kind: str) -> Path:
    """The package's own folder of ``kind`` (a real folder: wheels install as files)."""
    _suffix(kind)
    root = resources.files(__name__)
    return Path(str(root.joinpath(*kind.split("/"))))


def user_dirs(kind: str) -> list[Path]:
    """``<folder>/<kind>`` for each folder of ``$DABENCH_CONFIG_PATH`` that has one, in order."""
    _suffix(kind)
    out = []
    for folder in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if folder.strip():
            d = Path(folder).expanduser().joinpath(*kind.split("/"))
            if d.is_dir():
                out.append(d.resolve())
    return out


def search_path(kind: str) -> list[Path]:
    """Folders searched for ``kind``, first match wins: the user's folders, then the shipped one."""
    return [*user_dirs(kind), shipped_dir(kind)]


def entries(kind: str) -> dict[str, Entry]:
    """Every named entry of ``kind`` (file stem -> :class:`Entry`), user entries shadowing shipped ones.
    Names starting with ``_`` (``_base_`` folders, private files) are not entries."""
    suffix = _suffix(kind)
    if suffix is None:
        raise ValueError(f"configuration kind {kind!r} is a folder tree, not named entries")
    shipped = shipped_dir(kind)
    found: dict[str, Entry] = {}
    for d in search_path(kind):
        origin = "shipped" if d == shipped else "user"
        for p in sorted(d.glob(f"*{suffix}")):
            if p.name.startswith("_") or not p.is_file():
                continue
            name = p.name[: -len(suffix)]
            if name in found:
                if found[name].shadows is None:
                    found[name] = Entry(name, found[name].path, found[name].origin, shadows=p)
                continue
            found[name] = Entry(name, p, origin)
    return dict(sorted(found.items()))


def names(kind: str) -> list[str]:
    """Sorted entry names of ``kind``."""
    return list(entries(kind))


def find(kind: str, name: str) -> Path | None:
    """The file of entry ``name`` of ``kind`` (user folders first), or None. ``name`` must be a plain
    name: separators and ``..`` never reach the file system."""
    suffix = _suffix(kind)
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\0" in name:
        return None
    for d in search_path(kind):
        p = d / f"{name}{suffix or ''}"
        if p.is_file():
            return p
    return None


def shipped_file(kind: str, *parts: str) -> Path:
    """A file inside the shipped folder of ``kind`` (e.g. ``shipped_file("heads/metric", "_base_", "tiny.py")``)."""
    return shipped_dir(kind).joinpath(*parts)


def origin_label(entry: Entry | None) -> str:
    """How ``dabench ls`` marks an entry: 'shipped', 'user' or 'user (shadows shipped)'."""
    if entry is None or entry.origin == "shipped":
        return "shipped"
    return "user (shadows shipped)" if entry.shadows is not None else "user"
