"""GPU: Depth Anything ViT-L (``da2_vitl14``) throughput at 518×518 in bf16 autocast, as a fraction
of the GPU's dense bf16 peak. FLOPs per image are counted by ``torch.utils.flop_counter`` on one
forward; peaks come from the vendors' data sheets (dense, no sparsity). Without CUDA nothing is
measured and the entry says so."""
from __future__ import annotations

# Dense bf16 tensor-core peaks, TFLOP/s (vendor data sheets; SXM/PCIe variants by name).
BF16_PEAK_TFLOPS = {
    "H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 NVL": 835.5, "H100 PCIe": 756.5,
    "H100": 756.5, "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "A800": 312.0, "A10G": 70.0, "A10": 125.0,
    "L40S": 362.05, "L40": 181.0, "L4": 121.0, "RTX 4090": 165.2, "RTX 3090": 71.0, "A6000": 154.8,
    "V100": None, "T4": None,  # no bf16 tensor cores
}


def bf16_peak_tflops(name: str) -> float | None:
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return BF16_PEAK_TFLOPS[key]
    return None


def run(model_name: str = "da2_vitl14", batch_size: int = 16, size: int = 518, iters: int = 20,
        compile: bool = False) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"status": "not measured: no CUDA device", "model": model_name, "input_size": size}
    from torch.utils.flop_counter import FlopCounterMode

    from dabench.bench.timing import timed
    from dabench.models import create_model

    dev = torch.device("cuda")
    model = create_model(model_name).eval().to(dev).to(memory_format=torch.channels_last)
    run_model = torch.compile(model) if compile else model
    x = torch.randn(batch_size, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        with FlopCounterMode(display=False) as fc:
            model(x[:1])
        flops_per_image = fc.get_total_flops()
        for _ in range(3):
            run_model(x)
        seconds = timed(lambda: [run_model(x) for _ in range(iters)])
    ips = batch_size * iters / seconds
    name = torch.cuda.get_device_name(dev)
    peak = bf16_peak_tflops(name)
    achieved = flops_per_image * ips / 1e12
    return {"status": "measured", "device": name, "model": model_name, "input_size": size, "batch_size": batch_size,
            "compiled": compile, "images_per_second": ips, "gflops_per_image": flops_per_image / 1e9,
            "achieved_tflops": achieved, "bf16_peak_tflops": peak,
            "fraction_of_bf16_peak": (achieved / peak) if peak else None}
