"""The evaluation loop's scorer (sums-based alignment, one fused pass) against the numpy reference
``score_sample``, for every alignment mode, both score spaces, clamps, the Marigold subsample and
the degenerate / error policy."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dabench.errors import DataError
from dabench.eval.align import fit_alignment, fit_from_sums, subsample_columns, subsample_for_fit
from dabench.eval.fastscore import FastScorer, score_plan
from dabench.eval.scoring import eval_valid_mask, score_sample
from dabench.eval.suites import Protocol
from dabench.metrics.depth_native import available

ENGINES = ["torch"] + (["native"] if available()[0] else [])


def _case(seed: int, shape=(37, 53), space="disparity"):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 12.0, shape).astype(np.float32)
    gt[rng.random(shape) < 0.1] = 0.0
    disp = 1.0 / np.maximum(gt, 0.5)
    pred = (0.7 * disp + 0.05 + rng.normal(0, 0.02, shape)).astype(np.float32)
    if space == "depth":
        pred = (1.3 * gt + 0.4 + rng.normal(0, 0.3, shape)).astype(np.float32)
    pred = np.abs(pred) + np.float32(1e-3)
    valid = rng.random(shape) > 0.05
    return pred, {"image": None, "depth": gt, "valid": valid, "name": f"s{seed}"}


PROTOCOLS = [
    dict(alignment="scale_shift_disparity", score_space="disparity", min_depth=1e-3, max_depth=10.0),
    dict(alignment="scale_shift_disparity", score_space="depth", min_depth=1e-3, max_depth=10.0, depth_cap=8.0),
    dict(alignment="scale_shift_depth", score_space="depth", min_depth=0.5, max_depth=10.0),
    dict(alignment="scale", score_space="depth", min_depth=0.5, max_depth=10.0),
    dict(alignment="median", score_space="depth", min_depth=0.5, max_depth=10.0),
    dict(alignment="none", score_space="depth", min_depth=0.5, max_depth=10.0),
    dict(alignment="none", score_space="disparity", min_depth=0.5, max_depth=10.0, clamp_pred=False),
    dict(alignment="scale_shift_depth", score_space="disparity", min_depth=0.5, max_depth=10.0, pred_floor=0.6),
    dict(alignment="scale_shift_disparity", score_space="disparity", min_depth=0.5, max_depth=10.0,
         alignment_max_res=20, crop="none"),
]


def _same(fast, ref, rel=1e-12):
    assert fast[0] == ref[0]
    if ref[0] != "ok":
        return
    for k, v in ref[1].items():
        assert fast[1][k] == pytest.approx(v, rel=rel, abs=1e-15), k
    for k in ("scale", "shift"):
        assert fast[2][k] == pytest.approx(ref[2][k], rel=1e-12, abs=1e-15)
    assert fast[2]["valid_pixels"] == ref[2]["valid_pixels"]
    np.testing.assert_allclose(fast[2]["sums"], ref[2]["sums"], rtol=1e-12, atol=1e-12)
    assert fast[2]["sums"][0] == ref[2]["sums"][0]  # n


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("i,space", list(itertools.product(range(len(PROTOCOLS)), ["disparity", "depth"])))
def test_fast_scorer_equals_the_reference(engine, i, space):
    proto = Protocol(**PROTOCOLS[i])
    scorer = FastScorer(proto, space, engine=engine)
    for seed in range(3):
        pred, sample = _case(seed + 10 * i, space=space)
        valid = eval_valid_mask(sample, proto)
        ref = score_sample(pred, sample, proto, space)
        fast = scorer.score(pred if engine == "native" else torch.from_numpy(pred), sample["depth"], valid,
                            int(valid.sum()), sample, sample["name"])
        _same(fast, ref)
        if ref[0] == "ok":  # the map --log-samples keeps
            np.testing.assert_allclose(scorer.aligned_map(pred, sample["depth"], valid, fast[2]["scale"],
                                                          fast[2]["shift"]), ref[2]["aligned"], rtol=1e-13)
            # given the reference's own (scale, shift) the map is the reference's bit for bit
            np.testing.assert_array_equal(scorer.aligned_map(pred, sample["depth"], valid, ref[2]["scale"],
                                                             ref[2]["shift"]), ref[2]["aligned"])


@pytest.mark.parametrize("engine", ENGINES)
def test_delta_counts_are_exact_at_ratio_ties(engine):
    """gt quantised to millimetres and predictions clamped at max_depth: ratios hit 1.25 exactly."""
    proto = Protocol(alignment="none", score_space="depth", min_depth=1e-3, max_depth=10.0)
    gt = np.full((8, 16), 8.0, np.float32)
    pred = np.full((8, 16), 12.0, np.float32)  # clamped to 10 m: 10 / 8 = 1.25, not < 1.25
    pred[:, ::2] = 9.9999
    sample = {"depth": gt, "valid": np.ones_like(gt, bool), "name": "tie"}
    valid = eval_valid_mask(sample, proto)
    ref = score_sample(pred, sample, proto, "depth")
    fast = FastScorer(proto, "depth", engine=engine).score(pred, gt, valid, int(valid.sum()), sample, "tie")
    # SILog of near-equal log errors is a difference of nearly equal means: summation order shows at 1e-6
    _same(fast, ref, rel=2e-6)
    assert ref[1]["delta1"] == fast[1]["delta1"] == 0.5


@pytest.mark.parametrize("engine", ENGINES)
def test_degenerate_and_error_policy_is_the_reference(engine):
    proto = Protocol(min_depth=0.5, max_depth=10.0)
    scorer = FastScorer(proto, "disparity", engine=engine)
    pred, sample = _case(1)
    valid = eval_valid_mask(sample, proto)
    # a constant prediction: s = 0, t = mean(target), scored honestly
    const = np.full_like(pred, 0.3)
    _same(scorer.score(const, sample["depth"], valid, int(valid.sum()), sample, "c"),
          score_sample(const, sample, proto, "disparity"))
    assert scorer.score(const, sample["depth"], valid, int(valid.sum()), sample, "c")[2]["scale"] == 0.0
    # one valid pixel: degenerate; none: no valid pixels
    one = np.zeros_like(valid)
    one[3, 4] = valid[3, 4] = True
    one &= valid
    s1 = dict(sample, valid=one)
    assert scorer.score(pred, sample["depth"], eval_valid_mask(s1, proto), 1, s1, "o")[0] == "skipped_degenerate"
    s0 = dict(sample, valid=np.zeros_like(valid))
    assert scorer.score(pred, sample["depth"], np.zeros_like(valid), 0, s0, "z")[0] == "skipped_no_valid"
    # NaN anywhere: the reference's error, naming the sample
    bad = pred.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="s1: the model predicted 1 NaN/inf"):
        scorer.score(bad, sample["depth"], valid, int(valid.sum()), sample, "s1")
    # a negative depth after a metric model's unclamped output: the reference's "<= 0" error
    p2 = Protocol(alignment="none", score_space="depth", min_depth=0.5, max_depth=10.0, clamp_pred=False)
    neg = np.where(valid, -1.0, 1.0).astype(np.float32)
    with pytest.raises(DataError, match="values <= 0 on valid pixels"):
        FastScorer(p2, "depth", engine=engine).score(neg, sample["depth"], eval_valid_mask(sample, p2),
                                                     int(valid.sum()), sample, "n")


def test_fit_from_sums_matches_fit_alignment_and_subsample_columns_match_marigold():
    rng = np.random.default_rng(3)
    p, g = rng.uniform(0.1, 2, 500), rng.uniform(1, 9, 500)
    v = np.ones(500, bool)
    for mode in ("scale", "scale_shift_depth", "scale_shift_disparity"):
        y = 1 / g if mode == "scale_shift_disparity" else g
        p0, g0 = (0.0, 0.0) if mode == "scale" else (p[0], y[0])
        dp, dg = p - p0, y - g0
        sums = (500, dp.sum(), dg.sum(), dp @ dp, dp @ dg, p0, g0)
        assert fit_from_sums(sums, mode) == pytest.approx(fit_alignment(p, g, v, mode), rel=1e-12, abs=1e-14)
    # a very large mean with a small spread: shifted sums do not cancel
    big = 1e6 + rng.normal(0, 1e-2, 500)
    dp = big - big[0]
    y = 2.0 * big + 3.0
    dg = y - y[0]
    s, t = fit_from_sums((500, dp.sum(), dg.sum(), dp @ dp, dp @ dg, big[0], y[0]), "scale_shift_depth")
    assert s == pytest.approx(2.0, rel=1e-9)
    # Marigold: the same columns as subsampling the map itself
    m = np.arange(30 * 100, dtype=np.float64).reshape(30, 100)
    cols = subsample_columns(m.shape, 40)
    sub, _, _ = subsample_for_fit(m, m, np.ones_like(m, bool), 40)
    np.testing.assert_array_equal(m[:, cols], sub)
    assert subsample_columns(m.shape, None) is None and subsample_columns(m.shape, 500) is None


def test_plan_reads_the_protocol():
    plan = score_plan(Protocol(min_depth=1e-3, max_depth=10.0), "disparity")
    assert (plan.recip_in, plan.recip_gt, plan.lo1, plan.hi1) == (False, True, 0.1, 1000.0)
    plan = score_plan(Protocol(alignment="scale_shift_depth", score_space="depth", min_depth=0.5, max_depth=10.0),
                      "disparity")
    assert plan.recip_in and not plan.recip_gt and (plan.lo1, plan.hi1) == (0.5, 10.0)
