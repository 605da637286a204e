"""A small name -> object registry shared by models, metrics, datasets, suites and heads.

Entries may be registered eagerly (an object) or lazily (a ``"package.module:attr"`` string
that is imported on first lookup), so listing names never imports heavy modules.
"""
from __future__ import annotations

import importlib
from typing import Any, Iterator


from dabench.errors import DabenchError


class RegistryError(DabenchError, KeyError):
    """Unknown or duplicate registry name. The message lists the valid names."""


class Registry:
    """Maps names to objects. Registering a name twice raises; an unknown name lists the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str | None = None, obj: Any = None, **meta: Any):
        """Register ``obj`` under ``name``; without ``obj`` returns a decorator.

        ``obj`` may be a ``"module:attr"`` string for lazy import. Extra keyword arguments are
        stored as metadata (``registry.meta(name)``).
        """

        def _add(o: Any) -> Any:
            key = name or getattr(o, "__name__", None)
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {o!r}")
            if key in self._entries:
                raise RegistryError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = o
            self._meta[key] = dict(meta)
            return o

        if obj is not None:
            return _add(obj)
        return _add

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names: {', '.join(sorted(self._entries)) or '(none)'}"
            )
        obj = self._entries[name]
        if isinstance(obj, str) and ":" in obj:
            mod, attr = obj.split(":", 1)
            obj = getattr(importlib.import_module(mod), attr)
            self._entries[name] = obj
        return obj

    def meta(self, name: str) -> dict:
        """Metadata given at registration (does not import a lazy entry)."""
        self.check(name)
        return self._meta[name]

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and plug-ins that register something for a while)."""
        self.check(name)
        del self._entries[name]
        del self._meta[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, name: str) -> str:
        """Return ``name`` if registered, else raise the listing error (without importing)."""
        if name not in self._entries:
            self.get(name)
        return name
