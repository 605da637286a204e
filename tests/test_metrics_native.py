"""dabench.metrics.depth_native: the C pass against float64 numpy references (the numpy engine and
plain formulas), both compiled variants (AVX-512 where the CPU has it, portable), threads, fallbacks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabench.errors import DataError
from dabench.metrics import depth_native
from dabench.metrics.depth import depth_sums
from dabench.metrics.depth_torch import depth_sums_batch, pick_engine
from dabench.metrics.registry import depth_engine_metrics, depth_sum_terms

TERMS = depth_sum_terms(depth_engine_metrics())
NATIVE = depth_native.available()[0]
needs_native = pytest.mark.skipif(not NATIVE, reason=f"native kernel unavailable: {depth_native.available()[1]}")


def _maps(b, h, w, seed=0, holes=0.1):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.2, 12.0, (b, h, w)).astype(np.float32)
    gt[rng.random(gt.shape) < holes] = 0.0
    gt[rng.random(gt.shape) < 0.01] = np.nan
    pred = (np.where(gt > 0, gt, 1.0) * np.exp(rng.normal(0, 0.3, gt.shape))).astype(np.float32)
    return gt, pred


def _numpy_reference(pred, gt, valid, lo, hi, clamp):
    """Per-map float64 sums with the numpy engine (float64 formulas over the counted pixels)."""
    out = []
    for i in range(pred.shape[0]):
        p = np.clip(pred[i], lo, hi) if clamp else pred[i]
        with np.errstate(invalid="ignore"):
            m = (gt[i] > lo) & (gt[i] < hi)
        if valid is not None:
            m &= valid if valid.ndim == 2 else valid[i]
        out.append(depth_sums(p, gt[i], m))
    return np.stack(out)


@pytest.fixture(scope="module")
def portable_kernel():
    if not NATIVE:
        pytest.skip("no C compiler")
    fn, isa = depth_native.build_kernel(flag_sets=(("-O3",),))
    assert isa == "portable"
    return fn


@needs_native
@pytest.mark.parametrize("variant", ["default", "portable"])
@pytest.mark.parametrize("shape,mask,clamp", [((3, 17, 37), None, True), ((2, 33, 16), "shared", False),
                                              ((1, 1, 7), None, False), ((4, 20, 50), "per_map", True)])
def test_native_sums_equal_the_numpy_engine(variant, shape, mask, clamp, request):
    gt, pred = _maps(*shape)
    rng = np.random.default_rng(3)
    valid = None if mask is None else rng.random(shape[1:] if mask == "shared" else shape) > 0.25
    lo, hi = (1e-3, 10.0) if clamp else (0.5, math.inf)
    kernel = request.getfixturevalue("portable_kernel") if variant == "portable" else None
    got = depth_native.depth_sums_native(torch.from_numpy(pred), torch.from_numpy(gt),
                                         None if valid is None else torch.from_numpy(valid), min_depth=lo,
                                         max_depth=hi, clamp_pred=clamp, terms=TERMS, kernel=kernel)
    ref = _numpy_reference(pred, gt, valid, lo, hi, clamp)
    assert got[:, -1].sum() == 0  # no bad prediction
    np.testing.assert_allclose(got[:, :-1], ref, rtol=2e-6, atol=1e-9)


@needs_native
def test_crop_views_and_other_dtypes_are_read_as_the_copies():
    gt, pred = _maps(3, 40, 64, seed=2)
    kw = dict(min_depth=1e-3, max_depth=10.0, clamp_pred=True)
    view = depth_sums_batch(torch.from_numpy(pred)[:, 5:31, 3:50], torch.from_numpy(gt)[:, 5:31, 3:50], **kw)
    copy = depth_sums_batch(np.ascontiguousarray(pred[:, 5:31, 3:50]), np.ascontiguousarray(gt[:, 5:31, 3:50]), **kw)
    f64 = depth_sums_batch(pred[:, 5:31, 3:50].astype(np.float64), gt[:, 5:31, 3:50].astype(np.float64), **kw)
    np.testing.assert_array_equal(view, copy)
    np.testing.assert_array_equal(view, f64)


@needs_native
def test_thread_count_does_not_change_a_single_bit():
    gt, pred = _maps(5, 130, 110, seed=4)  # above the size where threads are used
    p, g = torch.from_numpy(pred), torch.from_numpy(gt)
    runs = [depth_native.depth_sums_native(p, g, None, min_depth=1e-3, max_depth=10.0, clamp_pred=True, terms=TERMS,
                                           threads=n) for n in (1, 2, 3, 7, 2, 3)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])


@needs_native
@pytest.mark.parametrize("variant", ["default", "portable"])
def test_log_terms_over_extreme_ratios_match_float64(variant, request):
    """ln r from the polynomial (normal r) and the exact fallback (r subnormal, 0 or inf) against
    ln p - ln g in float64; one pixel per map so each ratio is checked on its own."""
    kernel = request.getfixturevalue("portable_kernel") if variant == "portable" else None
    rng = np.random.default_rng(5)
    g = np.exp(rng.uniform(-40, 40, 600)).astype(np.float32)
    p = (g * np.exp(np.concatenate([rng.uniform(-40, 40, 300), rng.uniform(-0.7, 0.7, 300)]))).astype(np.float32)
    extra = [(1e-30, 1e10), (1e-38, 1e8), (3e38, 1e-6), (1.0, 1.0), (1.0000001, 1.0), (7.0, 7.0000005)]
    p = np.concatenate([p, np.float32([a for a, _ in extra])])
    g = np.concatenate([g, np.float32([b for _, b in extra])])
    got = depth_native.depth_sums_native(torch.from_numpy(p[:, None, None]), torch.from_numpy(g[:, None, None]),
                                         None, min_depth=0.0, max_depth=math.inf, clamp_pred=False, terms=TERMS,
                                         kernel=kernel)
    e = np.log(p.astype(np.float64)) - np.log(g.astype(np.float64))
    col = {t: i for i, t in enumerate(TERMS)}
    np.testing.assert_allclose(got[:, col["log_err"]], e, rtol=3e-7, atol=1e-7)
    np.testing.assert_allclose(got[:, col["sq_log"]], e * e, rtol=6e-7, atol=1e-7)
    np.testing.assert_allclose(got[:, col["abs_log10"]], np.abs(e) / np.log(10), rtol=3e-7, atol=1e-7)


@needs_native
def test_delta_ties_count_as_zoedepth_counts_them():
    """max(g/p, p/g) < 1.25^k in float32 (ZoeDepth's formula): exact ties (8 m vs 10 m, 0.8 vs 1)
    and ratios one float step either side of each threshold."""
    from dabench.bench.metric_engine import zoedepth_compute_errors

    g = [8.0, 10.0, 0.8, 1.0, 6.4, 10.0, 5.12, 10.0]
    p = [10.0, 8.0, 1.0, 0.8, 10.0, 6.4, 10.0, 5.12]
    for t in (1.25, 1.5625, 1.953125):
        for side in (np.nextafter(np.float32(t), np.float32(0)), np.float32(t), np.nextafter(np.float32(t), np.float32(9))):
            g += [3.0, float(np.float32(3.0) * side)]
            p += [float(np.float32(3.0) * side), 3.0]
    g32, p32 = np.float32(g), np.float32(p)
    got = depth_sums_batch(p32[None, None, :], g32[None, None, :], min_depth=0.0, max_depth=math.inf)
    zoe = zoedepth_compute_errors(g32, p32)
    col = {t: i for i, t in enumerate(TERMS)}
    for k, key in ((1, "a1"), (2, "a2"), (3, "a3")):
        assert got[0, col[f"delta{k}"]] == round(zoe[key] * len(g)), k


@needs_native
@pytest.mark.parametrize("bad", [np.nan, 0.0, -1.0, np.inf])
def test_bad_prediction_on_a_counted_pixel_names_the_map(bad):
    gt, pred = _maps(2, 9, 20, holes=0.0)
    gt = np.nan_to_num(gt, nan=5.0)
    pred[1, 4, 17] = bad
    with pytest.raises(DataError, match="second.*valid pixels"):
        depth_sums_batch(pred, gt, names=["first", "second"], engine="native")
    gt[1, 4, 17] = 0.0  # not counted: fine
    depth_sums_batch(pred, gt, engine="native")


def test_disabled_or_no_compiler_falls_back_to_torch(monkeypatch, tmp_path):
    gt, pred = _maps(2, 10, 20)
    want = depth_sums_batch(pred, gt, min_depth=1e-3, max_depth=10.0, engine="torch")
    for env, expect in (({"DABENCH_NATIVE_METRICS": "0"}, "DABENCH_NATIVE_METRICS"),
                        ({"CC": str(tmp_path / "no-such-cc")}, "no-such-cc")):
        monkeypatch.setattr(depth_native, "_state", {})
        monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        ok, why = depth_native.available()
        assert not ok and expect in why
        assert pick_engine("cpu", TERMS) == "torch-eager"
        np.testing.assert_array_equal(depth_sums_batch(pred, gt, min_depth=1e-3, max_depth=10.0), want)
        with pytest.raises(RuntimeError, match="native depth-metric kernel"):
            depth_sums_batch(pred, gt, engine="native")
        for k in env:
            monkeypatch.delenv(k)


@needs_native
def test_kernel_is_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
    fn, isa = depth_native.build_kernel()
    built = sorted((tmp_path / "cache" / "kernels").glob("depth_sums-*.so"))
    assert len(built) == 1 and not list((tmp_path / "cache" / "kernels").glob(".depth_sums-*"))
    stamp = built[0].stat().st_mtime_ns
    depth_native.build_kernel()
    assert built[0].stat().st_mtime_ns == stamp


def test_metrics_with_their_own_terms_use_the_torch_pass():
    from dabench.metrics.registry import MetricSpec, register_metric, unregister_metric

    register_metric(MetricSpec("test_native_abs_err", "AbsErr", False, ".3f", "m", "image", "test_native",
                               sums={"test_native_abs": lambda x: abs(x.d)}, finalize=lambda s: s["test_native_abs"] / s["n"]))
    try:
        terms = depth_sum_terms(("abs_rel", "test_native_abs_err"))
        assert not depth_native.supports(terms)
        assert pick_engine("cpu", terms, compile=False) == "torch-eager"
        with pytest.raises(RuntimeError):
            pick_engine("cpu", terms, engine="native")
        gt, pred = _maps(1, 8, 8, holes=0.0)
        gt = np.nan_to_num(gt, nan=5.0)
        got = depth_sums_batch(pred, gt, metrics=("abs_rel", "test_native_abs_err"))
        assert got[0, 2] == pytest.approx(np.abs(pred[0].astype(np.float64) - gt[0]).sum(), rel=1e-5)
    finally:
        unregister_metric("test_native_abs_err")
    assert pick_engine("cuda", TERMS) == "torch-eager"
    with pytest.raises(RuntimeError, match="CPU"):
        pick_engine("cuda", TERMS, engine="native")


@needs_native
def test_a_cached_library_others_could_write_is_rebuilt_not_loaded(monkeypatch, tmp_path):
    import os
    import stat

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
    depth_native.build_kernel()
    (lib,) = (tmp_path / "cache" / "kernels").glob("depth_sums-*.so")
    assert stat.S_IMODE(lib.stat().st_mode) & 0o022 == 0
    planted = lib.with_name("planted")  # what another user could have put there (a new file: the
    planted.write_bytes(b"planted")     # loaded library stays mapped, so never write over it in place)
    os.chmod(planted, 0o666)
    os.replace(planted, lib)
    depth_native.build_kernel()  # would fail to load "planted" if it were used
    assert lib.read_bytes()[:4] == b"\x7fELF" and stat.S_IMODE(lib.stat().st_mode) & 0o022 == 0
    os.chmod(lib.parent, 0o777)  # a shared cache folder: build privately, leave it alone
    before = lib.stat().st_mtime_ns
    fn, _ = depth_native.build_kernel()
    assert lib.stat().st_mtime_ns == before and fn is not None
    os.chmod(lib.parent, 0o700)


@needs_native
def test_odd_layouts_masks_and_empty_maps():
    gt, pred = _maps(2, 24, 40, seed=6)
    rng = np.random.default_rng(7)
    mask = rng.random(gt.shape) > 0.3
    kw = dict(min_depth=1e-3, max_depth=10.0, clamp_pred=True)
    ref = depth_sums_batch(pred, gt, mask, engine="torch", **kw)
    # transposed (last dimension not contiguous) inputs and mask, a uint8 mask
    got_t = depth_sums_batch(torch.from_numpy(pred.transpose(0, 2, 1).copy()).transpose(1, 2),
                             torch.from_numpy(gt.transpose(0, 2, 1).copy()).transpose(1, 2),
                             torch.from_numpy(mask.transpose(0, 2, 1).copy()).transpose(1, 2), engine="native", **kw)
    got_u8 = depth_sums_batch(pred, gt, mask.astype(np.uint8), engine="native", **kw)
    np.testing.assert_allclose(got_t, ref, rtol=2e-6)
    np.testing.assert_array_equal(got_u8, got_t)
    for shape in ((2, 0, 5), (2, 5, 0)):
        z = np.zeros(shape, np.float32)
        np.testing.assert_array_equal(depth_sums_batch(z, z, engine="native"), np.zeros((2, len(TERMS))))


@needs_native
def test_helper_threads_survive_fork_and_concurrent_callers():
    """The kernel's POSIX helper threads: a forked child (DataLoader workers, DDP launchers) starts its
    own, and two Python threads scoring at once get their own results."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    gt, pred = _maps(4, 130, 140, seed=8)  # above the size where helpers are used
    kw = dict(min_depth=1e-3, max_depth=10.0, clamp_pred=True)
    want = depth_sums_batch(pred, gt, **kw)  # helpers now exist in this process
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(depth_sums_batch, (pred, gt), kw).get(timeout=120)
    np.testing.assert_array_equal(got, want)
    other = _maps(4, 130, 140, seed=9)
    want_other = depth_sums_batch(other[1], other[0], **kw)
    with ThreadPoolExecutor(2) as ex:
        for _ in range(5):
            a = ex.submit(depth_sums_batch, pred, gt, **kw)
            b = ex.submit(depth_sums_batch, other[1], other[0], **kw)
            np.testing.assert_array_equal(a.result(), want)
            np.testing.assert_array_equal(b.result(), want_other)
