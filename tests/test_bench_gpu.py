"""dabench.bench.gpu: peak lookup (the CUDA path itself is tested with the device mocked)."""
from __future__ import annotations

import pytest


def test_bf16_peak_lookup():
    from dabench.bench.gpu import bf16_peak_tflops

    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.5)
    assert bf16_peak_tflops("Some Future GPU") is None


@pytest.fixture
def fake_h100(monkeypatch):
    """Pretend a CUDA H100 is present; the work itself runs on the CPU (device logic mocked)."""
    from dabench.bench import gpu

    monkeypatch.setattr(gpu, "cuda_available", lambda: True)
    monkeypatch.setattr(gpu, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    synced = []
    monkeypatch.setattr(gpu, "synchronize", lambda device: synced.append(str(device)))
    return synced


def test_gpu_run_counts_flops_and_reports_fraction_of_peak(fake_h100):
    from dabench.bench import gpu

    out = {b: gpu.run(model_name="da2_test", batch_size=b, size=28, iters=1, train_iters=1, device="cpu")
           for b in (1, 2)}
    e = out[2]
    assert e["status"] == "measured" and e["device"] == "NVIDIA H100 80GB HBM3" and e["bf16_peak_tflops"] == 989.4
    assert fake_h100 and set(fake_h100) == {"cpu"}  # every timed region was synchronised on its device
    for key in ("inference", "training_step"):
        x = e[key]
        assert x["gflops_per_image"] > 0 and x["images_per_second"] > 0
        assert x["achieved_tflops"] == pytest.approx(x["gflops_per_image"] * x["images_per_second"] / 1e3)
        assert x["fraction_of_bf16_peak"] == pytest.approx(x["achieved_tflops"] / 989.4)
        assert isinstance(x["met"], bool) and x["goal"] == 0.4
        # counted FLOPs are per image: the same at batch 1 and 2
        assert out[1][key]["gflops_per_image"] == pytest.approx(x["gflops_per_image"], rel=1e-6)
    # backward costs about twice the forward: a training step counts 2.5-3.5x the inference FLOPs
    assert 2.5 < e["training_step"]["gflops_per_image"] / e["inference"]["gflops_per_image"] < 3.5
    assert e["fraction_of_bf16_peak"] == e["inference"]["fraction_of_bf16_peak"]


def test_gpu_flops_match_a_hand_count_of_the_linear_layers(fake_h100):
    """FLOPs of the encoder's linear layers, counted by hand (2·in·out per token), are within the total."""
    import torch

    from dabench.bench import gpu
    from dabench.models import create_model

    e = gpu.run(model_name="da2_test", batch_size=1, size=28, iters=1, train_iters=1, device="cpu")
    model = create_model("da2_test")
    tokens = (28 // 14) ** 2 + 1  # patches + class token
    linear = sum(2 * m.in_features * m.out_features * tokens for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "blocks" in n)
    assert linear / 1e9 < e["inference"]["gflops_per_image"]


def test_bench_device_cuda_runs_the_gpu_section_with_device_logic_mocked(fake_h100, monkeypatch):
    from rich.console import Console

    from dabench.bench import BenchSizes, gpu, print_table, run_bench

    real_run = gpu.run
    seen = {}

    def on_cpu(**kw):
        seen.update(kw)
        return real_run(**{**kw, "device": "cpu"})

    monkeypatch.setattr(gpu, "run", on_cpu)
    sizes = BenchSizes(gpu_model="da2_test", gpu_size=28, gpu_batch=2, gpu_iters=1, gpu_train_iters=1)
    result = run_bench(sections=["gpu_vitl_bf16"], threads=1, device="cuda", sizes=sizes)
    assert seen["device"] == "cuda" and seen["batch_size"] == 2 and seen["model_name"] == "da2_test"
    g = result["gpu_vitl_bf16"]
    assert g["status"] == "measured" and g["training_step"]["achieved_tflops"] > 0
    console = Console(record=True, width=250)
    print_table(result, console=console)
    text = console.export_text()
    assert "training step" in text and "of dense bf16 peak" in text
    assert BenchSizes.full().gpu_batch >= 16 and BenchSizes.full().gpu_model == "da2_vitl14"
