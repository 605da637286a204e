"""Shared test set-up: every test gets its own DABENCH_HOME / results dir, and torch uses few threads
(CI has 2 cores)."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_dabench_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("dabench_home")
    monkeypatch.setenv("DABENCH_HOME", str(home))
    monkeypatch.delenv("DABENCH_DATA", raising=False)
    monkeypatch.delenv("DABENCH_RESULTS", raising=False)
    yield home


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except ImportError:  # pragma: no cover
        pass
