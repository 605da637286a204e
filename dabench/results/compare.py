"""``dabench compare A B --suite S``: is model A better than model B on the same samples, or is the
difference noise?

Per dataset both sides scored, and per metric (default: the suite's primary metrics): the mean of
each side over the samples both scored, the paired difference ``A - B`` with its percentile-bootstrap
95 % CI over images, and the two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``). The
better side (in the metric's ↑/↓ direction) is bold only where the difference is significant
(p < alpha). Each side is a model name looked up in the results store or a results folder / record
file holding one model of the suite. Sides that scored different samples are refused (exit 2) unless
``allow_different_samples`` (then only the samples both scored are paired).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dabench.errors import ConfigError, DataError
from dabench.results.frame import arrow, metric_info
from dabench.results.record import same_samples
from dabench.results.stats import DEFAULT_ALPHA, DEFAULT_RESAMPLES, PairedResult, paired_difference
from dabench.results.store import latest_records, load_records, load_samples


@dataclass
class CompareRow:
    dataset: str
    metric: str
    higher_is_better: bool | None
    result: PairedResult | None
    note: str = ""

    def winner(self, alpha: float) -> str | None:
        """"A", "B" or None (no significant difference, or no direction)."""
        r = self.result
        if r is None or self.higher_is_better is None or not r.significant(alpha) or r.mean_diff == 0:
            return None
        a_better = (r.mean_diff > 0) == bool(self.higher_is_better)
        return "A" if a_better else "B"


@dataclass
class Comparison:
    suite: str
    a: str
    b: str
    alpha: float
    resamples: int
    rows: list[CompareRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": "dabench.compare/1", "suite": self.suite, "a": self.a, "b": self.b, "alpha": self.alpha,
                "bootstrap_resamples": self.resamples, "notes": self.notes,
                "rows": [{"dataset": r.dataset, "metric": r.metric, "higher_is_better": r.higher_is_better,
                          "winner": {"A": self.a, "B": self.b}.get(r.winner(self.alpha) or ""),
                          **(r.result.as_dict() if r.result else {}), "note": r.note} for r in self.rows]}

    def to_markdown(self) -> str:
        head = (f"**{self.a}** (A) vs **{self.b}** (B) on suite `{self.suite}`: paired over the same images; "
                f"Δ = A − B with its 95 % bootstrap CI ({self.resamples} resamples), Wilcoxon signed-rank p; "
                f"bold = better and significant (p < {self.alpha:g}).")
        lines = [head, "", "| Dataset | Metric | n | A | B | Δ (A−B) | 95 % CI | p |",
                 "|:---|:---|---:|---:|---:|---:|:---|---:|"]
        for r in self.rows:
            info = metric_info(r.metric)
            name = info["display"] + arrow(r.higher_is_better)
            if r.result is None:
                lines.append(f"| {r.dataset} | {name} | – | – | – | – | – | – |")
                continue
            x, fmt = r.result, _fmt(info["fmt"])
            a, b = format(x.mean_a, fmt), format(x.mean_b, fmt)
            w = r.winner(self.alpha)
            if w == "A":
                a = f"**{a}**"
            elif w == "B":
                b = f"**{b}**"
            ci = "–" if math.isnan(x.ci_low) else f"[{x.ci_low:+.4g}, {x.ci_high:+.4g}]"
            lines.append(f"| {r.dataset} | {name} | {x.n} | {a} | {b} | {x.mean_diff:+.4g} | {ci} | {x.p_value:.3g} |")
        notes = self.notes + [f"{r.dataset}/{r.metric}: {r.note}" for r in self.rows if r.note]
        if notes:
            lines += [""] + [n + "  " for n in notes[:-1]] + [notes[-1]]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        import pandas as pd

        return pd.DataFrame(self.to_dict()["rows"]).to_csv(index=False)


def _fmt(fmt: str) -> str:
    """Percent formats (``.1%``) are for tables of fractions; here plain decimals read better."""
    return ".4f" if fmt.endswith("%") else fmt


def _side(spec: str, suite: str, results: str | os.PathLike | None) -> tuple[str, dict[str, dict]]:
    """(label, {dataset: record}) of one side: a results folder / record file, else a model name."""
    from dabench.provenance import default_results_dir

    path = Path(spec)
    if path.exists():
        recs = [r for r in load_records(path) if r.get("suite") == suite]
        models = sorted({str(r.get("model")) for r in recs})
        if not recs:
            raise DataError(f"{spec}: no result records of suite {suite!r}")
        if len(models) > 1:
            raise ConfigError(f"{spec} holds several models of suite {suite!r} ({', '.join(models)}); "
                              "name one model per side, or point at a folder holding one")
        label = models[0] if models[0] != spec else spec
    else:
        store = Path(results) if results is not None else default_results_dir()
        if not store.exists():
            raise DataError(f"{spec!r} is neither a results folder nor a model in {store} (which does not exist)")
        all_recs = [r for r in load_records(store) if r.get("suite") == suite]
        recs = [r for r in all_recs if r.get("model") == spec]
        if not recs:
            known = sorted({str(r.get("model")) for r in all_recs})
            raise ConfigError(f"no records of model {spec!r} for suite {suite!r} in {store}; models there: "
                              + (", ".join(known) or "none") + " (or pass a results folder)")
        label = spec
    ok = [r for r in latest_records(recs, include_partial=True) if r.get("status", "ok") == "ok"]
    return label, {str(r.get("dataset")): r for r in ok}


def compare(a: str, b: str, *, suite: str, results=None, metrics: list[str] | None = None,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0, alpha: float = DEFAULT_ALPHA,
            allow_different_samples: bool = False) -> Comparison:
    """Compare sides ``a`` and ``b`` (see the module docstring)."""
    if resamples < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {resamples}")
    la, ra = _side(a, suite, results)
    lb, rb = _side(b, suite, results)
    if la == lb:
        la, lb = f"{la} (A)", f"{lb} (B)"
    out = Comparison(suite, la, lb, alpha, resamples)
    common = [d for d in ra if d in rb]
    if not common:
        raise DataError(f"{a} and {b} share no scored dataset of suite {suite!r} "
                        f"({', '.join(ra) or 'none'} vs {', '.join(rb) or 'none'})")
    refused = []
    for ds in common:
        rec_a, rec_b = ra[ds], rb[ds]
        same, why = same_samples(rec_a, rec_b)
        if not same and not allow_different_samples:
            refused.append(f"{ds}: {why}")
            continue
        names = metrics or list(rec_a.get("primary_metrics") or []) or list(rec_a.get("metrics") or {})
        sa, sb = load_samples(rec_a), load_samples(rec_b)
        for m in names:
            hib = (rec_a.get("higher_is_better") or {}).get(m, metric_info(m)["higher_is_better"])
            if sa is None or sb is None or m not in sa.columns or m not in sb.columns:
                out.rows.append(CompareRow(ds, m, hib, None, "no per-sample values to pair"))
                continue
            ja, jb = sa[sa["status"] == "ok"], sb[sb["status"] == "ok"]
            joined = ja[["name", m]].merge(jb[["name", m]], on="name", suffixes=("_a", "_b"))
            va, vb = joined[f"{m}_a"].to_numpy(float), joined[f"{m}_b"].to_numpy(float)
            keep = np.isfinite(va) & np.isfinite(vb)
            if not keep.any():
                out.rows.append(CompareRow(ds, m, hib, None, "no sample scored on both sides"))
                continue
            res = paired_difference(va[keep], vb[keep], resamples=resamples, seed=seed)
            note = "" if same else f"different sample sets, {res.n} shared samples paired"
            out.rows.append(CompareRow(ds, m, hib, res, note))
    if refused:
        raise DataError("cannot compare over different sample sets (" + "; ".join(refused)
                        + "); rerun both on the same selection or pass --allow-different-samples")
    return out


def render(comparison: Comparison, fmt: str) -> str:
    if fmt == "md":
        return comparison.to_markdown()
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2) + "\n"
    if fmt == "csv":
        return comparison.to_csv()
    raise ConfigError(f"unknown --format {fmt!r}; choose md, csv or json")
