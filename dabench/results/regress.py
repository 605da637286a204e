"""Regression reports: compare the metrics of two sets of result records (baseline vs current).

Per (suite, model, dataset, metric) the current value is compared with the baseline in the
metric's direction (the record's ``higher_is_better``, else the metric registry). A metric
**regresses** when it got worse by more than ``abs_tol + rel_tol * |baseline|`` (the numpy
``isclose`` rule); it **improved** when it got better by more than that; otherwise it is
**unchanged**. A value that turned NaN counts as a regression. A metric whose direction is
unknown counts as a regression when it changed beyond tolerance either way.

**Noise is not a regression.** When both records have per-sample values (the ``.samples.csv``
beside them) the change is also tested per sample: a metric regresses (or improves) only when it
moved beyond tolerance *and* the two-sided Wilcoxon signed-rank test on the paired per-sample
values says it is not noise (p < ``alpha``, default 0.05). Records without per-sample values
(segmentation, hand-made records) or whose per-sample values do not reproduce the record's number
are judged by the tolerance alone; the report says which rule applied.

**Same samples or no verdict.** Each side's latest record per (suite, model, dataset) is used
(complete preferred over partial). Records that scored different sample sets (``selection``:
limit, counts, sample-id hash) are not compared: the report lists them and the exit code is 2,
unless ``allow_different_samples`` (then the paired test uses the samples both scored).

Metrics, datasets or models present on one side only are listed explicitly and fail the check
unless ``allow_missing``. Only metric values are compared: dates, commits, versions and paths
differ between runs by design.

Defaults (``DEFAULT_ABS_TOL = 1e-4``, ``DEFAULT_REL_TOL = 1e-3``) absorb float noise between
machines (BLAS kernels, thread counts: ~1e-6 relative on the metrics of the tiny CI suite, plus
a single pixel crossing a δ threshold, 1/N of δ) while catching any change a reader would see
at the 3 decimals the tables print.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dabench.errors import DataError
from dabench.results.frame import arrow, metric_info
from dabench.results.record import Record, same_samples
from dabench.results.stats import DEFAULT_ALPHA, wilcoxon_p
from dabench.results.store import latest_records, load_records, load_samples, record_higher_is_better, record_key

DEFAULT_ABS_TOL = 1e-4
DEFAULT_REL_TOL = 1e-3
REPORT_SCHEMA = "dabench.regress/1"

REGRESSED, IMPROVED, UNCHANGED = "regressed", "improved", "unchanged"
MISSING_CURRENT, MISSING_BASELINE = "missing_in_current", "missing_in_baseline"
DIFFERENT_SAMPLES = "different_samples"


@dataclass
class Comparison:
    suite: str
    model: str
    dataset: str
    metric: str
    baseline: float | None
    current: float | None
    higher_is_better: bool | None
    status: str
    delta: float | None = None
    rel_delta: float | None = None
    tolerance: float | None = None
    reason: str = ""
    p_value: float | None = None  # paired Wilcoxon signed-rank test on the per-sample values
    n_paired: int | None = None


@dataclass
class RegressionReport:
    baseline: str
    current: str
    abs_tol: float
    rel_tol: float
    allow_missing: bool
    comparisons: list[Comparison] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    allow_different_samples: bool = False
    baseline_records: int = 0
    current_records: int = 0

    def by_status(self, *statuses: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.status in statuses]

    @property
    def regressions(self) -> list[Comparison]:
        return self.by_status(REGRESSED)

    @property
    def missing(self) -> list[Comparison]:
        return self.by_status(MISSING_CURRENT, MISSING_BASELINE)

    @property
    def different_samples(self) -> list[Comparison]:
        return self.by_status(DIFFERENT_SAMPLES)

    @property
    def passed(self) -> bool:
        return not self.regressions and (self.allow_missing or not self.missing) and not self.different_samples

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression (or missing), 2 refused: the sides scored different samples."""
        if self.different_samples:
            return 2
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        keys = (REGRESSED, IMPROVED, UNCHANGED, MISSING_CURRENT, MISSING_BASELINE, DIFFERENT_SAMPLES)
        return {k: len(self.by_status(k)) for k in keys}

    def verdict(self) -> str:
        c = self.counts()
        compared = c[REGRESSED] + c[IMPROVED] + c[UNCHANGED]
        miss = c[MISSING_CURRENT] + c[MISSING_BASELINE]
        parts = []
        if c[DIFFERENT_SAMPLES]:
            parts.append(f"{c[DIFFERENT_SAMPLES]} metric{'s' * (c[DIFFERENT_SAMPLES] != 1)} not compared "
                         "(different sample sets; --allow-different-samples to compare anyway)")
        if c[REGRESSED]:
            parts.append(f"{c[REGRESSED]} regression{'s' * (c[REGRESSED] != 1)}")
        if miss:
            parts.append(f"{miss} missing metric{'s' * (miss != 1)}" + (" (allowed)" if self.allow_missing else ""))
        if c[IMPROVED]:
            parts.append(f"{c[IMPROVED]} improved")
        parts.append(f"{c[UNCHANGED]} unchanged")
        head = "✅ PASS" if self.passed else ("⛔ REFUSED" if self.different_samples else "❌ FAIL")
        return (f"{head}: {', '.join(parts)} ({compared} metrics compared; "
                f"tolerance abs {self.abs_tol:g} + rel {self.rel_tol:g})")

    def to_dict(self) -> dict:
        return {"schema": REPORT_SCHEMA, "passed": self.passed, "verdict": self.verdict(),
                "baseline": self.baseline, "current": self.current, "abs_tol": self.abs_tol,
                "rel_tol": self.rel_tol, "allow_missing": self.allow_missing, "alpha": self.alpha,
                "allow_different_samples": self.allow_different_samples, "counts": self.counts(),
                "baseline_records": self.baseline_records, "current_records": self.current_records,
                "comparisons": [{k: _json_safe(v) for k, v in asdict(c).items()} for c in self.comparisons]}

    def to_markdown(self) -> str:
        return report_markdown(self)


