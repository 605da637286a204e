"""The evaluation loop's scorer: ``dabench.eval.scoring.score_sample``'s rules from sums, in one or two passes.

``score_sample`` (the reference, kept for tests, reports and error messages) gathers the valid pixels,
fits the alignment with numpy and scores the nine metrics in float64 numpy: tens of milliseconds per
NYU frame. :class:`FastScorer` gives the same records from

1. the alignment's sums over the valid mask (n, Σx, Σy, Σx², Σxy in float64, shifted by the first valid
   pixel so that nothing cancels; ``alignment_max_res``: on Marigold's column subsample), fitted by
   :func:`dabench.eval.align.fit_from_sums` (``median`` is a selection, fitted as the reference does);
2. one pass over the map that applies the alignment, the protocol's clamps and reciprocals exactly as
   ``score_sample`` writes them (float64, multiply then add) and sums the metric terms.

Engines: ``native`` (the C kernel ``depth_kernel.c``: one call per pass, GIL released, so the loop
scores on a thread while the model runs), ``torch`` (the same formulas as float64 torch ops on the
prediction's device: CUDA), ``reference`` (``score_sample`` itself). ``auto``: native for CPU maps when
the kernel is built and computes every requested term, else torch. The score-space maps equal the
reference's bit for bit given the same (scale, shift), which the sums fit to ≈1e-15 relative: counts
(δ) agree exactly but for a ratio within that of a threshold, and sums agree to summation order.
A sample the reference would reject (NaN, non-positive values after clamping, bad ground truth) is
handed to ``score_sample``, which raises the reference's error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dabench.eval.align import ALIGNMENT_INPUT_SPACE, DegenerateAlignmentError, fit_alignment, fit_from_sums, \
    subsample_columns
from dabench.eval.suites import Protocol
from dabench.metrics.registry import depth_engine_metrics, depth_sum_terms

ENGINES = ("auto", "native", "torch", "reference")


@dataclass(frozen=True)
class ScorePlan:
    """What ``score_sample`` does to a raw prediction, as numbers: x = pred, or 1 / max(pred, 1e-8)
    (``recip_in``); aligned a = clip(x·s + t, lo1, hi1); p = 1/a if ``recip_out``; p = max(p, lo2);
    g = 1/gt if ``recip_gt``."""

    mode: str
    recip_in: bool
    lo1: float
    hi1: float
    recip_out: bool
    lo2: float
    recip_gt: bool
    fit_recip_gt: bool  # the alignment's target: disparity (1/gt) or depth

    def cfg(self, s: float, t: float) -> np.ndarray:
        return np.array([s, t, self.lo1, self.hi1, self.lo2, self.recip_in, self.recip_out, self.recip_gt],
                        dtype=np.float64)


def score_plan(protocol: Protocol, output_space: str) -> ScorePlan:
    """The plan of ``score_sample`` (its module doc, steps 3-5) for ``protocol`` and a model's output space."""
    mode = protocol.alignment
    space = ALIGNMENT_INPUT_SPACE[mode] or output_space
    floor = protocol.floor()
    inf = math.inf
    if space == "disparity":
        if protocol.score_space == "disparity":
            lo1, hi1, recip_out, lo2, recip_gt = 1.0 / protocol.max_depth, (1.0 / floor if floor > 0 else inf), False, -inf, True
        else:
            cap = protocol.depth_cap or protocol.max_depth
            lo1, hi1, recip_out, lo2, recip_gt = 1.0 / cap, inf, True, floor, False
    else:
        lo1, hi1 = (floor, protocol.max_depth) if protocol.clamp_pred else (-inf, inf)
        recip_out = recip_gt = protocol.score_space == "disparity"
        lo2 = -inf
    return ScorePlan(mode, space != output_space, float(lo1), float(hi1), recip_out, float(lo2), recip_gt,
                     space == "disparity")


def _native_ok(terms) -> bool:
    import dabench.metrics.depth_native as depth_native

    return depth_native.available()[0] and depth_native.supports(terms)


