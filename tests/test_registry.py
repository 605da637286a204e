"""dabench.registry.Registry: duplicates raise, unknown names list the valid ones, lazy targets import on use."""
from __future__ import annotations

import pytest

from dabench.registry import Registry, RegistryError


def test_register_get_and_duplicates():
    reg = Registry("widget")
    reg.register("a", 1)

    @reg.register()
    def b():
        return 2

    assert reg.get("a") == 1 and reg.get("b") is b and "a" in reg and len(reg) == 2
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"]
    with pytest.raises(RegistryError, match="widget 'a' is already registered"):
        reg.register("a", 3)
    with pytest.raises(RegistryError, match="unknown widget 'c'; valid widget names: a, b"):
        reg.get("c")
    with pytest.raises(KeyError):  # RegistryError is also a KeyError
        reg.check("c")


def test_lazy_target_imports_on_first_lookup_and_meta():
    reg = Registry("thing")
    reg.register("join", "os.path:join", source="stdlib")
    reg.register("missing", "dabench_no_such_module:thing")  # registering and listing never import
    assert reg.names() == ["join", "missing"] and reg.check("missing") == "missing"
    import os.path

    assert reg.get("join") is os.path.join and reg.meta("join") == {"source": "stdlib"}
    with pytest.raises(ModuleNotFoundError, match="dabench_no_such_module"):
        reg.get("missing")


def test_unregister():
    reg = Registry("thing")
    reg.register("x", 5)
    reg.unregister("x")
    assert "x" not in reg
    with pytest.raises(RegistryError, match="unknown thing 'x'"):
        reg.unregister("x")
    reg.register("x", 6)  # the name is free again
    assert reg.get("x") == 6
