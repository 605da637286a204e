"""Training config composition, presets and bad input (dabench/train/config.py)."""
from __future__ import annotations

import pytest

from dabench.errors import ConfigError, DataError, MissingFileError
from dabench.train.config import load_config, parse_overrides, preset_names


def test_every_preset_loads_and_validates():
    names = preset_names()
    for must in ("tiny", "tiny-ll", "tiny-lu", "tiny-strong", "paper", "paper-vitb", "paper-vits"):
        assert must in names
    for n in names:
        cfg = load_config(preset=n)
        assert cfg["preset"] == n
    paper = load_config(preset="paper")
    assert paper["model"]["arch"] == "da2_vitl14" and paper["data"]["crop_size"] == 518
    assert paper["teacher"]["lr"] == 5e-6 and paper["teacher"]["head_lr_mult"] == 10
    assert paper["student"]["unlabelled_ratio"] == 2 and paper["student"]["feat_alpha"] == 0.85
    assert paper["student"]["perturb"]["cutmix_p"] == 0.5
    assert load_config(preset="paper-vits")["model"]["arch"] == "da2_vits14"


def test_ablation_presets_differ_only_in_switches():
    full = load_config(preset="tiny")
    rows = {n: load_config(preset=n) for n in ("tiny-ll", "tiny-lu", "tiny-strong")}
    switches = {n: tuple(c["student"][k] for k in ("use_unlabelled", "strong_perturb", "feat_align"))
                for n, c in rows.items()}
    assert switches == {"tiny-ll": (False, False, False), "tiny-lu": (True, False, False),
                        "tiny-strong": (True, True, False)}
    assert (full["student"]["use_unlabelled"], full["student"]["strong_perturb"], full["student"]["feat_align"]) == \
        (True, True, True)
    for c in rows.values():
        for sec in ("model", "data", "teacher"):
            assert c[sec] == full[sec]


def test_config_file_with_base_and_overrides(tmp_path):
    f = tmp_path / "mine.py"
    from dabench.train.config import preset_path

    f.write_text(f"_base_ = {str(preset_path('tiny'))!r}\nstudent = dict(feat_alpha=0.7)\nteacher = dict(steps=5)\n")
    cfg = load_config(config=f, overrides=parse_overrides(["student.batch_size=3", "runtime.amp=none",
                                                           "teacher.lr=1e-3"]))
    assert cfg["student"]["feat_alpha"] == 0.7 and cfg["teacher"]["steps"] == 5
    assert cfg["student"]["batch_size"] == 3 and cfg["runtime"]["amp"] == "none" and cfg["teacher"]["lr"] == 1e-3
    assert cfg["model"]["arch"] == "da2_test"  # inherited


def test_unknown_key_in_file_names_it(tmp_path):
    f = tmp_path / "bad.py"
    from dabench.train.config import preset_path

    f.write_text(f"_base_ = {str(preset_path('tiny'))!r}\nstudent = dict(feat_alhpa=0.7)\n")
    with pytest.raises(ConfigError, match="student.feat_alhpa"):
        load_config(config=f)
    f.write_text(f"_base_ = {str(preset_path('tiny'))!r}\noptimiser = dict(lr=1)\n")
    with pytest.raises(ConfigError, match="'optimiser'"):
        load_config(config=f)


@pytest.mark.parametrize("override,key", [
    ({"teacher.steps": "many"}, "teacher.steps"),
    ({"teacher.steps": 2.5}, "teacher.steps"),
    ({"student.use_unlabelled": 1}, "student.use_unlabelled"),
    ({"student.perturb.blur_sigma": 0.5}, "student.perturb.blur_sigma"),
    ({"data.crop_size": 50}, "data.crop_size"),
    ({"runtime.amp": "fp8"}, "runtime.amp"),
    ({"student.feat_alpha": 1.5}, "student.feat_alpha"),
    ({"data.labelled": [{"nme": "synthetic-indoor"}]}, "data.labelled[0].nme"),
])
def test_wrong_type_or_value_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(preset="tiny", overrides=override)


def test_unknown_override_and_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="student.alpha"):
        load_config(preset="tiny", overrides={"student.alpha": 0.5})
    with pytest.raises(ConfigError, match="huge"):
        load_config(preset="huge")
    with pytest.raises(MissingFileError):
        load_config(config=tmp_path / "nope.py")
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["student.alpha"])


def test_parse_values():
    ov = parse_overrides(["a=1e-4", "b=true", "c=null", "d=[1, 2]", "e=hello", "f=3", "g=none", "h=None"])
    assert ov == {"a": 1e-4, "b": True, "c": None, "d": [1, 2], "e": "hello", "f": 3, "g": "none", "h": None}


def test_empty_labelled_or_unlabelled_set_fails_before_training(tmp_path):
    from dabench.train import run_stage

    cfg = load_config(preset="tiny", overrides={"data.labelled": [], "runtime.progress": False})
    with pytest.raises(ConfigError, match="data.labelled"):
        run_stage("teacher", cfg, tmp_path / "t")
    assert not (tmp_path / "t" / "checkpoints").exists()
    cfg = load_config(preset="tiny", overrides={"data.unlabelled": [
        {"name": "synthetic-indoor", "split": "train", "kwargs": {"num_samples": 0, "size": [42, 42]}}]})
    with pytest.raises(DataError, match="unlabelled"):
        run_stage("pseudo-label", cfg, tmp_path / "p", teacher=__file__)


def test_switch_dependencies_are_checked(tmp_path):
    from dabench.train import run_stage

    cfg = load_config(preset="tiny", overrides={"student.use_unlabelled": False})  # strong/feat still on
    with pytest.raises(ConfigError, match="student.strong_perturb"):
        run_stage("student", cfg, tmp_path / "s")
