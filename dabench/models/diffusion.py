"""``--model diffusers:<folder or hub id>``: Marigold depth through diffusers' ``MarigoldDepthPipeline``.

Marigold is not one forward pass (it denoises a latent for ``denoising_steps`` steps, per ensemble
member, then ensembles), so the model brings its own ``predict(images)`` under dabench's contract and
the pipeline does all pre- and post-processing, as a diffusers user would call it. Its prediction
is affine-invariant depth (``prediction_type: depth``; ``disparity`` pipelines give disparity), never
metric. Evaluate it with an alignment in its own space — the ``marigold`` suite
(``scale_shift_depth``, Marigold's protocol) — or any relative suite.

Model options (``--model-option key=value``): ``ensemble_size`` (default 1; the paper uses 10),
``denoising_steps`` (default: the pipeline's ``default_denoising_steps``), ``processing_resolution``
(default: the pipeline's; 0 = the image's own), ``seed`` (default 0: the noise of every image is drawn
from a generator seeded with it, so runs repeat), ``batch_size`` (ensemble members per UNet pass).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from torch import nn

from dabench.errors import ConfigError, MissingFileError
from dabench.models import snapshot_check

MARIGOLD_OPTIONS = {"ensemble_size": 1, "denoising_steps": None, "processing_resolution": None, "seed": 0,
                    "batch_size": 1}
PIPELINE_LAYOUT = "model_index.json + unet/ vae/ scheduler/ text_encoder/ tokenizer/ (safetensors weights)"


class MarigoldDepthModel(nn.Module):
    """A diffusers Marigold depth pipeline under dabench's model contract (``predict`` only)."""

    source = "diffusers"
    family = "marigold"
    data_config = None  # the pipeline owns pre- and post-processing
    is_metric = False

    def __init__(self, pipe, location: str, revision: str | None, options: dict[str, Any]):
        super().__init__()
        self.pipe = pipe
        # registered as submodules: .to(device), parameters() and the cache fingerprint see the weights
        self.unet, self.vae, self.text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
        self.location = location
        self.revision = revision
        prediction = str(pipe.config.get("prediction_type") or "depth")
        if prediction not in ("depth", "disparity"):
            raise ConfigError(f"diffusers:{location}: prediction_type {prediction!r} is not depth or disparity "
                              "(is this a Marigold normals/intrinsics pipeline?)")
        self.output_space = prediction
        self.ensemble_size = int(options["ensemble_size"])
        self.denoising_steps = int(options["denoising_steps"] or pipe.default_denoising_steps or 1)
        res = options["processing_resolution"]
        self.processing_resolution = int(pipe.default_processing_resolution if res is None else res)
        self.seed = int(options["seed"])
        self.batch_size = int(options["batch_size"])
        self.processor_config = {"pipeline": type(pipe).__name__, "prediction_type": prediction,
                                 "ensemble_size": self.ensemble_size, "denoising_steps": self.denoising_steps,
                                 "processing_resolution": self.processing_resolution, "seed": self.seed,
                                 "scheduler": type(pipe.scheduler).__name__}

    def forward(self, x):  # pragma: no cover - the contract's forward does not apply to a diffusion pipeline
        raise ConfigError("a Marigold pipeline has no single forward pass; use predict(images)")

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """One H×W float32 affine-invariant depth (or disparity) map per RGB uint8 image, at its size."""
        import PIL.Image
        import torch

        device = next(self.unet.parameters()).device
        out = []
        for image in images:
            gen = torch.Generator(device=device).manual_seed(self.seed)
            res = self.pipe(PIL.Image.fromarray(image), num_inference_steps=self.denoising_steps,
                            ensemble_size=self.ensemble_size, processing_resolution=self.processing_resolution,
                            match_input_resolution=True, batch_size=self.batch_size, generator=gen,
                            output_type="np")
            out.append(np.asarray(res.prediction, dtype=np.float32).reshape(image.shape[:2]))
        return out


def load_marigold(location: str, **options: Any) -> MarigoldDepthModel:
    """Load a Marigold depth pipeline from a ``save_pretrained`` folder or a hub id (see the module docstring)."""
    snapshot_check.check_options("diffusers", location, options, MARIGOLD_OPTIONS)
    opts = {**MARIGOLD_OPTIONS, **options}
    for key in ("ensemble_size", "batch_size", "denoising_steps"):
        if opts[key] is not None and (not isinstance(opts[key], int) or opts[key] < 1):
            raise ConfigError(f"diffusers:{location}: {key} must be an integer >= 1, got {opts[key]!r}")
    try:
        import diffusers
    except ImportError:
        raise ConfigError("diffusers: models need diffusers: pip install 'dabench[diffusion]'") from None
    folder, local = snapshot_check.local_folder(
        "diffusers", location, f"{PIPELINE_LAYOUT}, or a hub id such as prs-eth/marigold-depth-v1-1")
    if local and not (folder / "model_index.json").is_file():
        raise MissingFileError(f"diffusers:{location}: {folder} has no model_index.json (expected {PIPELINE_LAYOUT})")
    if local:  # a stranger's folder: its JSON is read with caps before diffusers trusts it
        snapshot_check.read_json_object(folder / "model_index.json", "diffusers model_index.json")
        for sub in sorted(folder.glob("*/*config.json")):
            snapshot_check.read_json_object(sub, f"diffusers {sub.name}")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    # no code from the folder runs: custom components/pipelines need trust_remote_code, never set
    kw: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if offline:
        kw["local_files_only"] = True
    try:
        pipe = diffusers.MarigoldDepthPipeline.from_pretrained(str(folder) if local else location, **kw)
    except Exception as e:  # diffusers raises many kinds (OSError, ValueError, TypeError, RuntimeError, ...)
        where = f"folder {folder}" if local else f"hub id {location!r}" + (" (HF_HUB_OFFLINE is set)" if offline else "")
        raise MissingFileError(f"diffusers:{location}: could not load a Marigold depth pipeline from the {where}: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. Expected {PIPELINE_LAYOUT}."
                               ) from None
    pipe.set_progress_bar_config(disable=True)
    revision = f"sha256:{snapshot_check.weights_sha256(folder, recursive=True)}" if local else getattr(pipe, "_commit_hash", None)
    model = MarigoldDepthModel(pipe, location, revision, opts)
    model.arch = None
    return model
