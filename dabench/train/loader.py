"""Batches made by ``torch.utils.data.DataLoader`` workers, identical for any worker count.

The training loop asks for the batch of global step ``s``; a map-style dataset over *steps*
(``StepBatches``) calls the stage's ``batch_fn(s, generator)`` in a worker process, so decoding,
resizing, cropping and perturbing run in parallel with the GPU step. Since every batch is a pure
function of ``(seed, step, rank)`` — the sample order is ``EpochSampler``'s, the augmentation of a
sample is drawn from ``sample_generator(seed, stream, position)`` where ``position`` is the
sample's place in the global order (a function of step and slot) — the weights after N steps are
the same bit for bit with 0, 1 or 4 workers and after a resume.

DataLoader settings: ``num_workers`` (None: ``default_num_workers()``, from the cores this process
may use and the ranks on this machine), pinned memory on CUDA, ``prefetch_factor`` batches per
worker in flight, persistent workers, and an explicit seed generator so building the loader does not
draw from the global RNG (which dropout uses, and which a resume restores).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from dabench.data.workers import default_num_workers as _default_num_workers
from dabench.data.workers import quiet_cv2_threads_before_fork, worker_init as _worker_init  # noqa: F401
from dabench.errors import ConfigError
from dabench.train.distributed import usable_cores

__all__ = ["EpochSampler", "LoaderConfig", "StepBatches", "build_step_loader", "default_num_workers", "step_generator",
           "sample_generator"]

_MIX = 2 ** 63 - 1


def step_generator(seed: int, step: int, rank: int = 0, stream: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, step, rank, stream): per-step randomness that
    survives a resume without having to save generator state."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + int(step) * 8_191 + int(rank) * 131 + int(stream) * 7) % _MIX)
    return g


def sample_generator(seed: int, stream: int, position: int) -> torch.Generator:
    """The generator of one sample's augmentation: a function of the run's ``seed``, a ``stream``
    (labelled / unlabelled) and the sample's ``position`` in the global sample order
    (``EpochSampler.positions``), so it does not depend on which worker or rank makes it."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 2_654_435_761 + int(stream) * 97_531 + int(position) * 40_503 + 17) % _MIX)
    return g


class EpochSampler:
    """Deterministic, resumable sample order: epoch ``e`` is a permutation of ``range(n)`` drawn
    from ``(seed, e)``; global step ``s`` takes the ``batch_size * world_size`` consecutive
    positions starting at ``s * batch_size * world_size`` of the endless concatenation of epochs,
    and rank ``r`` takes its ``batch_size`` slice of them. The data position is therefore the
    step itself."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if n < 1:
            raise ConfigError("cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.rank, self.world_size, self.shuffle = int(rank), int(world_size), shuffle
        self._cache: dict[int, np.ndarray] = {}

    def _epoch(self, e: int) -> np.ndarray:
        if e not in self._cache:
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            self._cache[e] = (np.random.default_rng([self.seed, e]).permutation(self.n) if self.shuffle
                              else np.arange(self.n))
        return self._cache[e]

    def positions(self, step: int) -> range:
        """This rank's places in the global sample order at ``step`` (what ``sample_generator``
        keys a sample's augmentation on)."""
        start = (int(step) * self.world_size + self.rank) * self.batch_size
        return range(start, start + self.batch_size)

    def indices(self, step: int) -> list[int]:
        return [int(self._epoch(pos // self.n)[pos % self.n]) for pos in self.positions(step)]

    def epoch_of(self, step: int) -> float:
        return step * self.batch_size * self.world_size / self.n


def default_num_workers(local_world_size: int | None = None, cap: int = 8) -> int:
    """Loader workers per rank: the usable cores shared by the ranks on this machine, one left for
    the training process itself, at most ``cap`` (``dabench.data.workers.default_num_workers``)."""
    return _default_num_workers(local_world_size, cap, cores=usable_cores())


@dataclass
class LoaderConfig:
    """How batches are produced: ``num_workers`` (None: ``default_num_workers()``; 0: in the
    training process), ``prefetch_factor`` batches in flight per worker, ``pin_memory``
    (None: on CUDA), ``persistent_workers``."""

    num_workers: int | None = None
    prefetch_factor: int = 2
    pin_memory: bool | None = None
    persistent_workers: bool = True

    def __post_init__(self):
        if self.num_workers is not None and int(self.num_workers) < 0:
            raise ConfigError(f"data.num_workers must be >= 0 (or null for automatic), got {self.num_workers}")
        if int(self.prefetch_factor) < 1:
            raise ConfigError(f"data.prefetch_factor must be >= 1, got {self.prefetch_factor}")

    def workers(self) -> int:
        return default_num_workers() if self.num_workers is None else int(self.num_workers)


class StepBatches(torch.utils.data.Dataset):
    """``dataset[step]`` is ``batch_fn(step, step_generator(seed, step, rank))``: the batch this rank
    trains on at global step ``step``."""

    def __init__(self, batch_fn: Callable[[int, torch.Generator], Any], seed: int, rank: int, steps: int):
        self.batch_fn, self.seed, self.rank, self.steps = batch_fn, int(seed), int(rank), int(steps)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        return self.batch_fn(int(step), step_generator(self.seed, int(step), self.rank, stream=0))


def build_step_loader(batch_fn: Callable[[int, torch.Generator], Any], *, start: int, stop: int, seed: int,
                      rank: int, cfg: LoaderConfig | None = None, cuda: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader yielding the batches of steps ``start .. stop - 1`` in order."""
    cfg = cfg or LoaderConfig()
    workers = cfg.workers()
    ds = StepBatches(batch_fn, seed, rank, stop)
    kw: dict[str, Any] = {}
    if workers > 0:
        import multiprocessing as mp

        kw.update(prefetch_factor=int(cfg.prefetch_factor), persistent_workers=bool(cfg.persistent_workers),
                  worker_init_fn=_worker_init)
        # fork keeps the stage's closures and in-memory caches without pickling them (mmengine's
        # init_dist may have switched the default start method to spawn)
        if "fork" in mp.get_all_start_methods():
            kw["multiprocessing_context"] = "fork"
            quiet_cv2_threads_before_fork()
    pin = cuda if cfg.pin_memory is None else bool(cfg.pin_memory) and cuda
    # an explicit generator: building the loader must not consume the global RNG state
    return torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(int(start), int(stop)), num_workers=workers,
                                       pin_memory=pin, generator=torch.Generator().manual_seed(int(seed)), **kw)
