"""Process-group helpers of the training loop, on top of ``mmengine.dist``.

``init_distributed`` joins the ``torchrun`` group (NCCL on GPU through ``mmengine.dist.init_dist``,
gloo on CPU directly: mmengine's launcher always calls ``torch.cuda.set_device``, which fails on a
machine without CUDA). Rank, world size, barriers and reductions are ``mmengine.dist``'s, which are
no-ops / ``(0, 1)`` outside a process group, so the same code runs on one CPU and under torchrun.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as torch_dist
from mmengine import dist as mmdist

__all__ = ["DistInfo", "init_distributed", "dist_info", "shutdown_distributed", "barrier", "all_gather_object",
           "all_reduce_mean", "usable_cores"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _device_for(device: str | None, local_rank: int) -> torch.device:
    if device is None or device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    from dabench.models.inference import resolve_device

    dev = resolve_device(device)  # a device this machine lacks: one clear error, nothing loaded yet
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group if the environment says so (``WORLD_SIZE`` > 1):
    NCCL when the device is CUDA, gloo otherwise. Safe to call repeatedly."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device_for(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not mmdist.is_distributed():
        if dev.type == "cuda":
            mmdist.init_dist("pytorch", backend="nccl")
        else:
            torch_dist.init_process_group(backend="gloo")
    return dist_info(dev)


def dist_info(device: torch.device | None = None) -> DistInfo:
    """Rank, world size, local rank and device of this process (``(0, 1)`` outside a group)."""
    rank, world = mmdist.get_dist_info()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return DistInfo(rank, world, local_rank, device or _device_for(None, local_rank))


def shutdown_distributed() -> None:
    if mmdist.is_distributed():
        mmdist.barrier()
        torch_dist.destroy_process_group()


def barrier() -> None:
    mmdist.barrier()


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` outside a group)."""
    return mmdist.all_gather_object(obj)


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over ranks (a copy; the input outside a group)."""
    out = values.clone()
    mmdist.all_reduce(out, op="mean")
    return out


from dabench.data.workers import usable_cores  # noqa: E402,F401  (one definition, re-exported)