def _json_safe(v):
    """NaN/inf are not JSON: report them as null (the Markdown report shows them as –)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _num(v) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _metric_table(records: list[Record]) -> dict[tuple[str, str, str, str], tuple[float | None, bool | None]]:
    out = {}
    for rec in records:
        if rec.get("status", "ok") != "ok":
            continue
        for m, v in (rec.get("metrics") or {}).items():
            if isinstance(v, dict):
                continue  # nested blocks (per-class) are not compared
            key = (str(rec.get("suite")), str(rec.get("model")), str(rec.get("dataset")), str(m))
            out[key] = (_num(v), record_higher_is_better(rec, m))
    return out


def _record_status(records: list[Record]) -> dict[tuple[str, str, str], str]:
    return {(str(r.get("suite")), str(r.get("model")), str(r.get("dataset"))):
            (r.get("status", "ok") if r.get("status", "ok") == "ok"
             else f"{r.get('status')}: {r.get('skip_reason') or 'no reason given'}") for r in records}


def _is_finite(v) -> bool:
    """A real, finite number (bools and strings from a hostile record are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_missing(v) -> bool:
    """None or NaN: no value (as opposed to ±inf or junk, which fail the gate)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt_nonfinite(v) -> str:
    from dabench.errors import excerpt

    return "NaN/None" if _is_missing(v) else (str(v) if isinstance(v, float) else f"not a number ({excerpt(v, 40)})")


def compare_one(base: float | None, cur: float | None, higher_is_better: bool | None, abs_tol: float,
                rel_tol: float) -> tuple[str, float | None, float | None, float | None, str]:
    """(status, delta, rel_delta, tolerance, reason) for one metric present on both sides."""
    b_nan, c_nan = not _is_finite(base), not _is_finite(cur)
    if b_nan and c_nan and _is_missing(cur):
        return UNCHANGED, None, None, None, "NaN on both sides"
    if c_nan:  # +inf is not "improved": any non-finite (or non-numeric) current value fails the gate
        return REGRESSED, None, None, None, f"current value is {_fmt_nonfinite(cur)}"
    if b_nan:
        return IMPROVED, None, None, None, f"baseline value was {_fmt_nonfinite(base)}"
    delta = cur - base
    rel = delta / abs(base) if base != 0 else (math.inf if delta else 0.0)
    tol = abs_tol + rel_tol * abs(base)
    if abs(delta) <= tol:
        return UNCHANGED, delta, rel, tol, ""
    if higher_is_better is None:
        return REGRESSED, delta, rel, tol, "direction unknown and changed beyond tolerance"
    worse = delta < 0 if higher_is_better else delta > 0
    return (REGRESSED if worse else IMPROVED), delta, rel, tol, ""


def _paired_values(base_rec: Record, cur_rec: Record):
    """Per-sample rows of both records joined on the sample name (both ``ok``), or None without them."""
    b, c = load_samples(base_rec), load_samples(cur_rec)
    if b is None or c is None:
        return None
    b, c = b[b["status"] == "ok"], c[c["status"] == "ok"]
    return b.merge(c, on="name", suffixes=("_b", "_c"))


def _csv_matches(rows, col: str, value: float | None) -> bool:
    """The per-sample values reproduce the record's (per-image mean) number."""
    import numpy as np

    if value is None or col not in rows.columns:
        return False
    vals = rows[col].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    return vals.size > 0 and math.isclose(float(vals.mean()), float(value), rel_tol=1e-6, abs_tol=1e-9)


def paired_check(base_rec: Record, cur_rec: Record, metric: str, base: float | None, cur: float | None,
                 paired=None) -> tuple[float | None, int | None, str]:
    """``(p_value, n, note)`` of the paired Wilcoxon test of ``metric`` between two records; p is None
    (with the reason in ``note``) when it cannot be run: no per-sample values, a metric that is not a
    per-image mean, or per-sample values that do not reproduce the record's numbers."""
    import numpy as np

    if (base_rec.get("averaging") or {}).get(metric, "image") != "image":
        return None, None, "not a per-image metric: tolerance only"
    if paired is None:
        return None, None, "no per-sample values: tolerance only"
    b_all, c_all = load_samples(base_rec), load_samples(cur_rec)
    if not (_csv_matches(b_all[b_all["status"] == "ok"], metric, base)
            and _csv_matches(c_all[c_all["status"] == "ok"], metric, cur)):
        return None, None, "per-sample values do not reproduce the record: tolerance only"
    d = paired[f"{metric}_c"].to_numpy(dtype=float) - paired[f"{metric}_b"].to_numpy(dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None, 0, "no sample scored on both sides: tolerance only"
    return wilcoxon_p(d), int(d.size), ""


def compare_records(baseline: list[Record], current: list[Record], *, abs_tol: float = DEFAULT_ABS_TOL,
                    rel_tol: float = DEFAULT_REL_TOL, allow_missing: bool = False,
                    baseline_name: str = "baseline", current_name: str = "current",
                    allow_different_samples: bool = False, alpha: float = DEFAULT_ALPHA) -> RegressionReport:
    """Compare two lists of records; see the module docstring for the rules."""
    if abs_tol < 0 or rel_tol < 0:
        raise DataError(f"tolerances must be >= 0 (got abs_tol={abs_tol}, rel_tol={rel_tol})")
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1), got {alpha}")
    baseline = latest_records(baseline, include_partial=True)
    current = latest_records(current, include_partial=True)
    b_recs = {record_key(r): r for r in baseline}
    c_recs = {record_key(r): r for r in current}
    b, c = _metric_table(baseline), _metric_table(current)
    b_status, c_status = _record_status(baseline), _record_status(current)
    report = RegressionReport(baseline_name, current_name, abs_tol, rel_tol, allow_missing,
                              baseline_records=len(baseline), current_records=len(current), alpha=alpha,
                              allow_different_samples=allow_different_samples)
    paired_cache: dict = {}
    for key in sorted(set(b) | set(c)):
        suite, model, dataset, metric = key
        if key not in c:
            base, hib = b[key]
            st = c_status.get(key[:3])
            reason = "no current record for this model/dataset" if st is None else (
                "metric absent from the current record" if st == "ok" else f"current record {st}")
            report.comparisons.append(Comparison(suite, model, dataset, metric, base, None, hib, MISSING_CURRENT,
                                                 reason=reason))
            continue
        if key not in b:
            cur, hib = c[key]
            st = b_status.get(key[:3])
            reason = "no baseline record for this model/dataset" if st is None else (
                "metric absent from the baseline record" if st == "ok" else f"baseline record {st}")
            report.comparisons.append(Comparison(suite, model, dataset, metric, None, cur, hib, MISSING_BASELINE,
                                                 reason=reason))
            continue
        (base, hib_b), (cur, hib_c) = b[key], c[key]
        hib = hib_c if hib_c is not None else hib_b
        b_rec, c_rec = b_recs[key[:3]], c_recs[key[:3]]
        same, why = same_samples(b_rec, c_rec)
        if not same and not allow_different_samples:
            report.comparisons.append(Comparison(suite, model, dataset, metric, base, cur, hib, DIFFERENT_SAMPLES,
                                                 reason=why))
            continue
        status, delta, rel, tol, reason = compare_one(base, cur, hib, abs_tol, rel_tol)
        if key[:3] not in paired_cache:
            paired_cache[key[:3]] = _paired_values(b_rec, c_rec)
        p, n, note = paired_check(b_rec, c_rec, metric, base, cur, paired_cache[key[:3]])
        if status in (REGRESSED, IMPROVED) and delta is not None:
            if p is not None and p >= alpha:
                reason = (f"beyond tolerance but within noise: paired Wilcoxon p={p:.3g} >= {alpha:g} "
                          f"over {n} samples")
                status = UNCHANGED
            elif p is not None:
                reason = f"paired Wilcoxon p={p:.3g} < {alpha:g} over {n} samples"
            else:
                reason = note
        if not same:
            reason = (reason + "; " if reason else "") + why + " (compared: --allow-different-samples)"
        report.comparisons.append(Comparison(suite, model, dataset, metric, base, cur, hib, status, delta, rel,
                                             tol, reason, p, n))
    return report


def load_side(path: str | os.PathLike, what: str) -> list[Record]:
    """Records of one side (a results directory or a single record file); an empty side is an error,
    because a gate comparing nothing would pass silently."""
    records = load_records(path)
    if not records:
        raise DataError(f"{what} {path}: no dabench result records found (expected *.json written by dabench run)")
    return records


def regress(baseline: str | os.PathLike, current: str | os.PathLike, **kw) -> RegressionReport:
    """Load both sides and compare them (``kw``: abs_tol, rel_tol, allow_missing, allow_different_samples,
    alpha)."""
    return compare_records(load_side(baseline, "baseline"), load_side(current, "current"),
                           baseline_name=str(baseline), current_name=str(current), **kw)


def _fmt(v: float | None, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.6g}"


def _rows_md(rows: list[Comparison], with_delta: bool = True) -> list[str]:
    if with_delta:
        out = ["| Suite | Model | Dataset | Metric | Baseline | Current | Δ | Δ % | Tolerance | p (paired) | Note |",
               "|:---|:---|:---|:---|---:|---:|---:|---:|---:|---:|:---|"]
    else:
        out = ["| Suite | Model | Dataset | Metric | Baseline | Current | Note |",
               "|:---|:---|:---|:---|---:|---:|:---|"]
    for c in rows:
        name = metric_info(c.metric)["display"] + arrow(c.higher_is_better)
        cells = [c.suite, c.model, c.dataset, name, _fmt(c.baseline, c.metric), _fmt(c.current, c.metric)]
        if with_delta:
            cells += ["–" if c.delta is None else f"{c.delta:+.4g}",
                      "–" if c.rel_delta is None or math.isinf(c.rel_delta) else f"{100 * c.rel_delta:+.2f}%",
                      "–" if c.tolerance is None else f"{c.tolerance:.3g}",
                      "–" if c.p_value is None else f"{c.p_value:.3g}"]
        cells.append(c.reason.replace("|", "\\|"))
        out.append("| " + " | ".join(str(x).replace("|", "\\|") if i < len(cells) - 1 else x
                                     for i, x in enumerate(cells)) + " |")
    return out


def report_markdown(report: RegressionReport) -> str:
    """The Markdown report: a one-line verdict first (fit for a CI job summary or a PR comment)."""
    lines = [f"**{report.verdict()}**", "",
             f"Baseline: `{report.baseline}` ({report.baseline_records} records) · "
             f"Current: `{report.current}` ({report.current_records} records)", "",
             "A metric regresses when it is worse than the baseline (in its ↑/↓ direction) by more than "
             f"`abs_tol + rel_tol × |baseline|` = `{report.abs_tol:g} + {report.rel_tol:g} × |baseline|` "
             f"and, where both records have per-sample values, the paired Wilcoxon signed-rank test gives "
             f"p < {report.alpha:g} (not noise)."]
    diff = report.different_samples
    if diff:
        rows = ["| Suite | Model | Dataset | Metric | Why |", "|:---|:---|:---|:---|:---|"]
        rows += [f"| {c.suite} | {c.model} | {c.dataset} | {c.metric} | {c.reason} |" for c in diff]
        lines += ["", f"### Not compared: different sample sets ({len(diff)})", "",
                  "Records over different samples cannot be compared (exit 2); rerun both on the same selection, "
                  "or pass --allow-different-samples.", ""] + rows
    regs = report.regressions
    if regs:
        lines += ["", f"### Regressions ({len(regs)})", ""] + _rows_md(regs)
    miss = report.missing
    if miss:
        title = "Missing on one side" + (" (allowed by --allow-missing)" if report.allow_missing else
                                         " (fails the check; pass --allow-missing to accept)")
        rows = ["| Suite | Model | Dataset | Metric | Present in | Note |", "|:---|:---|:---|:---|:---|:---|"]
        for c in miss:
            side = "baseline only" if c.status == MISSING_CURRENT else "current only"
            rows.append(f"| {c.suite} | {c.model} | {c.dataset} | {c.metric} | {side} | {c.reason} |")
        lines += ["", f"### {title} ({len(miss)})", ""] + rows
    imp = report.by_status(IMPROVED)
    if imp:
        lines += ["", f"### Improvements ({len(imp)})", ""] + _rows_md(imp)
    same = report.by_status(UNCHANGED)
    if same:
        lines += ["", f"<details><summary>Unchanged within tolerance ({len(same)})</summary>", ""]
        lines += _rows_md(same) + ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_reports(report: RegressionReport, md_path: str | os.PathLike | None,
                  json_path: str | os.PathLike | None) -> list[Path]:
    from dabench.provenance import atomic_write_json, atomic_write_text

    written = []
    if md_path:
        atomic_write_text(md_path, report.to_markdown())
        written.append(Path(md_path))
    if json_path:
        atomic_write_json(json_path, report.to_dict())
        written.append(Path(json_path))
    return written


def update_baseline(current: str | os.PathLike, baseline_dir: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Make ``baseline_dir`` hold exactly the records of ``current`` (latest view, with their per-sample
    CSVs, written atomically; stale record files in ``baseline_dir`` are removed). Returns
    (written, removed)."""
    from dabench.provenance import atomic_write_bytes
    from dabench.results.store import iter_record_files, samples_csv_path, write_record

    records = load_side(current, "current")
    baseline_dir = Path(baseline_dir)
    if baseline_dir.exists() and not baseline_dir.is_dir():
        raise DataError(f"--baseline {baseline_dir} must be a directory to be updated")
    old = set()
    if baseline_dir.is_dir():
        old = {p.resolve() for p in iter_record_files(baseline_dir)
               if p.name.endswith(".json") and _is_record_file(p)}
        old |= {samples_csv_path(p) for p in old if samples_csv_path(p).is_file()}
    written, kept = [], set()
    for rec in records:
        clean = {k: v for k, v in rec.items() if not k.startswith("_")}
        path = write_record(clean, baseline_dir, history=False).resolve()
        written.append(path)
        src = samples_csv_path(rec.path) if rec.path else None
        if src is not None and src.is_file():
            atomic_write_bytes(samples_csv_path(path), src.read_bytes())
            kept.add(samples_csv_path(path))
    removed = []
    for p in sorted(old - set(written) - kept):
        p.unlink()
        removed.append(p)
    return written, removed


def _is_record_file(p: Path) -> bool:
    import json

    try:
        from dabench.results.store import MAX_RECORD_BYTES
        from dabench.safety import read_bounded

        return str(json.loads(read_bounded(p, "result record", MAX_RECORD_BYTES)).get("schema", "")).startswith(
            "dabench.result")
    except (ValueError, OSError, AttributeError, RecursionError):
        return False
