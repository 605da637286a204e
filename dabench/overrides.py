"""``KEY=VALUE`` overrides for mmengine configs: ``--cfg-option`` (``dabench finetune seg|metric``)
and ``--set`` (``dabench train``), one parser for both.

Values are read as JSON when they parse (``null``, ``true``, ``1e-4``, ``[56, 70]``,
``{"a": 1}``), a value in braces also as a Python literal (``{'name': 'nyu'}``), else with
mmengine's own ``DictAction`` rules (``None``, ``(1, 2)``, ``a,b,c``, plain strings); the dotted
keys are merged into the config by ``Config.merge_from_dict``.
"""
from __future__ import annotations

import ast
import json
from typing import Any, Sequence

from dabench.errors import ConfigError, excerpt


def parse_value(text: str, flag: str = "--cfg-option") -> Any:
    """One override value: JSON first; a value holding a mapping (``{...}`` or a list of them) as a
    Python literal; then mmengine's ``DictAction`` parsing."""
    text = text.strip()
    too_deep = ConfigError(f"{flag} value {excerpt(text[:40])}... is nested too deeply to read")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise too_deep from None
    if text.startswith("{") or (text.startswith("[") and "{" in text):  # e.g. dataset specs
        try:
            return ast.literal_eval(text)  # literals only: no name, call or attribute is evaluated
        except (ValueError, SyntaxError, TypeError):
            raise ConfigError(f"{flag} value {excerpt(text[:80])} is not valid JSON or a Python literal") from None
        except (RecursionError, MemoryError):
            raise too_deep from None
    from mmengine.config import DictAction

    try:
        return DictAction._parse_iterable(text)
    except AssertionError:  # mmengine asserts balanced brackets
        raise ConfigError(f"{flag} value {excerpt(text)} has unbalanced brackets") from None


def parse_cfg_options(items: Sequence[str] | None, flag: str = "--cfg-option",
                      example: str = "optimizer.lr=1e-4") -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` (dotted keys, as ``merge_from_dict`` takes)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE (e.g. {example}), got {excerpt(item)}")
        out[key.strip()] = parse_value(raw, flag)
    return out


def apply_cfg_options(cfg, options: dict[str, Any] | None, source: str, flag: str = "--cfg-option"):
    """Merge ``options`` into the mmengine ``Config`` ``cfg`` (in place; returns it); a key path that
    cannot be applied is a ``ConfigError`` naming ``source``."""
    if not options:
        return cfg
    try:
        cfg.merge_from_dict(dict(options), allow_list_keys=True)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{flag} could not be applied to {source}: {e}") from None
    return cfg
