"""The parts of Depth Anything 3's encoder that timm's DINOv2 lacks, written for dabench.

Depth Anything 3 (Lin et al. 2025, arXiv 2511.10647) keeps DINOv2's ViT (timm's
``vit_*_patch14_dinov2`` here: patch embedding, blocks with LayerScale, SwiGLU for ViT-G) and adds,
from a configured block on:

- **QK-norm**: a LayerNorm (eps 1e-5) over each head's queries and keys (``attn.q_norm``/``k_norm``);
- **2D RoPE**: half of each head's channels rotate with the patch row, half with the column
  (rotate-half pairing, base frequency 100); patch positions start at 1, the special token sits at 0;
- **alternating attention**: from ``alt_start`` on, odd blocks attend across all views of a scene
  ("global", tokens of the N views in one sequence, every patch at the same RoPE position) and even
  blocks within each view ("local");
- **the camera token**: at block ``alt_start`` the class token is replaced by a learned camera token
  (one for the reference view, one for the others), which the camera decoder reads;
- **token concatenation** (``cat_token``): a tapped block returns ``[last local output, output]``
  (2C channels); only the second half goes through the final norm.

Tokens travel as ``B × N_views × T × C`` throughout (a single image is ``N_views = 1``), so
multi-view input needs no other code path. Module and parameter names follow the official
``backbone.pretrained.*`` layout so the published weights load strictly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dabench.models import dinov2 as _dinov2

#: RoPE base frequency (the official ``rope_freq``).
ROPE_BASE = 100.0
#: Final-norm eps of the DA3 encoder: its DINOv2 copy builds ``nn.LayerNorm(dim)`` (1e-5), unlike
#: DINOv2's own 1e-6 (kept for the blocks' norm1/norm2).
FINAL_NORM_EPS = 1e-5


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of one DA3 encoder (``-1`` disables a feature, as in the official YAML)."""

    encoder: str  # key of dabench.models.dinov2.ENCODERS
    out_layers: tuple[int, int, int, int]
    alt_start: int = -1
    qknorm_start: int = -1
    rope_start: int = -1
    cat_token: bool = False


