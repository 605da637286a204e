"""Trust boundaries (issue 12): names that build paths stay inside their root, run folders that are
not dabench's are not overwritten, results get the user's umask, hostile files give clear errors."""
from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from cli_output import flat  # tests/ is on sys.path under pytest
from dabench.cli import app
from dabench.errors import ConfigError, DataError
from dabench.safety import OUT_MARKER, claim_out_dir, safe_join

runner = CliRunner()


def _invoke(args):
    res = runner.invoke(app, args, env={"COLUMNS": "80"})
    return res, flat(res.output)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------- safe_join
@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc/passwd", "a\\b", "x\x00y"])
def test_safe_join_refuses_names_that_leave_the_root(tmp_path, name):
    with pytest.raises(ConfigError):
        safe_join(tmp_path, name)


def test_safe_join_subdirs_and_symlinks(tmp_path):
    root = tmp_path / "root"
    (root / "scene").mkdir(parents=True)
    assert safe_join(root, "scene/0001.png", subdirs=True) == root / "scene" / "0001.png"
    with pytest.raises(ConfigError):
        safe_join(root, "scene/../../x", subdirs=True)
    (root / "out").symlink_to(tmp_path)  # a link inside the root that points out of it
    with pytest.raises(ConfigError, match="outside"):
        safe_join(root, "out", "x.json")
    with pytest.raises(DataError):
        safe_join(root, "..", error=DataError)


# --------------------------------------------------------------------------------------------- results store
@pytest.mark.parametrize("key", ["suite", "model", "dataset"])
def test_record_names_cannot_write_outside_the_results_folder(tmp_path, key):
    from dabench.results.store import write_record

    results = tmp_path / "results"
    rec = {"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {"abs_rel": 0.1}, key: ".."}
    with pytest.raises(DataError, match=key):
        write_record(rec, results)
    assert _files(tmp_path) == []


def test_record_in_a_symlinked_folder_pointing_outside_is_refused(tmp_path):
    from dabench.results.store import write_record

    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    (results / "s").symlink_to(elsewhere)
    with pytest.raises(DataError, match="outside"):
        write_record({"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {}}, results)
    assert _files(elsewhere) == []


def test_run_with_a_suite_named_dotdot_writes_nothing_outside_results(tmp_path):
    suite = tmp_path / "evil.yaml"
    suite.write_text("name: ..\ntask: relative\ndatasets: [synthetic-indoor]\n")
    results = tmp_path / "box" / "results"
    res, text = _invoke(["run", "--suite", str(suite), "--model", "constant", "--limit", "1",
                         "--results", str(results), "--no-cache"])
    assert res.exit_code == 2, res.output
    assert "'..'" in text
    assert _files(tmp_path) == ["evil.yaml"]


def test_update_baseline_refuses_a_record_named_dotdot(tmp_path):
    cur, base = tmp_path / "cur" / "s" / "m", tmp_path / "box" / "base"
    cur.mkdir(parents=True)
    rec = {"schema": "dabench.result/1", "status": "ok", "suite": "s", "model": "..", "dataset": "..",
           "metrics": {"abs_rel": 0.1}}
    (cur / "d.json").write_text(json.dumps(rec))
    res, text = _invoke(["regress", "--current", str(tmp_path / "cur"), "--baseline", str(base),
                         "--update-baseline"])
    assert res.exit_code == 2, res.output
    assert "record model '..'" in text
    assert not (tmp_path / "box").exists() or _files(tmp_path / "box") == []


def test_dataset_name_from_a_suite_cannot_read_outside_the_cards(tmp_path):
    from dabench.data import load_card

    with pytest.raises(ConfigError, match="cannot be used as a path"):
        load_card("../leaderboards/suites/zero-shot")


def test_prediction_cache_paths_stay_in_the_cache(tmp_path):
    from dabench.eval.cache import PredictionCache

    cache = PredictionCache(tmp_path / "cache")
    assert cache.path("ab" + "0" * 62).parent == tmp_path / "cache" / "ab"
    with pytest.raises(ConfigError):
        cache.path("../../../etc/x")


# --------------------------------------------------------------------------------------------- umask
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_are_written_with_the_users_umask(tmp_path, umask):
    from dabench.results.store import write_record

    old = os.umask(umask)
    try:
        path = write_record({"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {}}, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------------------------- run folders
def test_claim_out_dir_refuses_a_users_folder(tmp_path):
    user = tmp_path / "project"
    user.mkdir()
    (user / "config.py").write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        claim_out_dir(user, command="train teacher")
    assert claim_out_dir(user, command="train teacher", force=True) == user
    assert (user / OUT_MARKER).is_file() and (user / "config.py").read_text() == "mine"
    claim_out_dir(user, command="train teacher")  # now marked: a later run may continue in it
    new = claim_out_dir(tmp_path / "new" / "run", command="x")
    assert json.loads((new / OUT_MARKER).read_text())["created_by"] == "dabench"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        claim_out_dir(tmp_path / "file", command="x")


def test_suite_yaml_that_is_not_utf8_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: caf\xe9\ntask: relative\ndatasets: [synthetic-indoor]\n")
    res, text = _invoke(["run", "--suite", str(bad), "--model", "constant", "--results", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "not UTF-8" in text and "Traceback" not in res.output


@pytest.mark.parametrize("command", [
    ["train", "teacher", "--preset", "tiny"],
    ["train", "pipeline", "--preset", "tiny"],
    ["train", "ablation", "--preset", "tiny"],
    ["finetune", "seg", "--dataset", "synthetic", "--random-init", "--arch", "da2_test"],
])
def test_training_out_that_is_a_users_folder_is_refused(tmp_path, command):
    user = tmp_path / "project"
    user.mkdir()
    (user / "config.py").write_text("my own config")
    res, text = _invoke([*command, "--out", str(user)])
    assert res.exit_code == 2, res.output
    assert "--force" in text and OUT_MARKER in text
    assert (user / "config.py").read_text() == "my own config" and _files(user) == ["config.py"]


def test_finetune_metric_out_that_is_a_users_folder_is_refused(tmp_path):
    from dabench.models import create_model, save_checkpoint

    init = save_checkpoint(create_model("da2_test"), tmp_path / "init.safetensors", arch="da2_test")
    user = tmp_path / "project"
    user.mkdir()
    (user / "config.py").write_text("my own config")
    res, text = _invoke(["finetune", "metric", "--dataset", "synthetic-indoor", "--head", "simple", "--init", str(init),
                         "--preset", "tiny", "--out", str(user)])
    assert res.exit_code == 2, res.output
    assert "--force" in text and (user / "config.py").read_text() == "my own config"
