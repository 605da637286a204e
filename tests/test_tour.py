"""README's tour of the CLI, in its order, on a fresh DABENCH_HOME.

The tour is the fenced block between ``<!-- dabench-tour:begin -->`` and ``<!-- dabench-tour:end -->``
(docs/tour.md describes the markers). Lines tagged ``[download]``, ``[data]`` or ``[run id]`` need weights,
datasets or the id of an earlier run and are left out; every other line must run, in order, and exit 0.

- ``test_tour_commands_parse_and_come_in_order`` (fast): every command parses with the CLI (flags and
  arguments checked by click, nothing run), and each command finds what it needs in the steps before it
  (checkpoints an earlier ``--out`` wrote, complete runs of the suite a table or comparison reads, ...).
- ``test_tour_runs_in_order`` (slow): runs them, one process each, as a user would.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- dabench-tour:begin -->", "<!-- dabench-tour:end -->"
TOUR_FILE = REPO / "README.md"  # the page that holds the tour block (move it with the block)
NEEDS = ("[download]", "[data]", "[run id]")  # tags of the lines the tour test leaves out


def tour_lines(readme: Path = TOUR_FILE) -> list[tuple[str, str]]:
    """``(command, comment)`` for every line of README's tour block, in order."""
    text = readme.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"README needs exactly one {BEGIN} ... {END} block"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    fence = re.search(r"```[a-z]*\n(.*?)```", block, re.S)
    assert fence, "the tour block holds one fenced code block"
    out = []
    for line in fence.group(1).splitlines():
        if not line.strip():
            continue
        cmd, _, comment = line.partition(" #")
        assert not cmd.rstrip().endswith("\\"), f"one command per line in the tour: {line!r}"
        out.append((cmd.strip(), comment.strip()))
    return out


def runnable_tour() -> list[list[str]]:
    """The tour's commands that need no download and no dataset, as argument lists (without ``dabench``)."""
    cmds = []
    for cmd, comment in tour_lines():
        if any(tag in comment for tag in NEEDS):
            continue
        argv = shlex.split(cmd)
        assert argv[0] == "dabench", f"a tour line runs dabench: {cmd!r}"
        cmds.append(argv[1:])
    return cmds


def _opts(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]


def _parse(argv: list[str]) -> tuple[str, dict]:
    """The command path (``"finetune seg"``) and its parameters, parsed by the CLI itself (nothing runs)."""
    from dabench.cli import app

    cmd = typer.main.get_command(app)
    path, ctx_args = [], list(argv)
    while hasattr(cmd, "list_commands"):  # a group (typer vendors its own click: no isinstance check)
        name = ctx_args.pop(0)
        sub = cmd.get_command(cmd.context_class(cmd), name)
        assert sub is not None, f"unknown command {' '.join(path + [name])!r}"
        cmd, path = sub, path + [name]
    ctx = cmd.make_context(" ".join(["dabench", *path]), ctx_args, resilient_parsing=False)
    return " ".join(path), ctx.params


def test_tour_block_is_marked_and_tags_are_known():
    lines = tour_lines()
    assert len(lines) >= 10
    skipped = [c for c, comment in lines if any(tag in comment for tag in NEEDS)]
    assert all("--checkpoint" in c or "--data-root" in c or "--run RUN" in c for c in skipped)
    # a tagged line is one that cannot run here; nothing untagged names weights or a data root
    for cmd in (c for c, comment in lines if not any(tag in comment for tag in NEEDS)):
        assert "--data-root" not in cmd and ".pth" not in cmd and "hf:" not in cmd and " RUN" not in cmd, cmd


def order_problems(commands: list[list[str]]) -> list[str]:
    """What each command misses from the commands before it (empty: the order works). Every command is
    parsed by the CLI, so an unknown flag or command fails here too."""
    problems = []
    written: list[str] = []             # folders/files earlier commands wrote (--out)
    complete_runs: dict[str, set] = {}  # suite -> models of earlier complete runs ("*": every local model)
    any_results = False
    for argv in commands:
        cmd, params = _parse(argv)
        where = "dabench " + " ".join(argv)
        for flag in ("--init", "--checkpoint"):
            for path in _opts(argv, flag):
                if not any(path == w or path.startswith(w.rstrip("/") + "/") for w in written):
                    problems.append(f"{where}: {flag} {path} is written by no earlier step")
        if cmd in ("table", "compare"):
            suite = params["suite"]
            if cmd == "table" and params.get("with_published") and not params.get("ci"):
                if not any_results:
                    problems.append(f"{where}: no results yet")
            elif suite not in complete_runs:
                problems.append(f"{where}: no complete `dabench run --suite {suite}` before it")
            elif cmd == "compare":
                have = complete_runs[suite]
                problems += [f"{where}: {m} was not run on {suite} before" for m in (params["a"], params["b"])
                             if m not in have and "*" not in have]
        if cmd in ("results ls", "paper", "report") and not any_results:
            problems.append(f"{where}: the results store is still empty")
        if cmd == "regress" and not (params["ci"] or (params["baseline"] and params["current"])):
            problems.append(f"{where}: needs --ci, or --baseline and --current")
        if cmd == "run":
            any_results = True
            if params.get("limit") is None:
                models = set(params.get("model") or []) or {"*", "horizon_prior", "constant"}
                complete_runs.setdefault(params["suite"], set()).update(models)
        any_results = any_results or cmd.startswith("finetune")
        if params.get("out") is not None:
            written.append(str(params["out"]))
    return problems


def test_tour_commands_parse_and_come_in_order():
    """Each runnable tour command parses, and finds what it needs in the commands before it."""
    assert order_problems(runnable_tour()) == []


def test_order_check_catches_what_the_old_tour_did():
    """The tour as it was: a --limit run of one model, then a --ci table and a comparison of two models;
    a regress against a folder never written; a fine-tune from weights nothing wrote."""
    old = [["run", "--suite", "synthetic", "--model", "horizon_prior", "--limit", "8"],
           ["table", "--suite", "synthetic", "--ci"],
           ["compare", "horizon_prior", "constant", "--suite", "synthetic"],
           ["finetune", "seg", "--dataset", "synthetic", "--init", "runs/tiny/student/final.safetensors"],
           ["regress", "--baseline", "leaderboards/ci-baseline"]]
    problems = order_problems(old)
    assert len(problems) == 4, problems
    assert "table --suite synthetic --ci: no complete" in problems[0]
    assert "compare horizon_prior constant" in problems[1]
    assert "--init runs/tiny/student/final.safetensors is written by no earlier step" in problems[2]
    assert "needs --ci" in problems[3]
    with pytest.raises(Exception):
        order_problems([["run", "--suite", "synthetic", "--no-such-flag"]])


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the commands run so far)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_tour_runs_in_order(tmp_path):
    """Every runnable tour command, in order, in a fresh folder with a fresh DABENCH_HOME, exits 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "DABENCH_DATA", "DABENCH_RESULTS")}
    env.update(DABENCH_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    work = tmp_path / "work"
    work.mkdir()
    timings = []
    for argv in runnable_tour():
        t0, cpu0 = time.perf_counter(), _children_cpu()
        proc = subprocess.run([sys.executable, "-m", "dabench", *argv], cwd=work, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
        timings.append((" ".join(argv), time.perf_counter() - t0))
        print(f"{timings[-1][1]:7.1f} s wall {_children_cpu() - cpu0:7.1f} s CPU  rc {proc.returncode}  "
              f"dabench {timings[-1][0]}", flush=True)  # shown with -s
        assert proc.returncode == 0, f"`dabench {' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout[-4000:]}"
