"""torchrun support: initialise the process group from the environment only when WORLD_SIZE > 1
(gloo on CPU, nccl on CUDA), shard sample indices, gather per-sample rows to rank 0."""
from __future__ import annotations

import os
from typing import Any


def world() -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str) -> tuple[str, bool]:
    """Initialise torch.distributed if launched by torchrun with WORLD_SIZE > 1.

    Returns ``(device, initialised_here)``; on CUDA each rank uses ``cuda:LOCAL_RANK``.
    """
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return device, False
    cuda = str(device).startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return device, True


def shard(n: int, rank: int, world_size: int) -> list[int]:
    """Indices of ``range(n)`` that ``rank`` evaluates (strided, so every rank gets a similar mix)."""
    return list(range(rank, n, world_size))


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """All ranks' ``obj`` on rank 0 (list in rank order), None elsewhere; ``[obj]`` without DDP."""
    import torch.distributed as dist

    rank, ws = world()
    if ws == 1:
        return [obj]
    out = [None] * ws if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    import torch.distributed as dist

    if world()[1] > 1:
        dist.barrier()


def broadcast_from_rank0(obj: Any) -> Any:
    import torch.distributed as dist

    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
