"""Hostile inputs, class by class: files that are not what their size or type says, declared sizes
that would drive memory, error messages that would carry the input, names that collide or get
lost, values that should fail, and paths that are not plain ASCII. Each test builds the hostile
input itself and checks dabench's answer is one bounded error (or the right value)."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.errors import ConfigError, DataError, excerpt

BOMB = "".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)]
    + [f"l9: [{', '.join(['*l8'] * 9)}]\n"])  # a few hundred bytes, 9**10 nodes once expanded


def _invoke(args, env=None):
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **(env or {})})


# ------------------------------------------------------------ error messages that carry the input
def test_excerpt_is_bounded_and_never_renders_the_whole_value():
    huge = list(range(25_000_000))
    t = time.perf_counter()
    text = excerpt(huge)
    assert time.perf_counter() - t < 0.5 and len(text) <= 80 and text.startswith("[0, 1, 2")
    nested: list = ["x"] * 9
    for _ in range(12):
        nested = [nested] * 9  # shared references: 9**13 leaves once rendered in full
    assert len(excerpt(nested)) <= 80
    assert excerpt("short") == "'short'"
    assert len(excerpt("y" * 10**6, 50)) == 50


def test_yaml_bomb_is_refused_by_every_yaml_reader(tmp_path):
    from dabench.data.cards import _load_card_cached
    from dabench.eval.suites import load_suite
    from dabench.results.published import load_published
    from dabench.safety import load_yaml

    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    assert len(BOMB) < 600
    with pytest.raises(ConfigError, match="expands"):
        load_yaml(f, "config")
    with pytest.raises(ConfigError, match="expands"):
        load_suite(str(f))
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "t.yaml").write_text(BOMB)
    with pytest.raises(DataError, match="expands"):
        load_published(tmp_path / "pub")
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "bomb.yaml").write_text("name: bomb\n" + BOMB)
    with pytest.raises(ConfigError, match="expands"):
        _load_card_cached("bomb", str(tmp_path / "cards"), None)


def test_yaml_bomb_suite_on_the_cli_is_one_short_error(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    r = _invoke(["run", "--suite", str(f), "--model", "da2_vits14", "--results", str(tmp_path / "res")])
    assert r.exit_code == 2 and "expands" in r.output and len(r.output.split()) < 60


def test_yaml_aliases_within_the_cap_and_recursive_aliases(tmp_path):
    from dabench.safety import load_yaml_text

    assert load_yaml_text("a: &x {k: 1}\nb: *x\n", "t") == {"a": {"k": 1}, "b": {"k": 1}}
    with pytest.raises(ConfigError, match="recursive"):
        load_yaml_text("a: &x [1, *x]\n", "t")
    with pytest.raises(ConfigError, match="nested too deeply|invalid YAML"):
        load_yaml_text("[" * 100_000, "t")


def test_yaml_config_never_builds_python_objects(tmp_path):
    from dabench.safety import load_config_file

    marker = tmp_path / "ran"
    f = tmp_path / "cfg.yaml"
    f.write_text(f'a: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config_file(f)
    assert not marker.exists()
    f.write_text("optimizer:\n  lr: 0.001\n")
    assert load_config_file(f).to_dict() == {"optimizer": {"lr": 0.001}}


def test_da2k_error_with_a_huge_point_list_is_short(tmp_path):
    from dabench.data.da2k import read_annotations

    root = tmp_path / "da2k"
    (root / "indoor").mkdir(parents=True)
    points = list(range(200_000))  # about 1 MB of input
    (root / "annotations.json").write_text(json.dumps(
        {"indoor/a.png": [{"point1": points, "point2": [0, 0], "closer_point": "point1"}]}))
    with pytest.raises(DataError) as e:
        read_annotations(root / "annotations.json", root)
    assert len(str(e.value)) < 400 and "[0, 1, 2" in str(e.value)


def test_suite_and_card_errors_quote_a_bounded_excerpt(tmp_path):
    from dabench.eval.suites import load_suite

    f = tmp_path / "s.yaml"
    f.write_text("name: s\ntask: depth\ndatasets: [nyu]\nmetrics: [absrel]\nprimary: absrel\n"
                 f"alignment: {json.dumps(['x' * 1000] * 1000)}\n")
    with pytest.raises(ConfigError) as e:
        load_suite(str(f))
    assert len(str(e.value)) < 600
