"""Reading, checking and writing model weights.

Reads the published Depth Anything ``.pth`` state dicts (``torch.load(weights_only=True)``: no
pickled code runs) and ``.safetensors``, including transformers-format Depth Anything files
(``depth-anything/Depth-Anything-V2-Small-hf``'s ``model.safetensors``, converted to the official key
layout by :func:`from_transformers_keys`). Official key layouts are mapped onto dabench's module
names (V2-giant's SwiGLU ``mlp.w12``/``mlp.w3`` → timm's packed ``mlp.fc1``/``mlp.fc2``;
DINOv2's chunked ``blocks.<chunk>.<i>`` → ``blocks.<i>``). Loading is strict: missing or
unexpected keys, and tensors of the wrong shape (e.g. a ViT-L file for a ViT-S model), raise one
:class:`~dabench.errors.CheckpointError` that names the file and says what it looks like.

dabench writes ``.safetensors`` with metadata ``dabench.arch`` (registered name), ``dabench.head``
(``"relative"`` or a registered metric head) and ``dabench.config`` (JSON).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from dabench.errors import CheckpointError, MissingFileError
from dabench.provenance import atomic_path

META_ARCH = "dabench.arch"
META_HEAD = "dabench.head"
META_CONFIG = "dabench.config"
META_INPUT_SIZE = "dabench.input_size"  # shorter side the weights were trained at (default 518)
RELATIVE_HEAD = "relative"

_CHUNKED_BLOCK = re.compile(r"^(pretrained\.blocks\.)\d+\.(\d+\.)")
_SWIGLU = {".mlp.w12.": ".mlp.fc1.", ".mlp.w3.": ".mlp.fc2."}


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors"


def weights_file(path: str | os.PathLike) -> Path:
    """``path`` itself, or for a folder (a transformers snapshot) the ``model.safetensors`` inside it."""
    path = Path(path)
    if path.is_dir():
        inside = path / "model.safetensors"
        if not inside.is_file():
            raise MissingFileError(f"checkpoint folder {path} holds no model.safetensors (expected a transformers "
                                   "snapshot: config.json + model.safetensors), or pass the weights file itself")
        return inside
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata (``{}`` for ``.pth`` files or files without metadata)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    if not _is_safetensors(path):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises SafetensorError / OSError on corrupt headers
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({e})") from None


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


def read_header(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors a ``.safetensors`` file declares, as ``meta`` tensors (shape and dtype, no data):
    only the JSON header is read, so shapes can be compared with a model before any data is."""
    path = Path(path)
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for k in f.keys():
                sl = f.get_slice(k)
                dtype = _SAFETENSORS_DTYPES.get(str(sl.get_dtype()))
                if dtype is None:
                    raise CheckpointError(f"checkpoint {path}: tensor {k} has dtype {sl.get_dtype()}; expected a "
                                          "float or integer tensor")
                out[k] = torch.empty(tuple(int(n) for n in sl.get_shape()), dtype=dtype, device="meta")
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - SafetensorError / OSError on corrupt headers
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({e})") from None
    return out


def _unwrap(sd, path):
    for wrapper in ("model", "state_dict"):
        if isinstance(sd, Mapping) and wrapper in sd and isinstance(sd[wrapper], Mapping):
            sd = sd[wrapper]
            break
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict of tensors")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def read_shapes(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Shapes and dtypes of a checkpoint's tensors without their data (``meta`` tensors): a
    safetensors header, or a ``.pth`` read with ``mmap=True`` (storages mapped, not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    if _is_safetensors(path):
        return _unwrap(read_header(path), path)
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy (non-zip) files cannot be mapped: the full read reports errors
        sd = read_state_dict(path)
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in _unwrap(sd, path).items()}


