"""``dabench ls models`` from the cached model index: the registry's facts, rebuilt when a model file changes,
and listing from a current index imports neither torch nor the family files."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_index_equals_the_registry_and_follows_changes(tmp_path, monkeypatch):
    from dabench import model_index
    from dabench.models import list_models, model_info
    from dabench.models._registry import ENTRY_POINT_GROUP

    assert model_index.ENTRY_POINT_GROUP == ENTRY_POINT_GROUP
    monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
    fresh = model_index.model_infos(include_test=False)
    assert [m["name"] for m in fresh] == list_models(include_test=False)
    assert json.loads(json.dumps([model_info(n) for n in list_models(include_test=False)], default=str)) == \
        json.loads(json.dumps(fresh, default=str))
    path = model_index._path(model_index.index_key())
    assert path.is_file()
    assert model_index.model_infos(include_test=True) == json.loads(path.read_text())["models"]
    path.write_text("{not json")  # damaged: rebuilt, not trusted
    assert [m["name"] for m in model_index.model_infos()] == list_models()
    key = model_index.index_key()
    f = model_index.Path(model_index.__file__).parent / "models" / "baselines.py"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    try:
        assert model_index.index_key() != key  # a family file changed: a new index
    finally:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_ls_models_from_a_current_index_imports_no_torch(tmp_path):
    env = {**os.environ, "DABENCH_HOME": str(tmp_path)}
    code = ("import sys; from typer.testing import CliRunner; from dabench.cli import app; "
            "r = CliRunner().invoke(app, ['ls', 'models', '--json']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m in ('torch', 'timm', 'dabench.models.depth_anything')))")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == "[]"
