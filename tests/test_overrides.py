"""dabench.overrides: `--cfg-option KEY=VALUE` parsing (JSON, then mmengine's DictAction) and merging."""
from __future__ import annotations

import pytest

from dabench.errors import ConfigError
from dabench.overrides import apply_cfg_options, parse_cfg_options


def test_values_parse_as_json_then_as_mmengine_does():
    got = parse_cfg_options(["optimizer.lr=1e-4", "data.input_size=[56,70]", "a=null", "b=None", "c=(1, 2)",
                             "d=x,y", "e=true", "f=some text", "g={\"k\": 1}", "h=3",
                             'i="some text"'])
    assert got == {"optimizer.lr": 1e-4, "data.input_size": [56, 70], "a": None, "b": None, "c": (1, 2),
                   "d": ["x", "y"], "e": True, "f": "sometext", "g": {"k": 1}, "h": 3,
                   "i": "some text"}  # mmengine drops spaces from bare values; JSON strings keep them
    assert isinstance(got["optimizer.lr"], float)  # YAML 1.1 would keep "1e-4" a string
    for bad in ("no-equals", "=1"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_cfg_options([bad])
    with pytest.raises(ConfigError, match="unbalanced"):
        parse_cfg_options(["a=[1,(2]"])


def test_merge_into_an_mmengine_config():
    from mmengine.config import Config

    cfg = Config(dict(optimizer=dict(lr=1.0, betas=[0.9, 0.99]), data=dict(size=[1, 2])))
    apply_cfg_options(cfg, parse_cfg_options(["optimizer.lr=0.5", "data.size=[3,4]", "new.key=1"]), "<cfg>")
    assert cfg.optimizer.lr == 0.5 and cfg.optimizer.betas == [0.9, 0.99] and cfg.data.size == [3, 4]
    assert cfg.new.key == 1
    with pytest.raises(ConfigError, match="could not be applied to <cfg>"):
        apply_cfg_options(cfg, {"optimizer.lr.deeper": 1}, "<cfg>")


def test_train_set_is_the_same_parser_and_takes_python_literal_specs():
    from dabench.train.config import parse_overrides

    items = ["a=1e-4", "b=x,y", "c=(1, 2)", 'd=[{"name": "nyu"}]']
    assert parse_overrides(items) == parse_cfg_options(items)
    assert parse_overrides(["data.labelled=[{'name': 'nyu', 'weight': 2}]"]) == {
        "data.labelled": [{"name": "nyu", "weight": 2}]}
    with pytest.raises(ConfigError, match=r"--set value .* is not valid JSON"):
        parse_overrides(["data.labelled=[{'name': nyu}]"])
    with pytest.raises(ConfigError, match=r"--set expects KEY=VALUE \(e.g. student.feat_alpha=0.7\)"):
        parse_overrides(["student.feat_alpha"])


@pytest.mark.parametrize("value", ["[" * 100000 + "]" * 100000, "{'a': " * 5000 + "1" + "}" * 5000])
def test_values_nested_too_deeply_are_one_error(value):
    with pytest.raises(ConfigError, match="nested too deeply|not valid"):
        parse_cfg_options([f"a={value}"])


@pytest.mark.parametrize("value", ["{'a': __import__('os').system('true')}", "{'a': open('/etc/passwd').read()}"])
def test_values_never_run_code(value):
    """Values are literals: a call in braces is an error, never evaluated."""
    with pytest.raises(ConfigError, match="not valid"):
        parse_cfg_options([f"a={value}"])
