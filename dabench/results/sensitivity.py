"""How much the protocol moves the numbers: one run's logged predictions scored under several protocols
(``dabench sensitivity --run RUN --suites a,b`` or ``--all-presets``).

Every protocol scores the same predictions (``dabench.eval.rescore``, nothing is run again), so any
difference between two columns is the protocol's alone. Written to ``--out`` (default
``<results>/sensitivity/<run id>/``):

- ``sensitivity.json`` (schema ``dabench.sensitivity/1``): ``values[protocol][model][dataset][metric]``
  (every metric of each record), the ``primary_metrics`` of each protocol, the ``ranking_metric`` (the
  protocol's first primary metric), ``ranks[protocol][dataset or "overall"][model]`` and
  ``rank_agreement[a][b] = {"per_dataset": {dataset: τ}, "overall": τ}``;
- ``sensitivity.md``: per dataset a table, rows = models, columns = protocol × primary metric, and the
  rank agreement;
- ``sensitivity.png`` / ``.pdf``: each model's rank under each protocol, one panel per dataset and one
  overall; crossing lines are ranking flips.

Ranks: per dataset, models ordered by the protocol's ranking metric in its direction (1 = best, ties
share their mean rank); overall, by the mean of a model's per-dataset ranks over the datasets the
protocol scored. τ is Kendall's τ-b (ties counted as in ``scipy.stats.kendalltau``) between two
protocols' ranks of the models both scored; null when fewer than two models or when one ranking is
all ties.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from dabench.errors import ConfigError

SCHEMA = "dabench.sensitivity/1"
OVERALL = "overall"


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b of two equally long sequences: Σ sign(xᵢ−xⱼ)·sign(yᵢ−yⱼ) over pairs i < j, divided
    by √(pairs untied in x · pairs untied in y); NaN when either has no untied pair."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau: {len(x)} values against {len(y)}")
    x, y = [float(v) for v in x], [float(v) for v in y]
    s = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            a = (x[i] > x[j]) - (x[i] < x[j])
            b = (y[i] > y[j]) - (y[i] < y[j])
            s += a * b
            tx += a != 0
            ty += b != 0
    return s / math.sqrt(tx * ty) if tx and ty else float("nan")


def rank_models(values: dict[str, float | None], higher_is_better: bool) -> dict[str, float]:
    """1 = best; tied values share their mean rank; models without a value are left out."""
    present = {m: v for m, v in values.items() if v is not None and math.isfinite(v)}
    ordered = sorted(present, key=lambda m: -present[m] if higher_is_better else present[m])
    ranks: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and present[ordered[j + 1]] == present[ordered[i]]:
            j += 1
        for m in ordered[i:j + 1]:
            ranks[m] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _tau(a: dict[str, float], b: dict[str, float]) -> float | None:
    common = [m for m in a if m in b]
    if len(common) < 2:
        return None
    t = kendall_tau([a[m] for m in common], [b[m] for m in common])
    return None if math.isnan(t) else t


@dataclass
class Sensitivity:
    """The values of one run's predictions under each protocol, their ranks and rank agreement."""

    run_id: str
    protocols: list[str]
    models: list[str]
    datasets: list[str]
    values: dict[str, dict[str, dict[str, dict[str, float | None]]]]
    primary_metrics: dict[str, list[str]]
    ranking_metric: dict[str, str]
    higher_is_better: dict[str, bool]
    ranks: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    rank_agreement: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "run_id": self.run_id, "protocols": self.protocols, "models": self.models,
                "datasets": self.datasets, "primary_metrics": self.primary_metrics,
                "ranking_metric": self.ranking_metric, "higher_is_better": self.higher_is_better,
                "values": self.values, "ranks": self.ranks, "rank_agreement": self.rank_agreement,
                "notes": self.notes}


