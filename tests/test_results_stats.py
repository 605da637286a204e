"""Bootstrap CIs and the paired test (dabench.results.stats) against hand-computed cases and scipy."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dabench.results.stats import bootstrap_ci, bootstrap_means, paired_difference, record_cis, wilcoxon_p


def test_bootstrap_hand_computed_two_values():
    """Resamples of [0, 1] (size 2) have mean 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: the 2.5 / 97.5
    percentiles are 0 and 1, and about half the resampled means are 0.5."""
    means = bootstrap_means([0.0, 1.0], resamples=4000, seed=1)
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    assert abs(np.mean(means == 0.5) - 0.5) < 0.03 and abs(np.mean(means == 0.0) - 0.25) < 0.03
    assert bootstrap_ci([0.0, 1.0], resamples=4000, seed=1) == (0.0, 1.0)
    assert bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))  # no spread, no interval


def test_bootstrap_is_seeded_and_chunking_does_not_change_it(monkeypatch):
    x = np.random.default_rng(0).normal(size=37)
    assert bootstrap_ci(x, 500, seed=3) == bootstrap_ci(x, 500, seed=3)
    assert bootstrap_ci(x, 500, seed=3) != bootstrap_ci(x, 500, seed=4)
    import dabench.results.stats as S

    ref = S.bootstrap_means(x, 300, seed=5)
    monkeypatch.setattr(S, "_CHUNK_ELEMENTS", 37 * 7)  # 7 resamples per chunk
    np.testing.assert_array_equal(S.bootstrap_means(x, 300, seed=5), ref)


def test_bootstrap_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(42).gamma(2.0, 0.05, size=60)  # skewed, like AbsRel over images
    ours = bootstrap_ci(x, resamples=20000, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(7)).confidence_interval
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert ours[0] == pytest.approx(ref.low, abs=0.05 * se) and ours[1] == pytest.approx(ref.high, abs=0.05 * se)
    assert ours[0] < x.mean() < ours[1]


def test_record_cis_only_for_per_image_metrics():
    rows = [{"status": "ok", "abs_rel": v, "miou": 1.0} for v in (0.1, 0.2, 0.3)] + \
           [{"status": "skipped_no_valid", "abs_rel": None}]
    ci = record_cis(rows, ["abs_rel", "miou"], {"abs_rel": "image", "miou": "pixel"}, resamples=200, seed=0)
    assert set(ci) == {"abs_rel"} and 0.1 <= ci["abs_rel"][0] < 0.2 < ci["abs_rel"][1] <= 0.3
    assert record_cis(rows, ["abs_rel"], {"abs_rel": "image"}, resamples=0, seed=0) == {}


def test_wilcoxon_hand_computed_and_scipy():
    # six differences all of one sign: exact two-sided p = 2 / 2^6
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 64)
    assert wilcoxon_p([0.0, 0.0]) == 1.0
    d = np.random.default_rng(3).normal(0.01, 0.05, size=40)
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)
    res = paired_difference(d + 1.0, np.ones_like(d), resamples=2000, seed=0)
    assert res.n == 40 and res.mean_diff == pytest.approx(d.mean())
    assert res.p_value == pytest.approx(stats.wilcoxon(d).pvalue)
    assert res.ci_low < res.mean_diff < res.ci_high
    with pytest.raises(ValueError, match="same samples"):
        paired_difference([1, 2], [1, 2, 3])
