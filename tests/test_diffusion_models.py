"""diffusers: Marigold through MarigoldDepthPipeline (a tiny random pipeline built offline)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from dabench.errors import ConfigError, MissingFileError  # noqa: E402
from dabench.models.inference import predict_batch  # noqa: E402
from dabench.models.resolve import build_model, model_provenance, resolve_models  # noqa: E402


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    """A Marigold-shaped pipeline with tiny random UNet / VAE / CLIP text encoder, saved as a folder."""
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("marigold")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=8, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, sample_size=16)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction", set_alpha_to_one=False,
                              steps_offset=1, timestep_spacing="trailing", clip_sample=False)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, vocab_size=100, max_position_embeddings=8))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{c + "</w>": i + 2 for i, c in enumerate("abcdefgh")}}
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=8,
                              pad_token="<|endoftext|>")
    pipe = MarigoldDepthPipeline(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text, tokenizer=tokenizer,
                                 prediction_type="depth", default_denoising_steps=1,
                                 default_processing_resolution=32)
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def test_marigold_prediction_equals_the_pipeline_call(pipeline_folder, monkeypatch):
    import PIL.Image
    from diffusers import MarigoldDepthPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = resolve_models([f"diffusers:{pipeline_folder}"], options={"ensemble_size": 2, "seed": 3})[0]
    model = build_model(run)
    assert (model.output_space, model.is_metric, model.ensemble_size, model.denoising_steps) == ("depth", False, 2, 1)
    prov = model_provenance(run, model)
    assert prov["model_source"] == "diffusers" and prov["model_revision"].startswith("sha256:")
    assert prov["data_config"]["ensemble_size"] == 2 and prov["model_options"] == {"ensemble_size": 2, "seed": 3}
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    ours = predict_batch(model, [image])[0]
    pipe = MarigoldDepthPipeline.from_pretrained(pipeline_folder)
    ref = pipe(PIL.Image.fromarray(image), num_inference_steps=1, ensemble_size=2, processing_resolution=32,
               generator=torch.Generator().manual_seed(3), output_type="np").prediction[0, ..., 0]
    assert ours.shape == ref.shape == (30, 40) and np.ptp(ref) > 0
    np.testing.assert_allclose(ours, ref, atol=1e-5 * np.abs(ref).max())


def test_marigold_options_and_errors(pipeline_folder, tmp_path):
    with pytest.raises(ConfigError, match="unknown --model-option"):
        build_model(resolve_models([f"diffusers:{pipeline_folder}"], options={"steps": 3})[0])
    with pytest.raises(ConfigError, match="ensemble_size must be an integer"):
        build_model(resolve_models([f"diffusers:{pipeline_folder}"], options={"ensemble_size": 0})[0])
    with pytest.raises(MissingFileError, match="model_index.json"):
        build_model(resolve_models([f"diffusers:{tmp_path}"])[0])


def test_dabench_run_with_a_diffusers_model_and_options(pipeline_folder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dabench.cli import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "r"
    res = CliRunner().invoke(app, ["run", "--suite", "marigold", "--datasets", "nyu", "--limit", "1",
                                   "--model", f"diffusers:{pipeline_folder}", "--model", "constant",
                                   "--model-option", "ensemble_size=2", "--device", "cpu", "--results", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "marigold" / "diffusers_pipe" / "synthetic-indoor.partial.json").read_text())
    assert rec["status"] == "ok" and rec["model_source"] == "diffusers" and rec["output_space"] == "depth"
    assert rec["model_options"] == {"ensemble_size": 2} and rec["config"]["model_options"] == {"ensemble_size": 2}
    assert rec["protocol"]["alignment"] == "scale_shift_depth" and rec["protocol"]["input_size"] is None
    assert json.loads((out / "marigold" / "constant" / "synthetic-indoor.partial.json").read_text())["model_options"] is None


@pytest.mark.parametrize("edit", ["custom_component", "deep_json", "not_object"])
def test_hostile_pipeline_folders_run_no_code_and_are_one_clear_error(edit, pipeline_folder, tmp_path, monkeypatch):
    """A stranger's folder naming a component class in its own .py file must not import it (diffusers
    runs such code only with trust_remote_code); broken model_index.json is one error naming it."""
    import shutil

    from dabench.errors import DabenchError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "hostile"
    shutil.copytree(pipeline_folder, folder)
    witness = tmp_path / "code-ran"
    index = folder / "model_index.json"
    if edit == "custom_component":
        spec = json.loads(index.read_text())
        spec["unet"] = ["evil", "EvilUNet"]
        index.write_text(json.dumps(spec))
        (folder / "unet" / "evil.py").write_text(f"open({str(witness)!r}, 'w').write('ran')\nclass EvilUNet: pass\n")
    elif edit == "deep_json":
        index.write_text("[" * 100000 + "]" * 100000)
    else:
        index.write_text("[1, 2]")
    with pytest.raises(DabenchError) as err:
        build_model(resolve_models([f"diffusers:{folder}"])[0])
    assert not witness.exists()
    assert "model_index.json" in str(err.value) or str(folder) in str(err.value)
