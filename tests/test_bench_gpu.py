"""dabench.bench.gpu: peak lookup (the CUDA path itself is tested with the device mocked)."""
from __future__ import annotations

import pytest


def test_bf16_peak_lookup():
    from dabench.bench.gpu import bf16_peak_tflops

    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.5)
    assert bf16_peak_tflops("Some Future GPU") is None