def build_sensitivity(run_id: str, scored: dict[str, tuple[Any, list[dict]]],
                      notes: list[str] | None = None) -> Sensitivity:
    """``scored``: protocol name → (its ``Suite``, its records of the run's predictions)."""
    from dabench.eval.records import clean_value

    protocols = list(scored)
    models: list[str] = []
    datasets: list[str] = []
    values: dict = {}
    hib: dict[str, bool] = {}
    for p, (suite, records) in scored.items():
        values[p] = {}
        for r in records:
            if r.get("status") != "ok":
                continue
            model, ds = str(r["model"]), str(r["dataset"])
            models += [model] if model not in models else []
            datasets += [ds] if ds not in datasets else []
            values[p].setdefault(model, {})[ds] = {k: clean_value(v) for k, v in (r.get("metrics") or {}).items()}
            hib.update({k: bool(v) for k, v in (r.get("higher_is_better") or {}).items()})
    primary = {p: list(suite.primary_metrics) for p, (suite, _) in scored.items()}
    ranking = {p: primary[p][0] for p in protocols}
    out = Sensitivity(run_id, protocols, models, datasets, values, primary, ranking, hib, notes=list(notes or []))
    for p in protocols:
        metric = ranking[p]
        per_ds = {ds: rank_models({m: (values[p].get(m, {}).get(ds) or {}).get(metric) for m in models},
                                  hib.get(metric, False)) for ds in datasets}
        scored_ds = [ds for ds in datasets if per_ds[ds]]
        full = [m for m in models if all(m in per_ds[ds] for ds in scored_ds)]
        mean_rank = {m: sum(per_ds[ds][m] for ds in scored_ds) / len(scored_ds) for m in full} if scored_ds else {}
        out.ranks[p] = {**per_ds, OVERALL: rank_models(mean_rank, higher_is_better=False)}
    for a in protocols:
        out.rank_agreement[a] = {}
        for b in protocols:
            out.rank_agreement[a][b] = {
                "per_dataset": {ds: _tau(out.ranks[a][ds], out.ranks[b][ds]) for ds in datasets},
                OVERALL: _tau(out.ranks[a][OVERALL], out.ranks[b][OVERALL])}
    return out


# ---------------------------------------------------------------------------------------------
# running it
# ---------------------------------------------------------------------------------------------

def preset_suites() -> list[Path]:
    """The shipped suite files (``dabench/configs/suites``): the built-in presets."""
    from dabench import configs

    return sorted(configs.shipped_dir("suites").glob("*.yaml"))


def run_sensitivity(run, suites: Sequence[str] | None = None, *, all_presets: bool = False, results_dir=None,
                    data_root=None, input_size=None, flip_tta=None, precision=None,
                    allow_inference_mismatch: bool = False, console=None, show_progress: bool = True) -> Sensitivity:
    """Score run ``run``'s logged predictions under each of ``suites`` (names or YAML paths), or under
    every built-in preset that scores one of its datasets (``all_presets``: presets of another task, or
    whose inference protocol differs from the run's, are left out with a note unless
    ``allow_inference_mismatch``). Nothing is written; see :func:`write_sensitivity`."""
    from rich.console import Console

    from dabench.errors import DabenchError
    from dabench.eval.rescore import DEPTH_TASKS, open_run, rescore_run
    from dabench.eval.suites import load_suite

    console = console or Console(stderr=True)
    if bool(suites) == bool(all_presets):
        raise ConfigError("give either --suites a,b,... or --all-presets")
    logged = open_run(run, results_dir)
    notes: list[str] = []
    if all_presets:
        chosen = []
        for path in preset_suites():
            try:
                s = load_suite(path)
            except DabenchError as e:  # one broken preset must not hide the others
                notes.append(f"preset {path.stem}: {e}")
                continue
            if s.task in DEPTH_TASKS:
                chosen.append(s)
    else:
        chosen = [load_suite(s) for s in suites]
        names = [s.name for s in chosen]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"--suites names {', '.join(dup)} twice")
        if len(chosen) < 2:
            raise ConfigError("--suites needs at least two protocols to compare")
    scored: dict[str, tuple[Any, list[dict]]] = {}
    for s in chosen:
        try:
            res = rescore_run(run, s, results_dir=results_dir, data_root=data_root, input_size=input_size,
                              flip_tta=flip_tta, precision=precision, allow_inference_mismatch=allow_inference_mismatch,
                              bootstrap=0, write=False, console=console, show_progress=show_progress, logged=logged)
        except ConfigError as e:  # InferenceMismatch, or a preset that scores none of the run's records
            if not all_presets:
                raise
            notes.append(f"preset {s.name} left out: {e}")
            continue
        notes += [f"{s.name}: {n}" for n in res.notes]
        if any(r.get("status") == "ok" for r in res.records):
            scored[s.name] = (s, res.records)
    if len(scored) < 2:
        raise ConfigError(f"only {len(scored)} protocol(s) could score run {logged.run_id}'s predictions"
                          + (f" ({'; '.join(notes)})" if notes else "") + "; sensitivity compares two or more")
    return build_sensitivity(logged.run_id, scored, notes)


