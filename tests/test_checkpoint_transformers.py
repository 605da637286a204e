"""transformers-format Depth Anything checkpoints (V1, V2, giant SwiGLU) in dabench's own networks."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

import hf_tiny  # noqa: E402  (tests/ is on sys.path under pytest)

from dabench.errors import CheckpointError  # noqa: E402
from dabench.models import create_model  # noqa: E402
from dabench.models import checkpoint as ck  # noqa: E402
from dabench.models.depth_anything import CONFIGS, DepthAnything, DepthAnythingConfig  # noqa: E402

GIANT = DepthAnythingConfig(2, "testg", 16, (8, 16, 32, 32), (0, 1, 2, 3))  # tiny ViT-G recipe (SwiGLU)
# version -> (dabench arch or config, transformers backbone: layers, width, out_indices (= block + 1), SwiGLU)
CASES = {"v1": ("da1_test", 4, 32, [1, 2, 3, 4], False),
         "v2": ("da2_test", 6, 32, [2, 4, 5, 6], False),
         "giant": (GIANT, 4, 48, [1, 2, 3, 4], True)}


def _transformers_model(layers, width, out_indices, swiglu):
    import transformers as T

    torch.manual_seed(0)
    bb = T.Dinov2Config(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2, mlp_ratio=4,
                        image_size=518, patch_size=14, out_indices=out_indices, reshape_hidden_states=False,
                        use_swiglu_ffn=swiglu)
    cfg = T.DepthAnythingConfig(backbone_config=bb, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                head_hidden_size=32, reassemble_hidden_size=width, patch_size=14)
    return hf_tiny._perturb(T.DepthAnythingForDepthEstimation(cfg).eval())


def _dabench_model(arch_or_cfg, checkpoint):
    if isinstance(arch_or_cfg, str):
        return create_model(arch_or_cfg, checkpoint=checkpoint).eval()
    model = DepthAnything(arch_or_cfg).eval()  # no registered tiny giant: load as create_model does
    ck.load_state_dict_strict(model, ck.read_state_dict(ck.weights_file(checkpoint)), checkpoint)
    return model


@pytest.mark.parametrize("version", list(CASES))
def test_transformers_depth_anything_equals_official_layout(version, tmp_path):
    arch, layers, width, out_indices, swiglu = CASES[version]
    hf = _transformers_model(layers, width, out_indices, swiglu)
    hf.save_pretrained(tmp_path / "snapshot")  # config.json + model.safetensors, transformers key names
    ours = _dabench_model(arch, tmp_path / "snapshot")  # the folder; its model.safetensors is read
    # the equivalent official-layout .pth (what the official repositories publish)
    official = ck.from_transformers_keys(ck.read_state_dict(tmp_path / "snapshot" / "model.safetensors"))
    assert "pretrained.blocks.0.attn.qkv.weight" in official and not any(k.startswith("backbone.") for k in official)
    assert ("pretrained.blocks.0.mlp.w12.weight" in official) == swiglu
    torch.save(official, tmp_path / "official.pth")
    from_pth = _dabench_model(arch, tmp_path / "official.pth")
    x = torch.randn(2, 3, 518, 518, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(pixel_values=x).predicted_depth  # transformers' own implementation
        a, b = ours(x), from_pth(x)
    scale = float(ref.abs().max())
    assert scale > 0 and float(ref.std()) > 1e-3 * scale  # not a constant map
    assert float((a - ref).abs().max()) <= 1e-4 * scale  # at 518x518 both resample nothing
    assert float((a - b).abs().max()) <= 1e-4 * scale


def test_transformers_checkpoint_for_the_wrong_size_is_named(tmp_path):
    hf = _transformers_model(4, 32, [1, 2, 3, 4], False)
    hf.save_pretrained(tmp_path / "snap")
    with pytest.raises(CheckpointError, match="does not (fit|match) da2_test"):
        create_model("da2_test", checkpoint=tmp_path / "snap")
    assert CONFIGS["da1_test"].layer_idx is None  # V1 taps the last four blocks, as out_indices [1..4]
    assert ck.is_transformers_depth_anything(hf.state_dict())
