"""Shipped configuration (dabench.configs): found through importlib.resources, layered under
$DABENCH_CONFIG_PATH, user entries marked when they shadow shipped ones, mmengine `_base_` working
from the shipped location and from user folders."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dabench import configs
from dabench.cli import app

PKG = Path(__file__).resolve().parents[1] / "dabench"


def test_every_kind_ships_in_the_package():
    for kind in configs.KINDS:
        d = configs.shipped_dir(kind)
        assert d.is_dir() and PKG in d.parents, kind
    assert {"zero-shot", "synthetic", "marigold"} <= set(configs.names("suites"))
    assert {"nyu", "kitti", "synthetic-indoor"} <= set(configs.names("datasets"))
    assert "tiny" in configs.names("train") and "_base_" not in configs.names("train")
    assert configs.find("suites", "zero-shot") == configs.shipped_dir("suites") / "zero-shot.yaml"


def test_no_second_copy_at_the_repository_root():
    root = PKG.parent
    for old in ("datasets", "leaderboards", "heads"):
        assert not (root / old).exists(), f"{old}/ must live only under dabench/configs/"


@pytest.mark.parametrize("name", ["../suites/zero-shot", "a/b", ".hidden", "..", "", "x\0y"])
def test_find_never_leaves_the_search_path(name):
    assert configs.find("suites", name) is None


def test_user_folder_adds_and_shadows(tmp_path, monkeypatch):
    (tmp_path / "suites").mkdir()
    data = yaml.safe_load((configs.shipped_dir("suites") / "synthetic.yaml").read_text())
    (tmp_path / "suites" / "synthetic.yaml").write_text(yaml.safe_dump({**data, "description": "mine"}))
    (tmp_path / "suites" / "extra.yaml").write_text(yaml.safe_dump({**data, "name": "extra"}))
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(tmp_path))
    ents = configs.entries("suites")
    assert ents["synthetic"].origin == "user" and ents["synthetic"].shadows is not None
    assert ents["extra"].origin == "user" and ents["extra"].shadows is None
    assert ents["zero-shot"].origin == "shipped"
    from dabench.eval.suites import load_suite

    assert load_suite("synthetic").description == "mine"
    out = CliRunner().invoke(app, ["ls", "suites"], env={"COLUMNS": "250"}).output
    line = next(ln for ln in out.splitlines() if "│ synthetic " in ln)
    assert "shadows shipped" in line
    out = CliRunner().invoke(app, ["ls", "configs"], env={"COLUMNS": "250"}).output
    assert "extra" in out and "synthetic (shadows shipped)" in out


def test_user_dataset_card_reads_split_lists_from_its_own_folder(tmp_path, monkeypatch):
    from dabench.data.cards import load_card, split_file_path

    shutil.copytree(configs.shipped_dir("datasets"), tmp_path / "datasets")
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(tmp_path))
    card = load_card("nyu")
    assert split_file_path(card, "test") == (tmp_path / "datasets" / "splits" / "nyu_test.txt").resolve()


def test_mmengine_base_inheritance_from_shipped_and_user_folders(tmp_path, monkeypatch):
    from mmengine.config import Config

    from dabench.finetune.metric_config import config_file_for

    shipped = Config.fromfile(str(configs.shipped_dir("heads/metric") / "zoe_nyu.py"))
    user = tmp_path / "heads" / "metric"
    (user / "_base_").mkdir(parents=True)
    # a user recipe inheriting a shipped base by absolute path and its own base by a relative one
    (user / "_base_" / "mine.py").write_text("note = 'from the user base'\n")
    (user / "zoe_nyu.py").write_text(f"_base_ = [{str(configs.shipped_dir('heads/metric') / 'zoe_nyu.py')!r}, "
                                     "'./_base_/mine.py']\noptimizer = dict(lr=0.5)\n")
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(tmp_path))
    path = config_file_for("zoe", "nyu")
    assert path == (user / "zoe_nyu.py").resolve()
    cfg = Config.fromfile(str(path))
    assert cfg.optimizer.lr == 0.5 and cfg.note == "from the user base"
    assert cfg.model.to_dict() == shipped.model.to_dict()


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The dabench modules ``path`` imports anywhere (module level or inside functions, lazy imports
    included; ``if TYPE_CHECKING:`` blocks excluded). ``from pkg import sub`` depends on ``pkg.sub``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out = set()
    for n in ast.walk(tree):
        if id(n) in skip:
            continue
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            subs = {f"{n.module}.{a.name}" for a in n.names} & modules
            out |= subs
            if len(subs) < len(n.names):
                out.add(n.module)
    return out & modules


def test_no_import_cycle_in_the_package():
    import networkx as nx

    files = {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in PKG.rglob("*.py") if "configs" not in p.relative_to(PKG).parts}
    g = nx.DiGraph()
    for mod, path in files.items():
        g.add_node(mod)
        g.add_edges_from((mod, t) for t in _imports(path, set(files)) if t != mod)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles: {cycles[:5]}"
