"""Checkpoints: official .pth / safetensors loading (strict, weights_only), key mapping, clear errors,
dabench safetensors metadata round trips and head dispatch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dabench.errors import CheckpointError, ConfigError, MissingFileError
from dabench.models import HEADS, create_model, load_model_from_checkpoint, save_checkpoint
from dabench.models.checkpoint import (META_ARCH, META_CONFIG, META_HEAD, load_state_dict_strict, read_metadata,
                                       read_state_dict, to_dabench_keys)
from test_models import official_state_dict, tiny_model  # tests/ is on sys.path under pytest


@pytest.fixture(scope="module")
def tiny_official():
    """An official-layout state dict for da1_test (width 32, 4 blocks, DPT 16/[8,16,32,32])."""
    return official_state_dict(32, 4, 16, (8, 16, 32, 32), swiglu=False, seed=3)


def test_pth_and_safetensors_give_the_same_model(tmp_path, tiny_official):
    from safetensors.torch import save_file

    torch.save(tiny_official, tmp_path / "a.pth")
    save_file(tiny_official, str(tmp_path / "a.safetensors"))
    m1 = create_model("da1_test", checkpoint=tmp_path / "a.pth").eval()
    m2 = create_model("da1_test", checkpoint=tmp_path / "a.safetensors").eval()
    for k, v in m1.state_dict().items():
        assert torch.equal(v, tiny_official[k]), k
        assert torch.equal(v, m2.state_dict()[k]), k
    assert m1.checkpoint_path == str(tmp_path / "a.pth")


def test_wrapped_and_ddp_prefixed_state_dicts(tmp_path, tiny_official):
    torch.save({"model": {"module." + k: v for k, v in tiny_official.items()}}, tmp_path / "w.pth")
    m = create_model("da1_test", checkpoint=tmp_path / "w.pth")
    assert torch.equal(m.state_dict()["pretrained.pos_embed"], tiny_official["pretrained.pos_embed"])


def test_save_and_load_round_trip(tmp_path, tiny_official):
    model = tiny_model("da2_test")
    path = save_checkpoint(model, tmp_path / "sub" / "final.safetensors", "da2_test", config={"lr": 1e-5},
                           extra_metadata={"note": "hi"})
    meta = read_metadata(path)
    assert meta[META_ARCH] == "da2_test" and meta[META_HEAD] == "relative"
    assert json.loads(meta[META_CONFIG]) == {"lr": 1e-5} and meta["note"] == "hi"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    loaded = load_model_from_checkpoint(path).eval()
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        y = model(x)
        assert y.std() > 0 and torch.equal(y, loaded(x))
    # a dabench file names its model: loading it as another model is refused
    with pytest.raises(CheckpointError, match="written for 'da2_test'"):
        create_model("da1_test", checkpoint=path)


def test_missing_and_unexpected_keys_are_listed(tmp_path, tiny_official):
    sd = dict(tiny_official)
    del sd["pretrained.mask_token"]
    sd["depth_head.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        create_model("da1_test", checkpoint=tmp_path / "bad.pth")
    msg = str(e.value)
    assert "bad.pth" in msg and "1 missing keys: pretrained.mask_token" in msg
    assert "1 unexpected keys: depth_head.extra.weight" in msg


def test_other_depth_is_named(tmp_path):
    sd = official_state_dict(32, 6, 16, (8, 16, 32, 32), swiglu=False)  # a da2_test-shaped file
    torch.save(sd, tmp_path / "six.pth")
    with pytest.raises(CheckpointError, match=r"does not match da1_test \(the file fits da2_test\)"):
        create_model("da1_test", checkpoint=tmp_path / "six.pth")


def test_vit_l_file_into_vit_s_is_a_clear_error():
    """Shape checks happen before loading (meta tensors: no 1.3 GB file needed)."""
    with torch.device("meta"):
        small = create_model("da2_vits14")
        large_sd = create_model("da2_vitl14").state_dict()
    with pytest.raises(CheckpointError) as e:
        load_state_dict_strict(small, large_sd, "depth_anything_v2_vitl.pth", arch="da2_vits14")
    msg = str(e.value)
    assert "depth_anything_v2_vitl.pth does not fit da2_vits14" in msg
    assert "ViT-L encoder (1024 wide, 24 blocks)" in msg and "da2_vitl14" in msg


def test_wrong_width_tiny_file(tmp_path):
    torch.save(official_state_dict(48, 4, 16, (8, 16, 32, 32), swiglu=False), tmp_path / "w48.pth")
    with pytest.raises(CheckpointError, match="wrong shape"):
        create_model("da1_test", checkpoint=tmp_path / "w48.pth")


def test_giant_swiglu_keys_map_to_timm():
    sd = official_state_dict(1536, 40, 384, (1536,) * 4, swiglu=True, meta=True)
    mapped = to_dabench_keys(sd)
    assert "pretrained.blocks.3.mlp.fc1.weight" in mapped and "pretrained.blocks.3.mlp.w12.weight" not in mapped
    with torch.device("meta"):
        giant = create_model("da2_vitg14")
    expected = {k: tuple(v.shape) for k, v in giant.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == expected
    # chunked DINOv2 layout (blocks.<chunk>.<i>) flattens to blocks.<i>
    assert to_dabench_keys({"pretrained.blocks.1.13.norm1.weight": torch.zeros(1)}) == {
        "pretrained.blocks.13.norm1.weight": torch.zeros(1)}


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 10])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_files(tmp_path, content, suffix):
    p = tmp_path / f"corrupt{suffix}"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"corrupt{suffix}"):
        create_model("da1_test", checkpoint=p)


def test_pickled_code_is_refused(tmp_path):
    torch.save({"weights": nn.Linear(2, 2)}, tmp_path / "module.pth")  # a pickled module, not a state dict
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_dict(tmp_path / "module.pth")


def test_missing_file_and_baseline_checkpoint(tmp_path):
    with pytest.raises(MissingFileError, match="nope.pth"):
        create_model("da1_test", checkpoint=tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="weight-free baseline"):
        create_model("constant", checkpoint=tmp_path / "nope.pth")


def test_official_pth_has_no_arch_metadata(tmp_path, tiny_official):
    torch.save(tiny_official, tmp_path / "o.pth")
    with pytest.raises(CheckpointError, match="create_model"):
        load_model_from_checkpoint(tmp_path / "o.pth")


def test_head_dispatch_through_registry(tmp_path, monkeypatch):
    """A non-relative head is rebuilt by its registered builder(arch, config) and loaded strictly."""
    calls = []

    class TinyMetric(nn.Module):
        output_space = "depth"

        def __init__(self, arch, config):
            super().__init__()
            calls.append((arch, config))
            self.base = create_model(arch)
            self.scale = nn.Parameter(torch.full((1,), float(config["max_depth"])))

        def forward(self, x):
            return self.base(x) * self.scale

    monkeypatch.setitem(HEADS._entries, "test_metric", TinyMetric)
    monkeypatch.setitem(HEADS._meta, "test_metric", {})
    torch.manual_seed(0)
    model = TinyMetric("da1_test", {"max_depth": 10.0})
    path = save_checkpoint(model, tmp_path / "m.safetensors", "da1_test", head="test_metric",
                           config={"max_depth": 10.0})
    loaded = load_model_from_checkpoint(path)
    assert isinstance(loaded, TinyMetric) and loaded.output_space == "depth"
    assert calls[-1] == ("da1_test", {"max_depth": 10.0})
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_metric_heads_are_registered_lazily():
    """Listing the heads does not import the fine-tuning package; looking one up does, and gives
    the builder. Checked in a fresh interpreter (this test session may have imported it already)."""
    import subprocess
    import sys

    code = ("import sys; from dabench.models import HEADS; "
            "assert {'metric_zoe', 'metric_simple'} <= set(HEADS.names()); "
            "assert not any(m.startswith('dabench.finetune') for m in sys.modules), 'listing imported finetune'; "
            "from dabench.finetune.metric_heads import build_metric_model; "
            "assert HEADS.get('metric_zoe') is build_metric_model and HEADS.get('metric_simple') is build_metric_model")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-2000:]


def test_load_encoder_weights_from_dinov2_backbone_file(tmp_path, tiny_official):
    from dabench.models.checkpoint import load_encoder_weights

    backbone = {k[len("pretrained."):]: v for k, v in tiny_official.items() if k.startswith("pretrained.")}
    torch.save(backbone, tmp_path / "dinov2_test_pretrain.pth")
    torch.manual_seed(0)
    model = create_model("da1_test")
    head_before = {k: v.clone() for k, v in model.depth_head.state_dict().items()}
    load_encoder_weights(model, tmp_path / "dinov2_test_pretrain.pth")
    for k, v in backbone.items():
        assert torch.equal(model.pretrained.state_dict()[k], v), k
    for k, v in model.depth_head.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    # a full Depth Anything file works too (only pretrained.* is used); a wrong-width one is refused
    torch.save(tiny_official, tmp_path / "full.pth")
    load_encoder_weights(model, tmp_path / "full.pth")
    wide = official_state_dict(48, 4, 16, (8, 16, 32, 32), swiglu=False)
    torch.save({k: v for k, v in wide.items() if k.startswith("pretrained.")}, tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match="wide.pth does not fit"):
        load_encoder_weights(model, tmp_path / "wide.pth")


def test_matching_archs(tiny_official):
    from dabench.models.checkpoint import matching_archs

    assert matching_archs(tiny_official) == ["da1_test"]
    with torch.device("meta"):
        sd = create_model("da2_vitb14").state_dict()
    assert matching_archs(sd) == ["da1_vitb14", "da2_vitb14"]