def read_state_dict(path: str | os.PathLike, fits: "nn.Module | None" = None,
                    arch: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth``/``.pt``/``.bin`` (weights_only) or ``.safetensors`` file, on the CPU.

    A ``{"model": sd}`` / ``{"state_dict": sd}`` wrapper and a DDP ``module.`` prefix are removed.
    With ``fits`` (a model), a safetensors file's header shapes and dtypes are compared with the model
    (:func:`check_fits`) before any tensor data is read, so a file declaring a 1 GiB tensor is refused
    at the cost of its header. Tensors are then read and scanned for NaN/inf one at a time.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    if _is_safetensors(path):
        from safetensors import safe_open

        if fits is not None:
            check_fits(fits, _unwrap(read_header(path), path), path, arch=arch)
        sd = {}
        try:
            with safe_open(str(path), framework="pt") as f:
                for k in f.keys():
                    sd[k] = f.get_tensor(k)
                    check_finite({k: sd[k]}, path)  # tensor by tensor: the first bad one stops the read
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({e})") from None
        return _unwrap(sd, path)
    else:
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"checkpoint {path} could not be read as a PyTorch state dict "
                                  f"(torch.load weights_only=True: {str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    sd = _unwrap(sd, path)
    if fits is not None:
        check_fits(fits, sd, path, arch=arch)
    check_finite(sd, path)
    return sd


_FINITE_CHUNK = 1 << 22  # values per isfinite pass: the scan's temporaries stay at a few MiB


def check_finite(sd: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``CheckpointError`` naming the first tensor holding NaN or inf: such weights only produce NaN
    maps, which would otherwise be written (and scored) as if they were predictions. Each tensor is
    scanned in chunks, so the scan needs no tensor-sized temporary."""
    for k, v in sd.items():
        if v.is_floating_point() or v.is_complex():
            flat = v.reshape(-1)
            if not all(bool(torch.isfinite(flat[i:i + _FINITE_CHUNK]).all())
                       for i in range(0, flat.numel(), _FINITE_CHUNK)):
                bad = int((~torch.isfinite(v)).sum())
                raise CheckpointError(f"checkpoint {source}: tensor {k} holds {bad} NaN/inf value(s) of {v.numel()}; "
                                      "refusing weights that can only predict NaN")


def to_dabench_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official Depth Anything / DINOv2 keys (or transformers-format Depth Anything keys, converted
    to the official layout first) to dabench's (timm) module names."""
    if is_transformers_depth_anything(sd):
        sd = from_transformers_keys(sd)
    out = {}
    for k, v in sd.items():
        k = _CHUNKED_BLOCK.sub(r"\1\2", k)
        if k.startswith("pretrained.blocks."):
            for old, new in _SWIGLU.items():
                k = k.replace(old, new)
        out[k] = v
    return out


# transformers' Depth Anything layout (DepthAnythingForDepthEstimation) -> the official one. Both the
# transformers 4.x names (attention.attention.query, mlp.weights_in) and the 5.x ones (q_proj, gate_proj)
# are read. Fusion layer j of transformers is the official refinenet{4-j} (it starts from the deepest map).
_HF_RENAMES = (
    (r"^backbone\.embeddings\.cls_token$", "pretrained.cls_token"),
    (r"^backbone\.embeddings\.mask_token$", "pretrained.mask_token"),
    (r"^backbone\.embeddings\.position_embeddings$", "pretrained.pos_embed"),
    (r"^backbone\.embeddings\.patch_embeddings\.projection\.", "pretrained.patch_embed.proj."),
    (r"^backbone\.layernorm\.", "pretrained.norm."),
    (r"^backbone\.encoder\.layer\.(\d+)\.(norm1|norm2)\.", r"pretrained.blocks.\1.\2."),
    (r"^backbone\.encoder\.layer\.(\d+)\.layer_scale1\.lambda1$", r"pretrained.blocks.\1.ls1.gamma"),
    (r"^backbone\.encoder\.layer\.(\d+)\.layer_scale2\.lambda1$", r"pretrained.blocks.\1.ls2.gamma"),
    (r"^backbone\.encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.", r"pretrained.blocks.\1.attn.proj."),
    (r"^backbone\.encoder\.layer\.(\d+)\.mlp\.(fc1|fc2)\.", r"pretrained.blocks.\1.mlp.\2."),
    (r"^backbone\.encoder\.layer\.(\d+)\.mlp\.weights_in\.", r"pretrained.blocks.\1.mlp.w12."),
    (r"^backbone\.encoder\.layer\.(\d+)\.mlp\.(?:weights_out|down_proj)\.", r"pretrained.blocks.\1.mlp.w3."),
    (r"^neck\.reassemble_stage\.layers\.(\d)\.projection\.", r"depth_head.projects.\1."),
    (r"^neck\.reassemble_stage\.layers\.(\d)\.resize\.", r"depth_head.resize_layers.\1."),
    (r"^head\.conv1\.", "depth_head.scratch.output_conv1."),
    (r"^head\.conv2\.", "depth_head.scratch.output_conv2.0."),
    (r"^head\.conv3\.", "depth_head.scratch.output_conv2.2."),
)
_HF_QKV = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
_HF_GATE_UP = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.mlp\.(gate|up)_proj\.(weight|bias)$")
_HF_NECK_CONV = re.compile(r"^neck\.convs\.(\d)\.weight$")
_HF_FUSION = re.compile(r"^neck\.fusion_stage\.layers\.(\d)\.(projection|residual_layer1|residual_layer2)\.?(.*)$")
_HF_FUSION_PARTS = {"projection": "out_conv", "residual_layer1": "resConfUnit1", "residual_layer2": "resConfUnit2"}


def is_transformers_depth_anything(sd: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``sd`` is a transformers-format Depth Anything state dict (``backbone.``/``neck.``/``head.``)."""
    return any(k.startswith("backbone.embeddings.") for k in sd) and any(k.startswith("neck.") for k in sd)


def from_transformers_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers Depth Anything state dict (V1, V2, giant SwiGLU) in the official key layout.

    q/k/v are concatenated into ``attn.qkv``; gate/up projections into SwiGLU's packed ``mlp.w12``.
    Keys that match no rule are kept as they are, so strict loading names them.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    gate_up: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        m = _HF_QKV.match(k)
        if m:
            part = (m.group(2) or m.group(3))[0]  # q / k / v
            qkv.setdefault((m.group(1), m.group(4)), {})[part] = v
            continue
        m = _HF_GATE_UP.match(k)
        if m:
            gate_up.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
            continue
        m = _HF_NECK_CONV.match(k)
        if m:
            out[f"depth_head.scratch.layer{int(m.group(1)) + 1}_rn.weight"] = v
            continue
        m = _HF_FUSION.match(k)
        if m:
            rest = m.group(3).replace("convolution1", "conv1").replace("convolution2", "conv2")
            out[f"depth_head.scratch.refinenet{4 - int(m.group(1))}.{_HF_FUSION_PARTS[m.group(2)]}.{rest}"] = v
            continue
        for pattern, repl in _HF_RENAMES:
            new, n = re.subn(pattern, repl, k)
            if n:
                out[new] = v
                break
        else:
            out[k] = v
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"transformers checkpoint: block {i} has attention {kind} for {sorted(parts)} only")
        out[f"pretrained.blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    for (i, kind), parts in gate_up.items():
        if set(parts) != {"gate", "up"}:
            raise CheckpointError(f"transformers checkpoint: block {i} has SwiGLU {kind} for {sorted(parts)} only")
        out[f"pretrained.blocks.{i}.mlp.w12.{kind}"] = torch.cat([parts["gate"], parts["up"]], 0)
    return out


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """A short human description of a Depth Anything state dict ("ViT-L encoder (1024 wide, 24 blocks)")."""
    cls = sd.get("pretrained.cls_token")
    if cls is None:
        return "no Depth Anything encoder (no pretrained.cls_token)"
    width = int(cls.shape[-1])
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))}
    names = {384: "ViT-S", 768: "ViT-B", 1024: "ViT-L", 1536: "ViT-G"}
    return f"a {names.get(width, 'ViT')} encoder ({width} wide, {len(blocks)} blocks)"


def _matching_archs(sd: Mapping[str, torch.Tensor]) -> list[str]:
    from dabench.models.depth_anything import CONFIGS
    from dabench.models.dinov2 import ENCODERS

    cls = sd.get("pretrained.cls_token")
    if cls is None:
        return []
    width = int(cls.shape[-1])
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))}
    return [name for name, cfg in CONFIGS.items()
            if ENCODERS[cfg.encoder].embed_dim == width and ENCODERS[cfg.encoder].depth == len(blocks)]


def matching_archs(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """Registered Depth Anything names whose encoder width and depth fit state dict ``sd``
    (V1 and V2 of one size share shapes, so both are returned)."""
    return _matching_archs(sd)


def _fmt_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_fits(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str | os.PathLike,
               arch: str | None = None) -> None:
    """The checks of :func:`load_state_dict_strict` (keys, shapes) on ``sd``'s shapes only — ``sd`` may
    hold ``meta`` tensors from :func:`read_header` — plus dtypes: a floating model tensor needs a
    floating tensor in the file. One ``CheckpointError`` naming the file on any mismatch."""
    conv = _to_model_keys(model, sd)
    expected = model.state_dict()
    for k, v in conv.items():
        e = expected.get(k)
        if e is not None and e.is_floating_point() and not v.is_floating_point():
            raise CheckpointError(f"checkpoint {source}: tensor {k} has dtype {v.dtype}; the model's is {e.dtype}")
    _check_keys_and_shapes(model, conv, source, arch)


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str | os.PathLike,
                           arch: str | None = None) -> None:
    """Load ``sd`` into ``model`` strictly, raising one clear CheckpointError on any mismatch.

    A model with a ``checkpoint_filter(sd)`` method (timm's ``checkpoint_filter_fn``) maps its own
    official layouts first (Depth Anything 3: the hub file's ``model.`` prefix, ViT-G's SwiGLU names)."""
    sd = _to_model_keys(model, sd)
    _check_keys_and_shapes(model, sd, source, arch)
    model.load_state_dict(sd, strict=True)


def _to_model_keys(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    own_filter = getattr(model, "checkpoint_filter", None)
    return own_filter(dict(sd)) if callable(own_filter) else to_dabench_keys(sd)


def _check_keys_and_shapes(model: nn.Module, sd: Mapping[str, torch.Tensor], source, arch) -> None:
    expected = model.state_dict()
    label = arch or type(model).__name__
    exp_shapes = {k: tuple(v.shape) for k, v in expected.items()}
    got_shapes = {k: tuple(v.shape) for k, v in sd.items()}
    wrong = [k for k in exp_shapes if k in got_shapes and exp_shapes[k] != got_shapes[k]]
    if wrong:
        k = wrong[0]
        hint = ""
        matches = _matching_archs(sd)
        if matches:
            hint = f"; it fits {', '.join(matches)}"
        raise CheckpointError(
            f"checkpoint {source} does not fit {label}: {len(wrong)} tensors have the wrong shape "
            f"(e.g. {k}: file {list(got_shapes[k])}, model {list(exp_shapes[k])}). The file holds "
            f"{describe_state_dict(sd)}{hint}")
    missing = sorted(set(exp_shapes) - set(got_shapes))
    unexpected = sorted(set(got_shapes) - set(exp_shapes))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_fmt_keys(unexpected)}")
        matches = _matching_archs(sd) if "pretrained.cls_token" in sd else []
        hint = f" (the file fits {', '.join(matches)})" if matches and label not in matches else ""
        raise CheckpointError(f"checkpoint {source} does not match {label}{hint}: " + "; ".join(parts))


def load_encoder_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load DINOv2 encoder weights into ``model.pretrained`` strictly, leaving the DPT untouched.

    Accepts the official DINOv2 backbone files (``dinov2_vits14_pretrain.pth``: keys ``cls_token``,
    ``blocks.N...``), timm ViT files (no ``mask_token``, which inference never uses: the model's is
    kept; a classifier ``head.*`` is ignored; a position embedding of another grid size is resampled
    with DINOv2's interpolation) or a full Depth Anything file (only its ``pretrained.*`` part is used),
    e.g. to initialise a student from DINOv2 as the paper does. Anything else that does not fit raises
    ``CheckpointError`` naming the file.
    """
    wrapper = nn.Module()
    wrapper.pretrained = model.pretrained
    label = f"the {getattr(model, 'arch', None) or 'model'}'s DINOv2 encoder"
    own = model.pretrained.state_dict()
    # shapes first (no tensor data read), with the position embedding at the size it will be resampled to
    shapes = _encoder_part(read_shapes(path), own, resample=False)
    pos = shapes.get("pretrained.pos_embed")
    if pos is not None and pos.shape[-1] == own["pos_embed"].shape[-1]:
        shapes["pretrained.pos_embed"] = own["pos_embed"].to("meta")
    _check_keys_and_shapes(wrapper, shapes, path, label)
    sd = _encoder_part(read_state_dict(path), own, resample=True)
    load_state_dict_strict(wrapper, sd, path, arch=label)


def _encoder_part(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], resample: bool) -> dict:
    """The ``pretrained.*`` part of an encoder / Depth Anything state dict in dabench's names, with the
    model's mask token filled in and (``resample``) the position embedding resampled to its grid."""
    if any(k.startswith("pretrained.") for k in sd):
        sd = {k: v for k, v in sd.items() if k.startswith("pretrained.")}
    else:
        sd = {"pretrained." + k: v for k, v in sd.items() if not k.startswith("head.")}
    sd = to_dabench_keys(sd)
    sd.setdefault("pretrained.mask_token", own["mask_token"])
    pos = sd.get("pretrained.pos_embed")
    if resample and pos is not None and pos.shape != own["pos_embed"].shape and pos.shape[-1] == own["pos_embed"].shape[-1]:
        from dabench.models.dinov2 import interpolate_pos_encoding

        g = int(round((own["pos_embed"].shape[1] - 1) ** 0.5))
        sd["pretrained.pos_embed"] = interpolate_pos_encoding(pos, g, g)
    return sd


def save_checkpoint(model: nn.Module, path: str | os.PathLike, arch: str, head: str = RELATIVE_HEAD,
                    config: dict | None = None, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights as safetensors with dabench metadata, atomically. Returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint path {path} must end in .safetensors")
    metadata = {META_ARCH: str(arch), META_HEAD: str(head), META_CONFIG: json.dumps(config or {}, sort_keys=True)}
    if getattr(model, "input_size", None):  # the resolution it was trained at: its native inference size
        metadata[META_INPUT_SIZE] = str(int(model.input_size))
    for k, v in (extra_metadata or {}).items():
        metadata[str(k)] = v if isinstance(v, str) else json.dumps(v)
    tensors = {}
    seen: dict[int, str] = {}
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu").contiguous()
        ptr = t.data_ptr()
        if t.numel() and ptr in seen:  # safetensors refuses shared storage: store a copy
            t = t.clone()
        seen[ptr] = k
        tensors[k] = t
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def metadata_input_size(metadata: Mapping[str, str], path: str | os.PathLike) -> int:
    """The ``dabench.input_size`` metadata as pixels; ``CheckpointError`` naming the file when it is not
    a positive whole number."""
    raw = metadata.get(META_INPUT_SIZE)
    try:
        size = int(str(raw).strip())
    except ValueError:
        size = 0
    if size < 1:
        raise CheckpointError(f"checkpoint {path} has invalid {META_INPUT_SIZE} metadata {raw!r}; expected a "
                              "positive number of pixels (the size the weights were trained at)")
    return size


def checkpoint_config(metadata: Mapping[str, str], path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``dabench.config`` JSON of a checkpoint's metadata."""
    raw = metadata.get(META_CONFIG) or "{}"
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path} has invalid {META_CONFIG} metadata JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"checkpoint {path}: {META_CONFIG} metadata must be a JSON object")
    return cfg
