"""dabench's error types.

Every error a user can cause (bad input, unknown names, wrong files) is a ``DabenchError``: the
CLI prints its one-line message and exits with code 2 instead of showing a traceback. They are
``click.ClickException`` subclasses so typer handles them the same way in the real CLI and in
``CliRunner`` tests, and also subclass the matching builtin (``ValueError``, ``KeyError``,
``FileNotFoundError``) so library callers can catch them naturally.
"""
from __future__ import annotations

import click

try:  # typer >= 0.20 vendors its own click; its CLI only catches *that* ClickException
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    _TyperClickException = click.ClickException
_BASES = (click.ClickException,) if _TyperClickException is click.ClickException else \
    (click.ClickException, _TyperClickException)


class DabenchError(*_BASES):
    exit_code = 2

    def __init__(self, message: str):
        click.ClickException.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DabenchError, ValueError):
    """A config/card/suite value is unknown, missing or of the wrong type."""


class DataError(DabenchError, ValueError):
    """A data file is corrupt, truncated, of the wrong size or format."""


class MissingFileError(DabenchError, FileNotFoundError):
    """A file named by a split list, checkpoint path or argument does not exist."""


class CheckpointError(DabenchError, ValueError):
    """A checkpoint is missing keys, has unexpected keys, or belongs to another architecture."""


def excerpt(value, limit: int = 80) -> str:
    """A short ``repr`` of ``value`` for an error message: at most ``limit`` characters, built without
    ever rendering the whole value (a 25-million-number list from a file, or a YAML structure whose
    aliases expand to millions of nodes, costs a few hundred characters of work, not gigabytes).
    Cut text ends in ``...``."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset, r.maxfrozenset, r.maxdeque = 3, 6, 6, 4, 6, 6, 6
    r.maxstring = r.maxother = r.maxlong = max(12, limit)
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
