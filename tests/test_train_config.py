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
        assert cfg.preset == n
    paper = load_config(preset="paper")
    assert paper.model.arch == "da2_vitl14" and paper.data.crop_size == 518
    assert paper.teacher.lr == 5e-6 and paper.teacher.head_lr_mult == 10
    assert paper.student.unlabelled_ratio == 2 and paper.student.feat_alpha == 0.85
    assert paper.student.perturb.cutmix_p == 0.5
    assert load_config(preset="paper-vits").model.arch == "da2_vits14"


def test_ablation_presets_differ_only_in_switches():
    full = load_config(preset="tiny")
    rows = {n: load_config(preset=n) for n in ("tiny-ll", "tiny-lu", "tiny-strong")}
    switches = {n: (c.student.use_unlabelled, c.student.strong_perturb, c.student.feat_align)
                for n, c in rows.items()}
    assert switches == {"tiny-ll": (False, False, False), "tiny-lu": (True, False, False),
                        "tiny-strong": (True, True, False)}
    assert (full.student.use_unlabelled, full.student.strong_perturb, full.student.feat_align) == (True, True, True)
    for c in rows.values():
        for sec in ("model", "data", "teacher"):
            assert getattr(c, sec) == getattr(full, sec)


def test_config_file_with_base_and_overrides(tmp_path):
    f = tmp_path / "mine.py"
    from dabench.train.config import preset_path

    f.write_text(f"_base_ = {str(preset_path('tiny'))!r}\nstudent = dict(feat_alpha=0.7)\nteacher = dict(steps=5)\n")
    cfg = load_config(config=f, overrides=parse_overrides(["student.batch_size=3", "runtime.amp=none",
                                                           "teacher.lr=1e-3"]))
    assert cfg.student.feat_alpha == 0.7 and cfg.teacher.steps == 5
    assert cfg.student.batch_size == 3 and cfg.runtime.amp == "none" and cfg.teacher.lr == 1e-3
    assert cfg.model.arch == "da2_test"  # inherited


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
    ({"data.num_workers": -5}, "data.num_workers"),
    ({"teacher.lr": 0}, "teacher.lr"),
    ({"teacher.lr": "abc"}, "teacher.lr"),
    ({"student.perturb.jitter_p": 1.5}, "student.perturb.jitter_p"),
    ({"runtime.keep_checkpoints": 0}, "runtime.keep_checkpoints"),
    ({"teacher.grad_clip": -1.0}, "teacher.grad_clip"),
    ({"seed": -1}, "seed"),
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
    with pytest.raises(ConfigError, match="KEY=VALUE"):
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


def test_encoder_weights_files_and_positive_initial_output(tmp_path):
    import torch
    from safetensors.torch import save_file

    from dabench.errors import CheckpointError
    from dabench.models import create_model
    from dabench.train.common import build_model

    cfg = load_config(preset="smoke")
    torch.manual_seed(5)
    donor = create_model("da2_test")
    # a bare DINOv2/timm-style encoder file without mask_token
    enc = {k: v for k, v in donor.pretrained.state_dict().items() if k != "mask_token"}
    save_file({k: v.contiguous() for k, v in enc.items()}, str(tmp_path / "enc.safetensors"))
    m = build_model(cfg, encoder_weights=str(tmp_path / "enc.safetensors"))
    for k, v in enc.items():
        assert torch.equal(m.pretrained.state_dict()[k], v), k
    # a full Depth Anything checkpoint: its pretrained.* part is used
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(tmp_path / "full.safetensors"))
    m2 = build_model(cfg, encoder_weights=str(tmp_path / "full.safetensors"))
    assert torch.equal(m2.pretrained.blocks[0].attn.qkv.weight, donor.pretrained.blocks[0].attn.qkv.weight)
    # another encoder size is refused, naming the file
    other = create_model("da1_test")
    save_file({k: v.contiguous() for k, v in other.pretrained.state_dict().items()}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="other.safetensors"):
        build_model(cfg, encoder_weights=str(tmp_path / "other.safetensors"))
    # the seeded init is deterministic and its prediction is positive (no dead output ReLU)
    a, b = build_model(cfg), build_model(cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with torch.no_grad():
        assert (a(torch.randn(2, 3, 42, 42)) > 0).float().mean() > 0.5


def test_single_pass_forward_with_features_matches_model():
    import torch

    from dabench.models import create_model

    for arch in ("da2_test", "da1_test"):
        torch.manual_seed(0)
        m = create_model(arch).eval()
        x = torch.randn(2, 3, 42, 56)
        with torch.no_grad():
            pred, feat = m.forward_with_features(x)
            assert torch.equal(pred, m(x))
            assert torch.equal(feat, m.forward_encoder_features(x))


def test_config_is_typed_and_frozen():
    import dataclasses

    from dabench.train.config import DatasetSpec, TrainingConfig

    cfg = load_config(preset="smoke")
    assert isinstance(cfg, TrainingConfig) and isinstance(cfg.data.labelled[0], DatasetSpec)
    assert isinstance(cfg.student.feat_alpha, float) and isinstance(cfg.teacher.steps, int)
    assert cfg.student.perturb.blur_sigma == (0.1, 2.0)  # a pair, whatever the file spelled
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.teacher.steps = 3  # type: ignore[misc]
    plain = cfg.to_dict()  # the plain form dumped as config.py and stored in checkpoints
    assert plain["data"]["labelled"][0]["split"] == "train" and plain["teacher"]["steps"] == cfg.teacher.steps


@pytest.mark.parametrize("override,words", [
    ({"teacher.lr": "abc"}, ["'teacher.lr'", "a number", "'abc'"]),
    ({"data.num_workers": -5}, ["'data.num_workers'", ">= 0", "-5"]),
    ({"teacher.steps": True}, ["'teacher.steps'", "an integer"]),
    ({"teacher.lr": float("inf")}, ["'teacher.lr'", "finite"]),
])
def test_messages_name_the_key_and_what_it_takes(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(preset="smoke", overrides=override)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_unknown_override_key_is_refused_before_merging():
    for key in ("nonexistent.key", "teacher.steps.deeper", "data.labelled.0.nme"):
        with pytest.raises(ConfigError, match="unknown config key"):
            load_config(preset="smoke", overrides={key: 1})
    # a free mapping (dataset kwargs) takes any key below it, and list items are addressed by index
    cfg = load_config(preset="smoke", overrides={"data.labelled.0.kwargs.num_samples": 3})
    assert cfg.data.labelled[0].kwargs["num_samples"] == 3


def test_long_bad_values_are_quoted_in_bounded_excerpts():
    with pytest.raises(ConfigError) as e:
        load_config(preset="smoke", overrides={"run_name": ["x" * 10_000] * 1000})
    assert "run_name" in str(e.value) and len(str(e.value)) < 300


def test_follow_symlinks_is_absent_from_the_plain_form_unless_set():
    """Dataset specs gained follow_symlinks; off, it stays out of dumped configs and resume
    fingerprints, so runs made before it still resume."""
    from dabench.train.config import stage_fingerprint

    cfg = load_config(preset="smoke")
    assert "follow_symlinks" not in cfg.to_dict()["data"]["labelled"][0]
    assert "follow_symlinks" not in stage_fingerprint(cfg, "teacher")["data"]["labelled"][0]
    on = load_config(preset="smoke", overrides={"data.labelled.0.follow_symlinks": True})
    assert on.data.labelled[0].follow_symlinks is True and on.to_dict()["data"]["labelled"][0]["follow_symlinks"]
