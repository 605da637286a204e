"""Where the metric engine's time goes (``metric_engine.kernel_parts`` of ``dabench bench``).

The native kernel's own source (``dabench/metrics/depth_kernel.c``, AVX-512 variant) is rebuilt with
the logarithm, the two divisions, or both taken out — each replaced by one cheap operation on the
same operands, so loads, masks and the eleven sums stay — and every variant scores the same
NYU-sized Eigen-crop views at one thread, interleaved with the read floor (a torch sum of both
crops) and torch's compiled pass over the same maps. The maps are reused, so they sit in cache:
this isolates arithmetic from memory; the main ``metric_engine`` figures score fresh maps.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

_LOG = ("__m512 e = log_ps(r);", "__m512 e = rm1;")
_DIVS = (("__m512 r = _mm512_mask_div_ps(one, use, pv, gv),", "__m512 r = _mm512_mask_mul_ps(one, use, pv, gv),"),
         ("_mm512_max_ps(_mm512_mask_div_ps(one, use, gv, pv), r)", "_mm512_max_ps(_mm512_mask_mul_ps(one, use, gv, pv), r)"))
VARIANTS = {"full": (), "without_log": (_LOG,), "without_divisions": _DIVS,
            "without_log_and_divisions": (_LOG, *_DIVS)}


def variant_source(edits) -> bytes:
    from dabench.metrics.depth_native import SOURCE

    text = SOURCE.read_text()
    for old, new in edits:
        if text.count(old) != 1:
            raise RuntimeError(f"kernel source changed: {old!r} not found once")
        text = text.replace(old, new)
    return text.encode()


def run(size: tuple[int, int] = (480, 640), maps: int = 6, rounds: int = 15, calls: int = 5) -> dict:
    """ms per map of each variant (median over ``rounds`` interleaved rounds of ``calls`` calls)."""
    import torch

    from dabench.bench.metric_engine import MAX_DEPTH, MIN_DEPTH, NyuLikeMaps, crop_box
    from dabench.metrics.depth_native import available, build_kernel, depth_sums_native
    from dabench.metrics.depth_torch import depth_sums_batch
    from dabench.metrics.registry import depth_engine_metrics, depth_sum_terms

    ok, isa = available()
    if not ok or isa != "avx512":
        return {"measured": False, "reason": f"needs the AVX-512 native kernel (here: {isa})"}
    terms = depth_sum_terms(depth_engine_metrics())
    gt, pred = NyuLikeMaps(size, seed=1).batch(maps)
    t, b, l, r = crop_box(size)
    p, g = torch.from_numpy(pred)[:, t:b, l:r], torch.from_numpy(gt)[:, t:b, l:r]
    kw = dict(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, clamp_pred=True)
    fns = {}
    with tempfile.TemporaryDirectory() as d:
        for name, edits in VARIANTS.items():
            kernel, _ = build_kernel(flag_sets=(("-O3", "-march=native"),), source=variant_source(edits), out_dir=Path(d))
            fns[name] = (lambda k=kernel: depth_sums_native(p, g, None, terms=terms, threads=1, kernel=k, **kw))
    fns["torch_compiled"] = lambda: depth_sums_batch(p, g, None, compile=True, engine="torch", **kw)
    fns["read_floor"] = lambda: float(p.sum()) + float(g.sum())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in fns.values():  # warm-up (compiles torch's kernel)
            fn()
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                times[k].append((time.perf_counter() - t0) / (calls * maps) * 1e3)
    finally:
        torch.set_num_threads(threads)
    ms = {k: float(np.median(v)) for k, v in times.items()}
    return {"measured": True, "threads": 1, "maps": maps, "size": list(size), "rounds": rounds,
            "ms_per_map": ms, "over_read_floor": {k: v / ms["read_floor"] for k, v in ms.items()},
            "what": "the native kernel rebuilt without the log / the divisions / both (cheap stand-ins keep the "
                    "data flow), torch's compiled pass and the read floor, one thread, the same maps in cache, "
                    "interleaved; medians"}


__all__ = ["run", "VARIANTS", "variant_source"]