class FastScorer:
    """Scores samples of one (protocol, output space) like ``score_sample``; see the module doc.

    ``score(pred, depth, valid, valid_pixels, sample, name)``: ``pred`` the raw H×W prediction (numpy, or a
    torch tensor on any device), ``depth`` the ground truth (metres) and ``valid`` the evaluation mask
    (``eval_valid_mask``) on the same device, ``sample`` what ``score_sample`` needs should this sample take
    the reference path (``depth``/``valid``/``name``). Returns ``(status, metrics or None, info)`` as
    ``score_sample`` does (no ``aligned`` map: ``aligned_map`` makes it for ``--log-samples``)."""

    def __init__(self, protocol: Protocol, output_space: str, engine: str = "auto"):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.protocol, self.output_space = protocol, output_space
        self.metrics = depth_engine_metrics(protocol.metric_family)
        self.terms = depth_sum_terms(self.metrics)
        self.plan = score_plan(protocol, output_space)
        self.engine = engine
        self._native = engine in ("auto", "native") and _native_ok(self.terms)
        if engine == "native" and not self._native:
            raise RuntimeError("the native depth kernel is unavailable or does not compute every requested term")

    def engine_for(self, pred) -> str:
        if self.engine == "reference":
            return "reference"
        on_cpu = isinstance(pred, np.ndarray) or pred.device.type == "cpu"
        return "native" if (self._native and on_cpu) else "torch"

    # -- the reference, for samples it must judge ---------------------------------------------------
    def reference(self, pred, sample: dict, name: str):
        from dabench.eval.scoring import score_sample
        from dabench.metrics.depth import to_numpy

        status, m, info = score_sample(to_numpy(pred), sample, self.protocol, self.output_space, name=name)
        info.pop("aligned", None)
        return status, m, info

    def score(self, pred, depth, valid, valid_pixels: int, sample: dict, name: str):
        from dabench.metrics.depth import metrics_from_sums

        engine = self.engine_for(pred)
        if engine == "reference":
            return self.reference(pred, sample, name)
        info: dict[str, Any] = {"valid_pixels": int(valid_pixels), "scale": None, "shift": None,
                                "output_space": self.output_space}
        if not self._finite(pred):
            return self.reference(pred, sample, name)  # raises the reference's NaN/inf error
        if valid_pixels == 0 or valid_pixels < self.protocol.min_valid_pixels:
            return "skipped_no_valid", None, info
        run = self._native_sample if engine == "native" else self._torch_sample
        try:
            out = run(pred, depth, valid, name)
        except DegenerateAlignmentError as e:
            info["reason"] = str(e)
            return "skipped_degenerate", None, info
        if out is None:  # something the reference rejects: let it say what
            return self.reference(pred, sample, name)
        sums, s, t = out
        info.update(scale=s, shift=t, sums=sums)
        return "ok", metrics_from_sums(sums, self.metrics), info

    @staticmethod
    def _finite(pred) -> bool:
        if hasattr(pred, "detach"):
            import torch

            return bool(torch.isfinite(pred).all())
        return bool(np.isfinite(pred).all())

    # -- engines ----------------------------------------------------------------------------------------
    def _fit(self, sums_fn, median_fn, name: str) -> tuple[float, float] | None:
        plan = self.plan
        if plan.mode == "none":
            return 1.0, 0.0
        if plan.mode == "median":
            return median_fn()
        sums = sums_fn(plan.mode != "scale")
        if sums is None:
            return None
        return fit_from_sums(sums, plan.mode, name=name)

    def _native_sample(self, pred, depth, valid, name):
        from dabench.metrics.depth_native import align_sums_native, score_map_native

        plan = self.plan
        pred, depth, valid = np.asarray(pred), np.asarray(depth), np.asarray(valid)
        cols = subsample_columns(pred.shape, self.protocol.alignment_max_res)

        def sums(shift):
            out = align_sums_native(pred, depth, valid, recip_in=plan.recip_in, recip_gt=plan.fit_recip_gt,
                                    shift=shift, cols=cols)
            return None if out[7] or out[8] else out[:7]

        fit = self._fit(sums, lambda: self._median(pred, depth, valid, name), name)
        if fit is None:
            return None
        s, t = fit
        out, bad, bad_gt = score_map_native(pred, depth, valid, plan.cfg(s, t), self.terms)
        if bad or bad_gt:
            return None
        return out, s, t

    def _median(self, pred, depth, valid, name):
        from dabench.metrics.depth import to_numpy

        pred = to_numpy(pred)
        x = pred.astype(np.float64) if not self.plan.recip_in else 1.0 / np.maximum(pred.astype(np.float64), 1e-8)
        return fit_alignment(x, to_numpy(depth).astype(np.float64), to_numpy(valid), "median", name=name,
                             max_res=self.protocol.alignment_max_res)

    def _torch_sample(self, pred, depth, valid, name):
        import torch

        from dabench.metrics.registry import PixelErrors, term_function

        plan = self.plan
        with torch.no_grad():
            pred = torch.as_tensor(pred)
            dev = pred.device
            depth = torch.as_tensor(depth, device=dev)
            valid = torch.as_tensor(valid, device=dev).bool()
            x = pred.double()
            if plan.recip_in:
                x = 1.0 / torch.clamp_min(x, 1e-8)
            g = depth.double()

            def sums(shift):
                cols = subsample_columns(tuple(pred.shape), self.protocol.alignment_max_res)
                xs, gs, vs = (x, g, valid) if cols is None else \
                    (a.index_select(1, torch.as_tensor(cols, device=dev)) for a in (x, g, valid))
                xv, gv = xs[vs], gs[vs]
                if not bool(torch.isfinite(xv).all()) or not bool(((gv > 0) & torch.isfinite(gv)).all()):
                    return None
                y = 1.0 / gv if plan.fit_recip_gt else gv
                n = int(xv.numel())
                p0, g0 = (float(xv[0]), float(y[0])) if (shift and n) else (0.0, 0.0)
                dp, dg = xv - p0, y - g0
                return (n, float(dp.sum()), float(dg.sum()), float((dp * dp).sum()), float((dp * dg).sum()), p0, g0)

            fit = self._fit(sums, lambda: self._median(pred, depth, valid, name), name)
            if fit is None:
                return None
            s, t = fit
            a = x * s
            a = torch.clamp(a + t, min=plan.lo1, max=plan.hi1)
            p = 1.0 / a if plan.recip_out else a
            if plan.lo2 > -math.inf:
                p = torch.clamp_min(p, plan.lo2)
            gg = 1.0 / torch.where(valid, g, torch.ones_like(g)) if plan.recip_gt else g
            pv, gv = p[valid], gg[valid]
            ok = (pv > 0) & torch.isfinite(pv) & (gv > 0) & torch.isfinite(gv)
            if not bool(ok.all()):
                return None
            px = PixelErrors(pv, gv, torch)
            vals = [float(pv.numel())] + [float(torch.sum(term_function(tm)(px), dtype=torch.float64))
                                          for tm in self.terms[1:]]
        return np.asarray(vals, dtype=np.float64), s, t

    # -- --log-samples -----------------------------------------------------------------------------
    def aligned_map(self, pred, depth, valid, s: float | None, t: float | None) -> np.ndarray | None:
        """The score-space prediction ``score_sample`` stores as ``info["aligned"]`` (numpy float64)."""
        from dabench.metrics.depth import to_numpy

        if s is None:
            return None
        plan = self.plan
        x = to_numpy(pred).astype(np.float64)
        if plan.recip_in:
            x = 1.0 / np.maximum(x, 1e-8)
        a = np.minimum(np.maximum(x * s + t, plan.lo1), plan.hi1)
        p = 1.0 / a if plan.recip_out else a
        return np.maximum(p, plan.lo2)


__all__ = ["FastScorer", "ScorePlan", "score_plan", "ENGINES"]
