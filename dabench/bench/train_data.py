"""``train_data``: would the training data pipeline feed a GPU at the paper preset?

Supply: the bench writes JPEG WebDataset shards (labelled samples carry a ``depth.npy``; images of
``image_size``, smooth random scenes with noise, JPEG quality 90) and runs the student's own batch
function (``dabench.train.student.student_batch``: shorter side resized to the crop, 518² crops,
flips, colour jitter / grayscale / blur and CutMix on the unlabelled images, 1:2 labelled to
unlabelled) in ``dabench.train.loader``'s DataLoader with 1 and then 2 workers. The training
process only takes the batches, so the rate is what the pipeline delivers. The per-core figure is
images per CPU-second of the single worker (one torch thread; all its CPU time counted), so a busy shared
machine does not deflate it; the 1 → 2 worker scaling is wall-clock (it says whether a second core
was there to use). Pseudo-labels
are a constant in-memory map here (reading a float16 shard entry is not what is measured).

Demand: the images per second a ViT-L student step consumes on one H100-class GPU: its FLOPs per
image counted by ``torch.utils.flop_counter`` (on the meta device: shapes only) — student forward
+ backward at 518², plus the frozen encoder's forward for feature alignment on the unlabelled two
thirds of the batch — against ``utilisation`` (40 %) of the H100 SXM dense bf16 peak (989.4 TFLOP/s,
NVIDIA data sheet). ``cores_per_gpu`` = demand / per-core supply (goal ≤ 8).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GPU_NAME = "H100 SXM"
UTILISATION = 0.40


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random RGB image with sensor-like noise (JPEG-compresses like a photograph, not like noise)."""
    import cv2

    small = rng.integers(0, 255, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_bench_shards(root: Path, labelled: int, unlabelled: int, size: tuple[int, int], seed: int = 0) -> dict:
    """JPEG shards under ``root``: ``lab-000000.tar`` (jpg + depth.npy) and ``unl-000000.tar`` (jpg)."""
    import io

    import cv2
    import webdataset as wds

    rng = np.random.default_rng(seed)
    h, w = size
    for prefix, n, with_depth in (("lab", labelled, True), ("unl", unlabelled, False)):
        with wds.ShardWriter(str(root / f"{prefix}-%06d.tar"), maxcount=max(1, n), verbose=0) as sink:
            for i in range(n):
                ok, jpg = cv2.imencode(".jpg", _scene(rng, h, w), [cv2.IMWRITE_JPEG_QUALITY, 90])
                sample = {"__key__": f"{i:06d}", "jpg": jpg.tobytes()}
                if with_depth:
                    buf = io.BytesIO()
                    np.save(buf, rng.uniform(1, 20, (h, w)).astype(np.float32))
                    sample["depth.npy"] = buf.getvalue()
                sink.write(sample)
    return {"labelled": f"wds:{root}/lab-000000.tar", "unlabelled": f"wds:{root}/unl-000000.tar"}


class _ConstantLabels:
    """Stands in for ``PseudoLabels``: a float16 map of the bench images' size."""

    def __init__(self, n: int, size: tuple[int, int]):
        import torch

        self.n, self.map = n, torch.full(size, 0.5, dtype=torch.float16)
        self.dir = "<in-memory>"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.map


class _CpuTimed:
    """Wraps a batch function: each batch carries the CPU seconds its worker spent making it
    (``time.process_time`` of the worker process: all its threads; torch runs one)."""

    def __init__(self, batch_fn):
        self.batch_fn = batch_fn

    def __call__(self, step, gen):
        import torch

        t = time.process_time()
        batch = self.batch_fn(step, gen)
        batch["_cpu_seconds"] = torch.tensor(time.process_time() - t, dtype=torch.float64)
        return batch


def _delivered_rate(batch_fn, workers: int, steps: int, images_per_step: int) -> dict:
    """Images per wall-clock second over ``steps`` batches, timed from the loader's start to the last
    batch (worker start-up included: a slight under-estimate, but prefetched batches cannot inflate
    it), and images per CPU-second of the workers (what one dedicated core would deliver, whatever
    else the machine runs)."""
    from dabench.train.loader import LoaderConfig, build_step_loader

    loader = build_step_loader(_CpuTimed(batch_fn), start=0, stop=steps, seed=0, rank=0,
                               cfg=LoaderConfig(num_workers=workers, prefetch_factor=2, persistent_workers=False))
    t0 = time.perf_counter()
    cpu = n = 0
    for batch in loader:
        cpu += float(batch["_cpu_seconds"])
        n += 1
    dt = time.perf_counter() - t0
    return {"workers": workers, "steps": n, "seconds": dt, "images_per_second": n * images_per_step / dt,
            "worker_cpu_seconds": cpu, "images_per_cpu_second": n * images_per_step / cpu}


def student_flops_per_image(arch: str = "da2_vitl14", crop: int = 518, unlabelled_fraction: float = 2 / 3) -> dict:
    """FLOPs of one image through a student step (``torch.utils.flop_counter`` on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dabench.models import create_model

    with torch.device("meta"):
        model = create_model(arch)
    x = torch.empty(1, 3, crop, crop, device="meta")
    with FlopCounterMode(display=False) as fc:
        pred, _ = model.forward_with_features(x)
        pred.float().sum().backward()
    train = fc.get_total_flops()
    with torch.no_grad(), FlopCounterMode(display=False) as fc2:
        model.forward_encoder_features(x)
    frozen = fc2.get_total_flops()
    return {"arch": arch, "crop": crop, "student_forward_backward_flops": int(train),
            "frozen_encoder_forward_flops": int(frozen), "unlabelled_fraction": unlabelled_fraction,
            "flops_per_image": float(train + unlabelled_fraction * frozen)}


def run(images: int = 24, size: tuple[int, int] = (720, 960), crop: int = 518, labelled_batch: int = 2,
        steps: int = 10, arch: str = "da2_vitl14", flop_crop: int = 518) -> dict[str, Any]:
    """The ``train_data`` entry (see the module docstring); ``images`` unlabelled and ``images // 2``
    labelled samples of ``size`` (H, W); the GPU demand is always counted at ``flop_crop``."""
    from dabench.bench.gpu import bf16_peak_tflops
    from dabench.train.common import Sources
    from dabench.train.loader import EpochSampler
    from dabench.train.config import DatasetSpec, PerturbConfig
    from dabench.train.student import UnlabelledSet, student_batch

    unlabelled_batch = 2 * labelled_batch  # the paper's 1:2
    with tempfile.TemporaryDirectory(prefix="dabench-train-data-") as tmp:
        src = write_bench_shards(Path(tmp), max(1, images // 2), images, size)
        labelled = Sources([DatasetSpec(src["labelled"])], None, "labelled", short_side=crop)
        unl_src = Sources([DatasetSpec(src["unlabelled"])], None, "unlabelled", keys=("image",))
        unl = UnlabelledSet(unl_src, _ConstantLabels(len(unl_src), size), crop, cache=False)
        lab_s = EpochSampler(len(labelled), labelled_batch, seed=0)
        unl_s = EpochSampler(len(unl), unlabelled_batch, seed=1)
        pcfg = PerturbConfig()

        def batch_fn(step, gen):
            return student_batch(labelled, unl, lab_s, unl_s, step, crop=crop, seed=0, flip=True,
                                 flip_unlabelled=False, strong=True, pcfg=pcfg)

        per_step = labelled_batch + unlabelled_batch
        one = _delivered_rate(batch_fn, 1, steps, per_step)
        two = _delivered_rate(batch_fn, 2, steps, per_step)
    flops = student_flops_per_image(arch, flop_crop)
    peak = bf16_peak_tflops(GPU_NAME)
    demand = UTILISATION * peak * 1e12 / flops["flops_per_image"]
    import os

    per_core = one["images_per_cpu_second"]
    cores = demand / per_core
    return {"images_per_second_per_core": per_core, "gpu_demand_images_per_second": demand,
            "cores_per_gpu": cores, "ratio": cores, "goal": 8.0, "goal_op": "<=",
            "per_core_basis": "images per CPU-second of one worker (1 torch thread); wall-clock "
                              "rates per worker count are under workers.<n>.images_per_second",
            "worker_scaling_1_to_2": two["images_per_second"] / one["images_per_second"],
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "workers": {"1": one, "2": two},
            "pipeline": {"image_size": list(size), "crop": crop, "labelled_per_step": labelled_batch,
                         "unlabelled_per_step": unlabelled_batch, "source": "JPEG (q90) WebDataset shards",
                         "strong_perturbation": True, "torch_threads_per_worker": 1,
                         "pseudo_labels": "constant in-memory map (shard reads not timed)"},
            "gpu": {"name": GPU_NAME, "bf16_dense_peak_tflops": peak, "utilisation": UTILISATION,
                    "peak_source": "NVIDIA H100 SXM data sheet, dense bf16 tensor core", **flops}}
