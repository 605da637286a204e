"""The package's import structure (docs/architecture.md): no import cycle between dabench's modules,
and the lower layers never import the upper ones. Read from the source with ``ast``, so imports
inside functions count too (a lazy import is still a dependency)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dabench"

# Lower layers may not import these packages (docs/architecture.md, "Who may import whom").
FORBIDDEN = {
    "dabench.eval": ("dabench.finetune", "dabench.train", "dabench.cli", "dabench.bench"),
    "dabench.models": ("dabench.finetune", "dabench.train", "dabench.cli", "dabench.bench", "dabench.eval",
                       "dabench.results"),
    "dabench.metrics": ("dabench.finetune", "dabench.train", "dabench.cli", "dabench.bench", "dabench.eval",
                        "dabench.results", "dabench.models"),
    # data may read dabench.eval.align's list of alignment modes to validate cards (no other eval use)
    "dabench.data": ("dabench.finetune", "dabench.train", "dabench.cli", "dabench.bench", "dabench.results",
                     "dabench.models", "dabench.eval.runner", "dabench.eval.suites", "dabench.eval.cache",
                     "dabench.eval.plan", "dabench.eval.models", "dabench.eval.loop", "dabench.eval.scoring",
                     "dabench.eval.records", "dabench.eval.ordinal", "dabench.eval.protocol_table"),
    "dabench.results": ("dabench.finetune", "dabench.train", "dabench.cli", "dabench.bench"),
    "dabench.train": ("dabench.finetune", "dabench.cli", "dabench.bench"),
    "dabench.finetune": ("dabench.cli", "dabench.bench"),
}
# The core modules every layer may use import no layer (tasks names its runners as lazy strings).
CORE = ("dabench.errors", "dabench.registry", "dabench.provenance", "dabench.safety", "dabench.progress",
        "dabench.viz", "dabench.overrides", "dabench.tasks")
LAYERS = ("dabench.metrics", "dabench.data", "dabench.models", "dabench.eval", "dabench.results", "dabench.train",
          "dabench.finetune", "dabench.cli", "dabench.bench")
FORBIDDEN.update({core: LAYERS for core in CORE})


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The dabench modules ``name`` imports (``from pkg import mod`` resolves to ``pkg.mod`` when that
    is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "dabench" or t.startswith("dabench."):
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in known and t != name:
                    found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {n: _imports(n, p, known) for n, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def _is_parent_package(a: str, b: str) -> bool:
    return b.startswith(a + ".")


def test_no_import_cycle_between_modules():
    """No two modules import each other, directly or through others. A package ``__init__`` that
    re-exports its submodules is not a cycle with them (``pkg`` -> ``pkg.mod`` -> ``pkg`` happens
    whenever ``pkg.mod`` is imported and is how Python packages work), so those edges are left out."""
    graph = {n: {m for m in deps if not _is_parent_package(m, n) and not _is_parent_package(n, m)}
             for n, deps in _graph().items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(layer):
    bad = []
    for mod, deps in _graph().items():
        if mod == layer or mod.startswith(layer + "."):
            bad += [f"{mod} imports {d}" for d in sorted(deps)
                    if any(d == f or d.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_cycle_and_a_layer_breach():
    """The checks above can fail: a two-module cycle and a breach are found on a made-up graph."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    g = _graph()
    assert "dabench.eval.runner" in g and g["dabench.eval.runner"], "the import scan found nothing"


MAX_MODULE_LINES = 500


def test_no_module_is_longer_than_500_lines():
    """Modules are split by what they do before they grow past ~500 lines."""
    long = {str(p.relative_to(PKG.parent)): n for p in sorted(PKG.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by what they do): {long}"


def test_no_module_imports_a_private_name_of_another():
    """``from dabench.x import _name`` reaches into another module's internals: make the name public
    (with a docstring) or keep the code in one module."""
    bad = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("dabench"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and node.module != name:
                    bad.append(f"{name}:{node.lineno} imports {', '.join(private)} from {node.module}")
    assert not bad, "\n".join(bad)


def test_no_reference_to_this_projects_issue_tracker():
    """Code and tests explain themselves; the tracker is not part of the repository. (References to other
    projects' issues, e.g. "V2 repo issue 280", cite sources and stay.)"""
    own = re.compile(r"\(issues? \d+|(?<!repo )\bissue \d+ §|Done-when of issue")
    root = PKG.parent
    hits = [f"{p.relative_to(root)}:{i}" for p in [*PKG.rglob("*.py"), *PKG.rglob("*.yaml"), *(root / "tests").glob("*.py")]
            if p.name != "test_architecture.py"
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if own.search(line)]
    assert not hits, hits
