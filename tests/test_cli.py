"""The CLI as a whole: every job is listed by `dabench --help`, every command has help text with an example,
and `python -m dabench` works (torchrun -m dabench relies on it)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from dabench.cli import app

runner = CliRunner()

JOBS = ["ls", "predict", "data", "run", "train", "finetune", "results", "table", "paper", "regress", "bench"]


def _walk(cmd, path: tuple[str, ...] = ()):
    yield path, cmd
    if hasattr(cmd, "commands"):  # a group (typer may vendor its own click, so no isinstance check)
        for name, sub in cmd.commands.items():
            yield from _walk(sub, path + (name,))


def _commands():
    root = typer.main.get_command(app)
    found = [(p, c) for p, c in _walk(root) if p]
    assert len(found) > 15, "the CLI walk found too few commands"
    return found


def test_help_lists_every_job():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for job in JOBS:
        assert f" {job} " in res.output or f"│ {job}" in res.output, f"`dabench --help` does not list {job!r}"


def _examples(cmd) -> list[list[str]]:
    """The example command lines in a command's own help text: ``Example: dabench ...`` (or indented
    ``dabench ...`` lines under ``Examples:``), split into words; text in parentheses after the
    command is prose, not part of it."""
    text = "\n".join(filter(None, [cmd.help, getattr(cmd, "epilog", None)]))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.lower().startswith("example"):
            line = line.split(":", 1)[-1].strip()
        if line.startswith("dabench "):
            found.append(line.split("(")[0].split())
    return found


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_a_valid_example(path):
    """Every command's help shows at least one example that names this very command and uses only
    options the command has (a renamed flag cannot leave a stale example behind)."""
    res = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    cmd = dict(_commands())[path]
    examples = [e for e in _examples(cmd) if e[1:1 + len(path)] == list(path)]
    assert examples, f"`dabench {' '.join(path)} --help` shows no `dabench {' '.join(path)} ...` example"
    if hasattr(cmd, "commands"):  # a group: the example names one of its subcommands
        for ex in examples:
            assert len(ex) > 1 + len(path) and ex[1 + len(path)] in cmd.commands, ex
        return
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for ex in examples:
        for word in ex[1 + len(path):]:
            if word.startswith("-") and not word.lstrip("-").replace(".", "").isdigit():
                assert word.split("=")[0] in known, (
                    f"example `{' '.join(ex)}` uses {word!r}, not an option of `dabench {' '.join(path)}`")


def test_python_dash_m_dabench():
    out = subprocess.run([sys.executable, "-m", "dabench", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout
