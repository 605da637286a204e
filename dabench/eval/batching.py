"""``--batch-size auto``: the largest evaluation batch that fits the device for a given network input size.

- **CUDA**: the forward pass (under the run's autocast) is measured at batch 1 and 2 on zero inputs of the
  network size; their peak-memory difference is the cost of one more image and the rest is fixed. The
  batch is what fits in ``CUDA_BUDGET`` of the free memory (``torch.cuda.mem_get_info``), at most
  ``MAX_AUTO_BATCH``; it is then run once and, should it run out of memory (or exceed the budget), the
  largest batch that does is found by bisection. The rest of the free memory holds the predictions resized back and the scorer's float64 maps.
- **CPU** (no memory to fill, and a forward pass already uses every core): ``CPU_BATCH`` images, fewer when
  ``CPU_BYTES_PER_INPUT_PIXEL`` × 3·h·w bytes per image (input plus a ViT-L's activations, order of
  magnitude) would exceed a quarter of the available memory.

Picks are remembered per (model, input size, device, precision), so a suite re-picks only when a dataset
brings a new input size. ``dabench.eval.loop.evaluate`` calls :func:`pick_batch_size` with the network size
of the dataset's first image.
"""
from __future__ import annotations

import os
import weakref

MAX_AUTO_BATCH = 64
CUDA_BUDGET = 0.80
CPU_BATCH = 4
CPU_BYTES_PER_INPUT_PIXEL = 400

_PICKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def pick_batch_size(model, net_hw: tuple[int, int], device, amp_dtype=None, *, limit: int | None = None) -> int:
    """The batch size for ``model`` at network input ``net_hw`` = (h, w) on ``device`` (module doc);
    ``limit``: at most this many (the samples there are)."""
    import torch

    dev = torch.device(device)
    key = (tuple(int(v) for v in net_hw), str(dev), str(amp_dtype))
    try:
        memo = _PICKS.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no memory
        memo = {}
    if key not in memo:
        memo[key] = _cuda_batch(model, key[0], dev, amp_dtype) if dev.type == "cuda" else cpu_batch(key[0])
    b = memo[key]
    return max(1, min(b, int(limit))) if limit else b


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable``; the physical total elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def cpu_batch(net_hw: tuple[int, int], memory: int | None = None) -> int:
    """The CPU rule of the module doc."""
    per_image = CPU_BYTES_PER_INPUT_PIXEL * 3 * int(net_hw[0]) * int(net_hw[1])
    fits = (memory if memory is not None else available_memory()) // 4 // max(per_image, 1)
    return int(max(1, min(CPU_BATCH, fits)))


def mem_get_info(device) -> tuple[int, int]:
    """(free, total) bytes of a CUDA device (a seam for tests, which mock the device)."""
    import torch

    return torch.cuda.mem_get_info(device)


def forward_peak(model, batch: int, net_hw: tuple[int, int], device, amp_dtype) -> int | None:
    """Peak bytes a forward pass of ``batch`` zero images allocates on ``device`` above what was allocated
    before, or None when it runs out of memory (a seam for tests)."""
    import torch

    from dabench.models.inference import autocast

    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.inference_mode(), autocast(device, amp_dtype):
            model(torch.zeros((batch, 3, *net_hw), device=device))
        torch.cuda.synchronize(device)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None
    peak = torch.cuda.max_memory_allocated(device) - base
    torch.cuda.empty_cache()
    return int(peak)


def _cuda_batch(model, net_hw, device, amp_dtype) -> int:
    from dabench.models.inference import resolve_amp_dtype

    amp = resolve_amp_dtype(amp_dtype)
    model = model.to(device).eval()
    free, _total = mem_get_info(device)
    budget = CUDA_BUDGET * free
    one = forward_peak(model, 1, net_hw, device, amp)
    if one is None:
        return 1  # not even one image fits: let the run say so
    two = forward_peak(model, 2, net_hw, device, amp)
    if two is None:
        return 1
    per_image = max(two - one, 1)
    fixed = max(one - per_image, 0)
    b = int(max(1, min(MAX_AUTO_BATCH, (budget - fixed) // per_image)))

    def fits(n: int) -> bool:
        peak = forward_peak(model, n, net_hw, device, amp)
        return peak is not None and peak <= budget

    if b <= 2 or fits(b):
        return b
    lo, hi = 2, b  # 2 ran above; b did not: the largest that runs, by bisection
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


__all__ = ["pick_batch_size", "cpu_batch", "available_memory", "MAX_AUTO_BATCH", "CUDA_BUDGET", "CPU_BATCH"]
