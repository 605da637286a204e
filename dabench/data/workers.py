"""DataLoader worker settings shared by training (``dabench.train.loader``) and evaluation
(``dabench.eval.loop``): how many workers the cores allow, and what a worker process needs."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_num_workers(local_world_size: int | None = None, cap: int = 8, cores: int | None = None) -> int:
    """Loader workers per rank: the usable cores shared by the ranks on this machine, one left for
    the main process itself, at most ``cap``."""
    local = int(local_world_size or os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(0, min(cap, (usable_cores() if cores is None else int(cores)) // max(1, local) - 1))


def worker_init(_worker_id: int) -> None:
    """One thread per worker: N workers x M threads on N cores only thrash."""
    import torch

    torch.set_num_threads(1)


def quiet_cv2_threads_before_fork() -> None:
    """Stop OpenCV's thread pool in the parent before DataLoader workers are forked: a forked child
    inherits the pool's locks but not its threads, and its first cv2 call (or cv2.setNumThreads in the
    child) then waits forever — seen after evaluation (cv2.resize) and training ran in one process."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - OpenCV is a dependency, but the loader does not need it
        pass


__all__ = ["usable_cores", "default_num_workers", "worker_init", "quiet_cv2_threads_before_fork"]