def rope_2d(x: torch.Tensor, pos: torch.Tensor, length: int, base: float = ROPE_BASE) -> torch.Tensor:
    """Rotate ``x`` (``B × heads × T × D``) by integer positions ``pos`` (``B × T × 2``: row, column) below
    ``length``.

    The first D/2 channels rotate with the row, the last D/2 with the column; within each half,
    channel ``j`` pairs with ``j + D/4`` and turns by ``p / base^(2j/(D/2))`` (computed in float32,
    applied in ``x``'s dtype as the official code does)."""
    half = x.shape[-1] // 2
    inv_freq = 1.0 / (base ** (torch.arange(0, half, 2, device=x.device).float() / half))
    out = []
    for axis, part in enumerate(x.chunk(2, dim=-1)):
        p = pos[..., axis]
        # angles for every position up to the largest, as a table looked up per token (bitwise the
        # official cos/sin cache)
        table = torch.arange(length, device=x.device, dtype=inv_freq.dtype)[:, None] * inv_freq[None]
        table = torch.cat((table, table), dim=-1).to(x.dtype)
        cos = F.embedding(p, table.cos().to(x.dtype))[:, None]
        sin = F.embedding(p, table.sin().to(x.dtype))[:, None]
        a, b = part[..., : half // 2], part[..., half // 2:]
        out.append(part * cos + torch.cat((-b, a), dim=-1) * sin)
    return torch.cat(out, dim=-1)


def patch_positions(batch: int, grid_h: int, grid_w: int, device, distinct: bool = True) -> torch.Tensor:
    """RoPE positions of ``[special token, patches...]``: ``batch × (1 + h·w) × 2`` (row, column).

    Patches are at ``(row + 1, column + 1)`` (``distinct``; local attention) or all at ``(1, 1)``
    (global attention: views are compared by content, not by where a patch sits); the special
    token is at ``(0, 0)``."""
    if distinct:
        rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
        cols = torch.arange(grid_w, device=device).repeat(grid_h)
        patches = torch.stack((rows, cols), dim=-1) + 1
    else:
        patches = torch.ones(grid_h * grid_w, 2, dtype=torch.long, device=device)
    pos = torch.cat((torch.zeros(1, 2, dtype=torch.long, device=device), patches), dim=0)
    return pos[None].expand(batch, -1, -1)


def attention(attn: nn.Module, x: torch.Tensor, pos: torch.Tensor | None, rope: int | None) -> torch.Tensor:
    """timm ``Attention`` ``attn`` applied to ``x`` (``B × T × C``); with ``rope`` (the position-table
    length) 2D RoPE turns q and k."""
    b, t, c = x.shape
    heads = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, t, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if rope and pos is not None:
        q, k = rope_2d(q, pos, rope), rope_2d(k, pos, rope)
    y = F.scaled_dot_product_attention(q, k, v)
    return attn.proj(attn.norm(y.transpose(1, 2).reshape(b, t, c)))


def block(blk: nn.Module, x: torch.Tensor, pos: torch.Tensor | None, rope: int | None) -> torch.Tensor:
    """One timm ViT block (LayerScale residuals) with DA3's attention."""
    x = x + blk.ls1(attention(blk.attn, blk.norm1(x), pos, rope))
    return x + blk.ls2(blk.mlp(blk.norm2(x)))


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """timm's DINOv2 ViT with DA3's changes: QK-norm from ``qknorm_start``, a camera token when attention
    alternates, the final norm at eps 1e-5, no mask token (the DA3 checkpoints hold none)."""
    vit = _dinov2.build_dinov2(cfg.encoder)
    del vit.mask_token
    vit.norm.eps = FINAL_NORM_EPS
    head_dim = vit.embed_dim // vit.blocks[0].attn.num_heads
    for i, blk in enumerate(vit.blocks):
        if cfg.qknorm_start != -1 and i >= cfg.qknorm_start:
            blk.attn.q_norm = nn.LayerNorm(head_dim)
            blk.attn.k_norm = nn.LayerNorm(head_dim)
    if cfg.alt_start != -1:  # [reference view, other views]
        vit.camera_token = nn.Parameter(torch.randn(1, 2, vit.embed_dim))
    return vit


def encode(vit: nn.Module, cfg: EncoderConfig, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``x``: ``B × N × 3 × H × W`` (N views) → per tapped block ``(patch tokens B×N×P×C', camera token
    B×N×C')`` with ``C' = 2C`` when ``cat_token`` (first half: last local output, not normed).

    Multi-view input (N ≥ 3) is where the official code first moves a chosen reference view to the
    front; dabench runs single images (N = 1), for which no view is reordered."""
    b, n, _, h, w = x.shape
    gh, gw = h // _dinov2.PATCH_SIZE, w // _dinov2.PATCH_SIZE
    tokens = _dinov2.prepare_tokens(vit, x.reshape(b * n, *x.shape[2:]))  # (B·N) × T × C
    t, c = tokens.shape[1:]
    tokens = tokens.reshape(b, n, t, c)
    local_pos = patch_positions(b * n, gh, gw, x.device)
    global_pos = patch_positions(b, gh, gw, x.device, distinct=False).repeat(1, n, 1)
    wanted = set(cfg.out_layers)
    local = tokens
    outs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i, blk in enumerate(vit.blocks[: max(wanted) + 1]):
        rope = max(gh, gw) + 1 if cfg.rope_start != -1 and i >= cfg.rope_start else None
        if cfg.alt_start != -1 and i == cfg.alt_start:
            cam = vit.camera_token
            cam = torch.cat((cam[:, :1].expand(b, 1, -1), cam[:, 1:].expand(b, n - 1, -1)), dim=1)
            tokens = torch.cat((cam[:, :, None].to(tokens.dtype), tokens[:, :, 1:]), dim=2)
        if cfg.alt_start != -1 and i >= cfg.alt_start and i % 2 == 1:  # global: all views in one sequence
            tokens = block(blk, tokens.reshape(b, n * t, c), global_pos, rope).reshape(b, n, t, c)
        else:
            tokens = block(blk, tokens.reshape(b * n, t, c), local_pos, rope).reshape(b, n, t, c)
            local = tokens
        if i in wanted:
            normed = vit.norm(tokens)
            out = torch.cat((local, normed), dim=-1) if cfg.cat_token else normed
            cam = torch.cat((local, tokens), dim=-1)[:, :, 0] if cfg.cat_token else tokens[:, :, 0]
            outs.append((out[:, :, 1:], cam))
    return outs


class CameraDecoder(nn.Module):
    """Camera token → pose encoding ``[t (3), quaternion xyzw (4), fov_h, fov_w]`` (radians)."""

    def __init__(self, dim_in: int):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(dim_in, dim_in), nn.ReLU(), nn.Linear(dim_in, dim_in), nn.ReLU())
        self.fc_t = nn.Linear(dim_in, 3)
        self.fc_qvec = nn.Linear(dim_in, 4)
        self.fc_fov = nn.Sequential(nn.Linear(dim_in, 2), nn.ReLU())

    def forward(self, cam_token: torch.Tensor) -> torch.Tensor:
        b, n = cam_token.shape[:2]
        feat = self.backbone(cam_token.reshape(b * n, -1)).float()
        return torch.cat((self.fc_t(feat), self.fc_qvec(feat), self.fc_fov(feat)), dim=-1).reshape(b, n, 9)


def intrinsics_from_fov(fov: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``B × N × 2`` (fov_h, fov_w) radians → ``B × N × 3 × 3`` pinhole K at ``height × width`` pixels,
    principal point at the centre (the official ``pose_encoding_to_extri_intri``)."""
    fy = (height / 2.0) / torch.clamp(torch.tan(fov[..., 0] / 2.0), 1e-6)
    fx = (width / 2.0) / torch.clamp(torch.tan(fov[..., 1] / 2.0), 1e-6)
    k = torch.zeros(*fov.shape[:-1], 3, 3, device=fov.device)
    k[..., 0, 0], k[..., 1, 1] = fx, fy
    k[..., 0, 2], k[..., 1, 2], k[..., 2, 2] = width / 2, height / 2, 1.0
    return k


class CameraEncoder(nn.Module):
    """Known camera → camera token (a 9-d pose encoding through an MLP and four ViT blocks).

    It conditions multi-view inference on given poses; single-image depth never uses it. Its weights
    are part of every any-view checkpoint, so it is built (and loaded) with the same layout."""

    def __init__(self, dim_out: int, num_heads: int = 16, depth: int = 4, dim_in: int = 9):
        super().__init__()
        from timm.layers import Mlp
        from timm.models.vision_transformer import Block

        self.trunk = nn.Sequential(*[Block(dim_out, num_heads, mlp_ratio=4.0, qkv_bias=True, init_values=0.01)
                                     for _ in range(depth)])
        self.token_norm = nn.LayerNorm(dim_out)
        self.trunk_norm = nn.LayerNorm(dim_out)
        self.pose_branch = Mlp(dim_in, dim_out // 2, dim_out)

    def forward(self, pose_encoding: torch.Tensor) -> torch.Tensor:
        return self.trunk_norm(self.trunk(self.token_norm(self.pose_branch(pose_encoding))))


def tap_indices(cfg: EncoderConfig) -> Sequence[int]:
    return list(cfg.out_layers)
