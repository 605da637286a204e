"""The documentation cannot rot: code blocks marked runnable (an HTML comment ``<!-- runnable -->`` on
the line before the fence) in README.md and docs/ are executed on the built-in world, page by page in
order, on a fresh DABENCH_HOME; the generated pages cover every command and every protocol."""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- runnable -->"
FENCE = re.compile(r"^(`{3,})(\w+)?[^\n]*\n(.*?)^\1\s*$", re.S | re.M)


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block whose fence line follows a ``<!-- runnable -->`` line."""
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before == MARK:
            out.append(((m.group(2) or "").lower(), m.group(3)))
    return out


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_marker_finds_blocks():
    text = f"x\n{MARK}\n```bash\ndabench ls suites\n```\n\n```bash\nnot me\n```\n"
    assert runnable_blocks(text) == [("bash", "dabench ls suites\n")]


def _commands(lang: str, code: str) -> list[list[str]]:
    if lang in ("python", "py"):
        return [[sys.executable, "-c", code]]
    assert lang in ("bash", "sh", "console", "shell"), f"runnable blocks are bash or python, got {lang!r}"
    cmds = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line)
        assert argv[0] == "dabench", f"runnable shell lines call dabench, got {line!r}"
        cmds.append([sys.executable, "-m", "dabench", *argv[1:]])
    return cmds


PAGES_WITH_EXAMPLES = [p for p in pages() if runnable_blocks(p.read_text(encoding="utf-8"))]


def test_some_pages_have_runnable_examples():
    assert len(PAGES_WITH_EXAMPLES) >= 2


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_examples_run(page, tmp_path):
    env = dict(os.environ, DABENCH_HOME=str(tmp_path / "home"), COLUMNS="200", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DABENCH_CONFIG_PATH", None)
    env.pop("DABENCH_DATA", None)
    work = tmp_path / "work"
    work.mkdir()
    for lang, code in runnable_blocks(page.read_text(encoding="utf-8")):
        for argv in _commands(lang, code):
            res = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, f"{page.name}: {' '.join(argv[2:])} exited {res.returncode}:\n{res.stderr[-3000:]}"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "_gen" / "hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs (the docs extra) is not installed")
def test_cli_reference_covers_every_command():
    import typer.main

    from dabench.cli import app

    page = _hooks().cli_reference()

    def walk(cmd, path):
        yield " ".join(path)
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for sub in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, sub), [*path, sub])

    names = list(walk(typer.main.get_command(app), ["dabench"]))
    assert len(names) > 20
    for name in names:
        assert f"`{name}`" in page, name


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs (the docs extra) is not installed")
def test_protocols_page_lists_every_suite_dataset():
    from dabench.eval.protocol_table import protocol_rows

    page = _hooks().protocols_page()
    for r in protocol_rows(None):
        assert f"| {r['suite']} | {r['dataset']} |" in page
