"""Shared test set-up: every test gets its own DABENCH_HOME / results dir (removed after the test), every
temporary file lands in pytest's base temp folder, and torch uses few threads (CI has 2 cores: one
thread per process).

Nothing is left in the system's temp folder: pytest's base temp folder is removed after a passing run
(``tmp_path_retention_policy = "failed"`` in pyproject.toml; a failing run keeps its own, for
debugging, and only the latest), and :func:`_session_temp` points ``TMPDIR`` (``tempfile``, and the
subprocesses tests start), torch inductor's and triton's caches at one session folder inside it, removed
when the session ends."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_SESSION_ENV = ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


@pytest.fixture(scope="session", autouse=True)
def _session_temp(tmp_path_factory):
    """One session folder (inside pytest's base temp folder) for everything that is not a test's own
    ``tmp_path``: temp files of dabench and third-party code, compiled-kernel caches. Removed at the end."""
    root = tmp_path_factory.mktemp("session")  # the base temp folder is created first, in the real temp dir
    paths = {"TMPDIR": root / "tmp", "TORCHINDUCTOR_CACHE_DIR": root / "torchinductor",
             "TRITON_CACHE_DIR": root / "triton"}
    saved = {k: os.environ.get(k) for k in _SESSION_ENV}
    for key, path in paths.items():
        path.mkdir()
        os.environ[key] = str(path)
    tempfile.tempdir = None  # tempfile caches the folder: read TMPDIR again
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    tempfile.tempdir = None
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_dabench_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("dabench_home")
    monkeypatch.setenv("DABENCH_HOME", str(home))
    monkeypatch.delenv("DABENCH_DATA", raising=False)
    monkeypatch.delenv("DABENCH_RESULTS", raising=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)  # checkpoints, caches, results: nothing outlives the test


# CLI messages must not depend on the terminal: rich wraps error panels and tables at the console
# width (80 columns when output is captured, or $COLUMNS), and a long tmp path then splits the phrase
# a test looks for. A very wide console never wraps a one-line message: typer's consoles read
# TERMINAL_WIDTH once at import (set here, before any test module imports typer), dabench's own
# rich consoles read COLUMNS (set per test below, so pytest's own output keeps the real width).
# Tests also compare on flattened text (tests/cli_output.py).
os.environ["TERMINAL_WIDTH"] = "4000"


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "4000")


@pytest.fixture(autouse=True)
def _default_pixel_cap():
    """`--max-pixels` stores the cap in DABENCH_MAX_PIXELS (so DataLoader workers see it): a CLI test
    that passes it must not change the cap of the tests after it."""
    saved = os.environ.pop("DABENCH_MAX_PIXELS", None)
    yield
    os.environ.pop("DABENCH_MAX_PIXELS", None)
    if saved is not None:
        os.environ["DABENCH_MAX_PIXELS"] = saved

# One thread per process: tests spawn torchrun/DataLoader subprocesses, and oversubscribed OpenMP threads on
# 2 cores are many times slower than one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
