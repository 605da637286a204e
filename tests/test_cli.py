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


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_example(path):
    res = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "example" in res.output.lower(), f"`dabench {' '.join(path)} --help` has no example"


def test_python_dash_m_dabench():
    out = subprocess.run([sys.executable, "-m", "dabench", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout
