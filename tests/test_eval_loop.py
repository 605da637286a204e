"""The pipelined evaluation loop against the sequential reference path: the same records for workers,
flip TTA, window crops and the cache; errors from any stage reach the caller; preprocessing as the data
config says; ``--batch-size auto`` with the CUDA device mocked."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dabench.errors import DataError
from dabench.eval.loop import evaluate
from dabench.eval.suites import Protocol
from dabench.models import create_model


@pytest.fixture(scope="module")
def samples():
    from dabench.data import build_dataset

    ds = build_dataset("synthetic-indoor", limit=5)
    return [ds[i] for i in range(len(ds))]


class ListDataset(torch.utils.data.Dataset):
    """Read through loader workers (a list would be read inline)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _same(a, b, rel=1e-6):
    assert a.counts == b.counts
    for k in b.metrics:
        assert a.metrics[k] == pytest.approx(b.metrics[k], rel=rel), k
        assert a.metrics_pixel_pooled[k] == pytest.approx(b.metrics_pixel_pooled[k], rel=rel), k
    assert [r["name"] for r in a.rows] == [r["name"] for r in b.rows]
    for ra, rb in zip(a.rows, b.rows):
        assert ra["status"] == rb["status"] and ra["valid_pixels"] == rb["valid_pixels"]
        for k in list(b.metrics) + ["scale", "shift"]:
            assert ra[k] == pytest.approx(rb[k], rel=rel, abs=1e-12), (ra["name"], k)


@pytest.mark.parametrize("flip", [False, True])
def test_pipelined_loop_equals_the_reference_path(samples, flip):
    torch.manual_seed(0)
    model = create_model("da2_test")
    proto = Protocol(min_depth=0.5, max_depth=20.0, input_size=42, flip_tta=flip)
    ref = evaluate(model, samples, proto, batch_size=2, pipelined=False, engine="reference", num_workers=0)
    fast = evaluate(model, ListDataset(samples), proto, batch_size=2, num_workers=2)
    _same(fast, ref)
    assert fast.counts["used"] == 5 and [r["index"] for r in fast.rows] == list(range(5))  # order kept


def test_window_crop_and_cache_through_the_pipeline(samples, tmp_path):
    from dabench.eval.cache import PredictionCache

    big = []
    for s in samples[:3]:  # KITTI-sized frames: the kb crop cuts the 352x1216 window before inference
        img = np.ascontiguousarray(np.resize(s["image"], (375, 1242, 3)))
        depth = np.resize(s["depth"], (375, 1242)).astype(np.float32)
        big.append({"image": img, "depth": depth, "valid": depth > 0, "name": s["name"]})
    model = create_model("horizon_prior")
    proto = Protocol(crop="kb+garg", min_depth=1e-3, max_depth=80.0, input_size=56)
    ref = evaluate(model, big, proto, pipelined=False, engine="reference", num_workers=0)
    cache = PredictionCache(tmp_path / "c")
    first = evaluate(model, ListDataset(big), proto, cache=cache, model_fp="m", num_workers=1)
    _same(first, ref)
    again = evaluate(model, big, proto, cache=PredictionCache(tmp_path / "c"), model_fp="m")
    assert (again.cache_hits, again.cache_misses) == (3, 0)
    _same(again, ref)


def test_errors_of_every_stage_reach_the_caller(samples):
    from dabench.models.depth_anything import default_data_config

    class NaNModel(torch.nn.Module):
        output_space = "disparity"
        data_config = default_data_config()

        def forward(self, x):
            out = torch.ones(x.shape[0], x.shape[2], x.shape[3])
            out[:, 0, 0] = float("nan")
            return out

    proto = Protocol(min_depth=0.5, max_depth=20.0, input_size=28)
    with pytest.raises(DataError, match="NaN/inf"):  # raised on the scoring thread
        evaluate(NaNModel(), samples * 3, proto, batch_size=1)

    class Broken(ListDataset):
        def __getitem__(self, i):
            if i == 3:
                raise DataError("sample 3 is unreadable")
            return super().__getitem__(i)

    for workers in (0, 1):  # raised in a loader worker or on the prepare thread
        with pytest.raises(DataError, match="sample 3 is unreadable"):
            evaluate(create_model("horizon_prior"), Broken(samples), proto, batch_size=1, num_workers=workers)


def test_host_preprocessing_is_the_data_configs_bit_for_bit_and_device_close():
    from dabench.eval.infer import Predictor
    from dabench.models.contract import data_config_of

    model = create_model("da2_test")
    cfg = data_config_of(model)
    rng = np.random.default_rng(0)
    for shape, size in (((48, 64, 3), 42), ((37, 53, 3), 42), ((56, 56, 3), 56)):
        ims = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2)]
        ref = np.stack([cfg.preprocess_numpy(im, size) for im in ims])
        mirrored = np.stack([cfg.preprocess_numpy(np.ascontiguousarray(im[:, ::-1]), size) for im in ims])
        _, x, xf = Predictor(model, size, "cpu", flip_tta=True).prepare(ims).groups[0]
        np.testing.assert_array_equal(x.numpy(), ref)
        np.testing.assert_array_equal(xf.numpy(), mirrored)
        # the GPU route (torch interpolate), run here on the CPU: OpenCV's resize to coefficient rounding
        _, x, xf = Predictor(model, size, "cpu", preprocess="device", flip_tta=True).prepare(ims).groups[0]
        np.testing.assert_allclose(x.numpy(), ref, atol=5e-4)
        np.testing.assert_allclose(xf.numpy(), mirrored, atol=5e-4)


def test_batch_size_auto_on_a_mocked_cuda_device(monkeypatch):
    from dabench.eval import batching

    gib = 1 << 30
    fixed, per_pixel = 2 * gib, 2000  # bytes: weights + workspace, and per input pixel of one image
    calls = []

    def forward_peak(model, b, hw, device, amp):
        calls.append((b, hw))
        need = fixed + b * per_pixel * hw[0] * hw[1]
        return None if need > 40 * gib else need

    monkeypatch.setattr(batching, "mem_get_info", lambda device: (40 * gib, 80 * gib))
    monkeypatch.setattr(batching, "forward_peak", forward_peak)
    model = create_model("horizon_prior")
    budget = batching.CUDA_BUDGET * 40 * gib
    for hw in ((518, 686), (518, 1554)):  # NYU, then a wider dataset: re-picked for the new input size
        b = batching.pick_batch_size(model, hw, "cuda")
        assert b == min(batching.MAX_AUTO_BATCH, int((budget - fixed) // (per_pixel * hw[0] * hw[1]))), hw
        assert fixed + b * per_pixel * hw[0] * hw[1] <= budget
    n = len(calls)
    assert batching.pick_batch_size(model, (518, 686), "cuda", limit=5) == 5 and len(calls) == n  # remembered
    # a forward that runs out of memory earlier than the estimate says: shrunk until it runs
    monkeypatch.setattr(batching, "forward_peak", lambda m, b, hw, d, a: None if b > 7 else fixed + b)
    assert batching.pick_batch_size(create_model("constant"), (518, 686), "cuda") == 7
    # the CPU rule: CPU_BATCH, fewer when an image's share of memory is large
    assert batching.cpu_batch((518, 686), memory=64 * gib) == batching.CPU_BATCH
    assert batching.cpu_batch((518, 686), memory=4 * 400 * 3 * 518 * 686 * 2) == 2


def test_evaluate_batch_size_auto_picks_per_input_size(samples, monkeypatch):
    from dabench.eval import batching

    seen = []
    real = batching.pick_batch_size
    monkeypatch.setattr(batching, "pick_batch_size", lambda m, hw, d, a, limit=None: seen.append(hw) or real(m, hw, d, a, limit=limit))
    proto = Protocol(min_depth=0.5, max_depth=20.0, input_size=42)
    res = evaluate(create_model("horizon_prior"), samples, proto, batch_size="auto")
    assert res.batch_size == min(batching.CPU_BATCH, 5) and seen == [(42, 56)]


def test_cli_batch_size_auto_and_a_bad_value(tmp_path):
    import json

    from typer.testing import CliRunner

    from dabench.cli import app

    runner = CliRunner()
    args = ["run", "--suite", "zero-shot", "--model", "horizon_prior", "--limit", "2", "--device", "cpu",
            "--results", str(tmp_path / "r"), "--no-cache", "--datasets", "nyu"]
    res = runner.invoke(app, [*args, "--batch-size", "many"])
    assert res.exit_code == 2 and "--batch-size must be a positive number or auto" in res.output
    res = runner.invoke(app, [*args, "--batch-size", "auto"])
    assert res.exit_code == 0, res.output
    rec = json.loads(next((tmp_path / "r" / "zero-shot" / "horizon_prior").glob("synthetic-indoor*.json")).read_text())
    assert rec["config"]["batch_size"] == "auto" and rec["config"]["batch_size_auto"] == 2


def test_the_gpu_route_run_on_the_cpu_equals_the_reference(samples):
    """Device preprocessing (torch interpolate) and the float64 torch scorer, the CUDA configuration,
    exercised on the CPU: horizon_prior reads only the input's shape, so the records must be the reference's."""
    proto = Protocol(min_depth=0.5, max_depth=20.0, input_size=42, flip_tta=True)
    model = create_model("horizon_prior")
    ref = evaluate(model, samples, proto, batch_size=2, pipelined=False, engine="reference", num_workers=0)
    _same(evaluate(model, ListDataset(samples), proto, batch_size=2, engine="torch", preprocess="device",
                   num_workers=1), ref)


def test_da3_config_and_side_outputs_through_the_pipeline(samples, tmp_path):
    """Depth Anything 3's data config (two-step side resize, uint8 resizing) goes through
    ``preprocess_numpy`` itself; its confidence reaches ``--log-samples`` as ``aux_confidence``."""
    from dabench.eval.records import sample_logger

    torch.manual_seed(0)
    model = create_model("da3_test")
    proto = Protocol(min_depth=0.5, max_depth=20.0, input_size=56)
    ref = evaluate(model, samples[:3], proto, batch_size=2, pipelined=False, engine="reference", num_workers=0)
    logger = sample_logger(tmp_path, "run1", "da3_test", "synthetic-indoor")
    fast = evaluate(model, ListDataset(samples[:3]), proto, batch_size=2, num_workers=1, log_sample=logger)
    _same(fast, ref)
    files = sorted((tmp_path / "runs" / "run1" / "samples").rglob("*.npz"))
    assert len(files) == 3
    with np.load(files[0]) as z:
        assert "aux_confidence" in z.files and z["aux_confidence"].shape == z["pred"].shape
