"""`dabench bench`: runs end to end at tiny sizes and writes the documented JSON; the compared outputs
agree. No timing is asserted (the numbers are machine- and load-dependent)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from dabench.cli import app

SECTIONS = {  # section -> the two raw figures its ratio is made of
    "metric_engine": ("baseline_seconds", "dabench_seconds"),
    "inference": ("per_image_seconds", "batched_seconds"),
    "inference_da3": ("per_image_seconds", "batched_seconds"),
    "student_step": ("student_step_seconds", "teacher_step_seconds"),
    "synthetic_data": ("generated_images_per_second", "trained_images_per_second"),
    "memory": ("peak_rss_10n_mib", "peak_rss_n_mib"),
}


def test_bench_quick_cli_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--quick", "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for name, (a, b) in SECTIONS.items():
        e = data[name]
        assert {"ratio", "goal", "goal_op", "met", a, b} <= set(e), name
        assert e[a] > 0 and e[b] > 0, name
        assert math.isclose(e["ratio"], e[a] / e[b], rel_tol=1e-9) or name in ("inference", "inference_da3", "student_step"), name
        assert isinstance(e["met"], bool)
    assert data["metric_engine"]["values_agree"] is True
    me = data["metric_engine"]
    assert me["floor_seconds"] > 0 and isinstance(me["seconds_over_floor_met"], bool)
    assert math.isclose(me["seconds_over_floor"], me["dabench_seconds"] / me["floor_seconds"], rel_tol=1e-9)
    assert data["inference"]["model"] == "da2_test"  # --quick; the full run times da2_vits14 at real width
    assert data["metric_engine"]["images_scored"] == data["metric_engine"]["maps"]
    from dabench.metrics.depth_native import available

    native, isa = available()
    assert me["engine"] == (f"native ({isa})" if native else "torch-eager")
    parts = me["kernel_parts"]
    assert parts["measured"] is (native and isa == "avx512"), parts
    if parts["measured"]:
        assert set(parts["ms_per_map"]) == {"full", "without_log", "without_divisions", "without_log_and_divisions",
                                            "torch_compiled", "read_floor"}
        assert all(v > 0 for v in parts["ms_per_map"].values())
    assert data["inference"]["outputs_equal"] is True and data["inference"]["output_max"] > 0
    assert data["inference_da3"]["outputs_equal"] is True and data["inference_da3"]["model"] == "da3_test"
    assert data["memory"]["samples_scored"] == [data["memory"]["n"], data["memory"]["n"] * data["memory"]["factor"]]
    gpu = data["gpu_vitl_bf16"]
    if not torch.cuda.is_available():
        assert gpu["status"] == "not measured: no CUDA device"
    assert "git_commit" in data and data["environment"]["torch_threads"] == 1
    assert "metric engine" in res.output and "inference" in res.output


def test_bench_rejects_unknown_section():
    res = CliRunner().invoke(app, ["bench", "--quick", "--only", "metric_engine,warp_drive"])
    assert res.exit_code == 2
    assert "warp_drive" in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_bench_cuda_device_without_cuda_is_a_clear_error():
    res = CliRunner().invoke(app, ["bench", "--quick", "--device", "cuda"])
    assert res.exit_code == 2 and "no CUDA device" in res.output


def test_full_sizes_time_inference_at_real_width():
    from dabench.bench import BenchSizes

    full = BenchSizes.full()
    assert full.infer_da3_model == "da3_vits14"
    assert full.infer_model == "da2_vits14" and full.infer_input_size == 518 and full.infer_size == (480, 640)


def test_bench_suite_section_keys():
    """``dabench bench --only suite`` (quick sizes): the section's contract keys, measured in one run."""
    from dabench.bench import BenchSizes, run_bench

    data = run_bench(sections=["suite"], threads=1, sizes=BenchSizes.quick())
    e = data["suite"]
    assert {"host_over_decode", "overlap", "values_equal"} <= set(e)
    assert e["ratio"] == e["host_over_decode"] and e["goal"] == 1.5 and e["goal_op"] == "<="
    assert math.isclose(e["host_over_decode"], e["loop_ms_per_sample"] / e["decode_ms_per_sample"], rel_tol=1e-9)
    assert e["values_equal"] is True and e["max_relative_difference"] <= 1e-6
    assert e["overlap"] > 0 and isinstance(e["overlap_met"], bool) and e["frames"] == 8
