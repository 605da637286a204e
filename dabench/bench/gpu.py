"""GPU: Depth Anything ViT-L (``da2_vitl14``) at 518×518 under bf16 autocast — achieved TFLOP/s of
inference and of a training step, each over the GPU's dense bf16 peak (goal >= 40 % at batch >= 16).

FLOPs are counted, not estimated: ``torch.utils.flop_counter.FlopCounterMode`` runs one forward
(inference) or one forward + backward (training step) on the same batch and counts every matmul
and convolution; achieved TFLOP/s = counted FLOPs per second of timed iterations. Peaks are the
vendors' dense (no sparsity) bf16 tensor-core figures. Without CUDA nothing is measured and the
entry says so. The device-specific calls (availability, name, synchronisation) are the small
functions below, so the path is testable on a CPU with them replaced.
"""
from __future__ import annotations

from typing import Any

# Dense bf16 tensor-core peaks, TFLOP/s (vendor data sheets; SXM/PCIe variants by name).
BF16_PEAK_TFLOPS = {
    "H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 NVL": 835.5, "H100 PCIe": 756.5,
    "H100": 756.5, "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "A800": 312.0, "A10G": 70.0, "A10": 125.0,
    "L40S": 362.05, "L40": 181.0, "L4": 121.0, "RTX 4090": 165.2, "RTX 3090": 71.0, "A6000": 154.8,
    "V100": None, "T4": None,  # no bf16 tensor cores
}
GOAL_FRACTION = 0.40


def bf16_peak_tflops(name: str) -> float | None:
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return BF16_PEAK_TFLOPS[key]
    return None


# --- device logic (replaced in the CPU tests) ------------------------------------------------------
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device)


def synchronize(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, iters: int) -> float:
    """Seconds of ``iters`` calls of ``fn`` (device synchronised before and after)."""
    import time

    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    synchronize(device)
    return time.perf_counter() - t0


def _entry(kind: str, flops_per_image: float, images: int, seconds: float, peak: float | None) -> dict[str, Any]:
    ips = images / seconds
    achieved = flops_per_image * ips / 1e12
    frac = achieved / peak if peak else None
    return {"what": kind, "images_per_second": ips, "gflops_per_image": flops_per_image / 1e9,
            "achieved_tflops": achieved, "fraction_of_bf16_peak": frac, "goal": GOAL_FRACTION, "goal_op": ">=",
            "met": (frac >= GOAL_FRACTION) if frac is not None else None}


def run(model_name: str = "da2_vitl14", batch_size: int = 16, size: int = 518, iters: int = 20,
        train_iters: int = 10, compile: bool = False, device: str = "cuda") -> dict:
    """Inference and training-step throughput of ``model_name`` at ``size``² in bf16 autocast."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dabench.models import create_model

    if not cuda_available():
        return {"status": "not measured: no CUDA device", "model": model_name, "input_size": size}
    dev = torch.device(device)
    name = device_name(dev)
    peak = bf16_peak_tflops(name)
    model = create_model(model_name).to(dev).to(memory_format=torch.channels_last)
    run_model = torch.compile(model) if compile else model
    x = torch.randn(batch_size, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16)

    # inference: FLOPs of one forward on the timed batch, then iters timed forwards
    model.eval()
    with torch.inference_mode(), amp:
        with FlopCounterMode(display=False) as fc:
            model(x)
        infer_flops = fc.get_total_flops() / batch_size
        for _ in range(3):
            run_model(x)
        infer_s = _timed(lambda: run_model(x), dev, iters)

    # training step: forward + backward + AdamW update (the loss is a plain mean: the step's cost is the network's)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=dev.type == "cuda")

    def step():
        with amp:
            loss = run_model(x).float().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as fc:
        with amp:
            loss = model(x).float().mean()
        loss.backward()
    opt.zero_grad(set_to_none=True)
    train_flops = fc.get_total_flops() / batch_size
    for _ in range(2):
        step()
    train_s = _timed(step, dev, train_iters)
    model.eval()

    inference = _entry("inference (forward, inference_mode)", infer_flops, batch_size * iters, infer_s, peak)
    training = _entry("training step (forward + backward + AdamW)", train_flops, batch_size * train_iters,
                      train_s, peak)
    return {"status": "measured", "device": name, "model": model_name, "input_size": size, "batch_size": batch_size,
            "precision": "bf16 autocast", "compiled": compile, "bf16_peak_tflops": peak,
            "flop_counter": "torch.utils.flop_counter.FlopCounterMode",
            "inference": inference, "training_step": training,
            # headline figures (inference), kept at the top level as before
            "images_per_second": inference["images_per_second"], "gflops_per_image": inference["gflops_per_image"],
            "achieved_tflops": inference["achieved_tflops"],
            "fraction_of_bf16_peak": inference["fraction_of_bf16_peak"]}