def default_out_dir(run, results_dir=None) -> Path:
    """``<results>/sensitivity/<run id>/`` of the results folder holding the run."""
    from dabench.eval.rescore import open_run
    from dabench.provenance import default_results_dir
    from dabench.results.store import safe_name

    logged = open_run(run, results_dir)
    base = Path(results_dir) if results_dir else (logged.results_dir or default_results_dir())
    return base / "sensitivity" / safe_name(logged.run_id)


# ---------------------------------------------------------------------------------------------
# table, JSON, figure
# ---------------------------------------------------------------------------------------------

def _fmt(v, metric: str) -> str:
    from dabench.results.frame import format_value, metric_info

    if v is None:
        return "–"
    return format_value(v, metric_info(metric)["fmt"]) or "–"


def table_rows(sens: Sensitivity, dataset: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of one dataset's table: rows = models, columns = protocol × primary metric."""
    from dabench.results.frame import arrow, metric_info

    header = ["model"] + [f"{p} {metric_info(m)['display']}{arrow(sens.higher_is_better.get(m, False))}"
                          for p in sens.protocols for m in sens.primary_metrics[p]]
    rows = []
    for model in sens.models:
        cells = [model]
        for p in sens.protocols:
            vals = (sens.values[p].get(model) or {}).get(dataset) or {}
            cells += [_fmt(vals.get(m), m) for m in sens.primary_metrics[p]]
        rows.append(cells)
    return header, rows


def _tau_text(t) -> str:
    return f"{t:+.2f}" if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) else "–"


def markdown(sens: Sensitivity) -> str:
    """``sensitivity.md``: a table per dataset and the rank agreement."""
    out = [f"# Protocol sensitivity of run {sens.run_id}", "",
           "The same logged predictions scored under each protocol (`dabench sensitivity`).", ""]
    for ds in sens.datasets:
        header, rows = table_rows(sens, ds)
        rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
        out += [f"## {ds}", "", "| " + " | ".join(header) + " |", rule]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    out += ["## Rank agreement (Kendall τ-b of the model rankings)", "",
            "| protocol a | protocol b | " + " | ".join(sens.datasets) + " | overall |",
            "|---|---|" + "---:|" * (len(sens.datasets) + 1)]
    for i, a in enumerate(sens.protocols):
        for b in sens.protocols[i + 1:]:
            ag = sens.rank_agreement[a][b]
            out.append(f"| {a} | {b} | " + " | ".join(_tau_text(ag["per_dataset"][ds]) for ds in sens.datasets)
                       + f" | {_tau_text(ag[OVERALL])} |")
    out.append("")
    out += [f"- {n}" for n in sens.notes]
    return "\n".join(out) + "\n"


def print_tables(sens: Sensitivity, console) -> None:
    from rich.table import Table

    for ds in sens.datasets:
        header, rows = table_rows(sens, ds)
        t = Table(title=f"{ds}: the same predictions under each protocol")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
        for r in rows:
            t.add_row(*r)
        console.print(t)
    t = Table(title="rank agreement (Kendall τ-b)")
    for h in ["protocol a", "protocol b", *sens.datasets, OVERALL]:
        t.add_column(h, overflow="fold")
    for i, a in enumerate(sens.protocols):
        for b in sens.protocols[i + 1:]:
            ag = sens.rank_agreement[a][b]
            t.add_row(a, b, *(_tau_text(ag["per_dataset"][ds]) for ds in sens.datasets), _tau_text(ag[OVERALL]))
    console.print(t)


