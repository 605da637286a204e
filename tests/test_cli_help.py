"""`dabench --help` lists one short line per command; the long text stays in each command's --help."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from dabench.cli import app

GROUPS = [[], ["ls"], ["data"], ["results"], ["train"], ["finetune"]]


def _command_rows(output: str) -> dict[str, int]:
    """Command name -> number of lines its entry takes in the Commands panel."""
    block = output.split("Commands")[1]
    rows: dict[str, int] = {}
    current = None
    for line in block.splitlines()[1:]:
        m = re.match(r"│ (\S+)?\s+(.*)│$", line)
        if not m:
            break
        if m.group(1):
            current = m.group(1)
            rows[current] = 1
        elif current:
            rows[current] += 1
    return rows


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "dabench")
def test_every_command_takes_at_most_two_lines_at_100_columns(group):
    res = CliRunner().invoke(app, [*group, "--help"], env={"COLUMNS": "100", "TERM": "dumb"})
    assert res.exit_code == 0, res.output
    rows = _command_rows(res.output)
    assert len(rows) >= 2, res.output
    long = {k: v for k, v in rows.items() if v > 2}
    assert not long, f"commands over 2 lines in `dabench {' '.join(group)} --help`: {long}"


def test_the_long_text_stays_in_the_commands_own_help():
    res = CliRunner().invoke(app, ["table", "--help"], env={"COLUMNS": "100"})
    assert "source footnote" in " ".join(res.output.split())
