"""Exact cross-process reduction of metric states: every state is a float64 vector of sums and
counts, so summing them over ranks gives the same numbers as one process seeing all samples."""
from __future__ import annotations

import numpy as np


def dist_ready() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(vec: np.ndarray, group=None) -> np.ndarray:
    """Sum a float64 vector over all ranks (no-op without an initialised process group)."""
    if not dist_ready():
        return vec
    import torch
    import torch.distributed as dist

    backend = dist.get_backend(group)
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float64)).to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t.cpu().numpy().astype(np.float64)