def rank_figure(sens: Sensitivity, stem: str | os.PathLike) -> list[Path]:
    """Each model's rank (1 = best, at the top) under each protocol: a panel per dataset and one overall,
    a line per model; crossing lines are ranking flips. Written as ``stem.png`` and ``stem.pdf``."""
    from dabench.results.figures import pyplot, save_figure

    plt = pyplot()
    panels = [*sens.datasets, OVERALL]
    n_models = max(2, len(sens.models))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.2, 1.4 * len(sens.protocols) + 1.6) * len(panels),
                                                       0.45 * n_models + 2.2), squeeze=False)
    colors = plt.get_cmap("tab10")
    x = list(range(len(sens.protocols)))
    # tied models would draw one line over another: each model's line is shifted by a constant sliver of a
    # rank (a crossing stays a crossing), and the models ending on one rank share one label
    n = len(sens.models)
    shift = {m: (k - (n - 1) / 2) * min(0.06, 0.3 / n) for k, m in enumerate(sens.models)}
    for ax, panel in zip(axes[0], panels):
        ends: dict[tuple[int, float], list[int]] = {}
        for k, model in enumerate(sens.models):
            ys = [sens.ranks[p][panel].get(model) for p in sens.protocols]
            pts = [(xx, y) for xx, y in zip(x, ys) if y is not None]
            if not pts:
                continue
            c = colors(k % 10)
            ax.plot([p[0] for p in pts], [p[1] + shift[model] for p in pts], "-o", color=c, lw=2, ms=6, label=model)
            ends.setdefault(pts[-1], []).append(k)
        for (xx, y), ks in ends.items():
            ax.annotate(" = ".join(sens.models[k] for k in ks), (xx, y), xytext=(9, 0), textcoords="offset points",
                        va="center", fontsize=8, color=colors(ks[0] % 10) if len(ks) == 1 else "0.25")
        ax.set_xticks(x)
        ax.set_xticklabels(sens.protocols, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.3, len(x) - 1 + 1.2)
        ax.set_ylim(len(sens.models) + 0.5, 0.5)
        ax.set_yticks(range(1, len(sens.models) + 1))
        ax.set_ylabel("rank (1 = best)")
        ax.grid(axis="y", color="0.9")
        title = panel if panel != OVERALL else "overall (mean rank)"
        taus = [sens.rank_agreement[a][b]["per_dataset"][panel] if panel != OVERALL else
                sens.rank_agreement[a][b][OVERALL] for a, b in zip(sens.protocols, sens.protocols[1:])]
        ax.set_title(f"{title}\nτ between neighbours: {', '.join(_tau_text(t) for t in taus)}", fontsize=9)
    metrics = sorted(set(sens.ranking_metric.values()))
    fig.suptitle(f"Model ranks under each protocol, run {sens.run_id} (by {', '.join(metrics)}; crossing lines = "
                 "ranking flips)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def write_sensitivity(sens: Sensitivity, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``sensitivity.json``, ``sensitivity.md`` and the figure (``sensitivity.png``/``.pdf``) in ``out_dir``."""
    from dabench.errors import DataError
    from dabench.provenance import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; sensitivity writes a folder (sensitivity.json, .md, .png)")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sensitivity.json", "markdown": out / "sensitivity.md"}
    atomic_write_json(paths["json"], sens.as_dict())
    atomic_write_text(paths["markdown"], markdown(sens))
    fig = rank_figure(sens, out / "sensitivity")
    paths["figure"] = fig[0]
    return paths


# ---------------------------------------------------------------------------------------------
# reading it back (dabench report)
# ---------------------------------------------------------------------------------------------

#: a sensitivity.json is a few KiB per protocol; larger files are not read
MAX_JSON_BYTES = 16 << 20


def load_sensitivity(path: str | os.PathLike) -> Sensitivity:
    """A ``sensitivity.json`` read back, its shape checked (it may come from a stranger's results folder):
    a ``DataError`` naming the file and what was expected otherwise."""
    import json

    from dabench.errors import DataError

    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"{path}: {path.stat().st_size} bytes is too large for a sensitivity.json (at most "
                            f"{MAX_JSON_BYTES})")
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"{path}: not a readable sensitivity.json ({e})") from None

    def expect(ok: bool, what: str):
        if not ok:
            raise DataError(f"{path}: not a {SCHEMA} file ({what})")

    expect(isinstance(d, dict) and d.get("schema") == SCHEMA, f"schema must be {SCHEMA!r}")
    lists = {k: d.get(k) for k in ("protocols", "models", "datasets")}
    for k, v in lists.items():
        expect(isinstance(v, list) and all(isinstance(x, str) for x in v), f"{k} must be a list of names")
    for k in ("values", "ranks", "rank_agreement", "primary_metrics", "ranking_metric", "higher_is_better"):
        expect(isinstance(d.get(k), dict), f"{k} must be an object")
    for p in lists["protocols"]:
        expect(isinstance(d["primary_metrics"].get(p), list) and all(isinstance(m, str) for m in
                                                                      d["primary_metrics"][p]),
               f"primary_metrics of {p!r} must be a list of metric names")
        expect(isinstance(d["values"].get(p, {}), dict), f"values of {p!r} must be an object")
        ranks = d["ranks"].get(p)
        expect(isinstance(ranks, dict) and all(isinstance(ranks.get(ds, {}), dict) for ds in [*lists["datasets"],
                                                                                             OVERALL]),
               f"ranks of {p!r} must map each dataset to model ranks")
        for a in lists["protocols"]:
            ag = (d["rank_agreement"].get(p) or {}).get(a)
            expect(isinstance(ag, dict) and isinstance(ag.get("per_dataset"), dict),
                   f"rank_agreement[{p!r}][{a!r}] must hold per_dataset and overall")
    for p, per_model in d["values"].items():
        for model, per_ds in (per_model or {}).items():
            expect(isinstance(per_ds, dict), f"values[{p!r}][{model!r}] must be an object")
            for ds, per_metric in per_ds.items():
                expect(isinstance(per_metric, dict) and all(v is None or isinstance(v, (int, float))
                                                            for v in per_metric.values()),
                       f"values[{p!r}][{model!r}][{ds!r}] must map metric names to numbers")
    notes = d.get("notes") or []
    expect(isinstance(notes, list), "notes must be a list")
    return Sensitivity(str(d.get("run_id")), lists["protocols"], lists["models"], lists["datasets"], d["values"],
                       d["primary_metrics"], d["ranking_metric"],
                       {k: bool(v) for k, v in d["higher_is_better"].items()},
                       d["ranks"], d["rank_agreement"], [str(n) for n in notes])


def find_sensitivity(results: str | os.PathLike) -> list[Path]:
    """The ``sensitivity.json`` files of a results folder (outside its ``runs/`` history)."""
    from dabench.results.store import RUNS_DIR

    root = Path(results)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("sensitivity.json")
                  if p.is_file() and p.relative_to(root).parts[0] != RUNS_DIR)


def report_section(results: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[str, list[Path], list[str]]:
    """The HTML of ``dabench report``'s protocol-sensitivity section for every ``sensitivity.json`` under
    ``results`` (its figure copied to ``out_dir/assets/``, its tables and rank agreement), the images
    written, and notes on files that could not be read. Empty HTML when there is none."""
    import html

    from dabench.errors import DataError
    from dabench.provenance import atomic_write_bytes
    from dabench.results.store import safe_name

    def esc(x) -> str:
        return html.escape(str(x), quote=True)

    parts, images, notes = [], [], []
    for path in find_sensitivity(results):
        try:
            sens = load_sensitivity(path)
        except DataError as e:
            notes.append(str(e))
            continue
        block = [f"<h3>Run {esc(sens.run_id)}</h3>",
                 "<p>The same logged predictions scored under each protocol (<code>dabench sensitivity</code>); "
                 "nothing was run again, so every difference is the protocol's.</p>"]
        png = path.parent / "sensitivity.png"
        if png.is_file() and not png.is_symlink() and png.stat().st_size <= MAX_JSON_BYTES:
            rel = f"assets/sensitivity_{safe_name(sens.run_id)}_{len(images)}.png"
            atomic_write_bytes(Path(out_dir) / rel, png.read_bytes())
            images.append(Path(out_dir) / rel)
            block.append(f'<p><img class="sensitivity" src="{esc(rel)}" alt="model ranks under each protocol, run '
                         f'{esc(sens.run_id)}" style="max-width:100%"></p>')
        for ds in sens.datasets:
            header, rows = table_rows(sens, ds)
            block.append(f"<h4>{esc(ds)}</h4><table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header)
                         + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                                                           for r in rows) + "</tbody></table>")
        head = ["protocol a", "protocol b", *sens.datasets, OVERALL]
        agree = []
        for i, a in enumerate(sens.protocols):
            for b in sens.protocols[i + 1:]:
                ag = sens.rank_agreement.get(a, {}).get(b) or {}
                per = ag.get("per_dataset") or {}
                cells = [a, b, *(_tau_text(per.get(ds)) for ds in sens.datasets), _tau_text(ag.get(OVERALL))]
                agree.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        block.append("<h4>Rank agreement (Kendall τ-b of the model rankings)</h4><table><thead><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in head) + f"</tr></thead><tbody>{''.join(agree)}"
                     "</tbody></table>")
        block += [f"<p class=note>{esc(n)}</p>" for n in sens.notes]
        parts.append("\n".join(block))
    return "\n".join(parts), images, notes
