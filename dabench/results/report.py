"""`dabench report --out DIR`: a self-contained static HTML report of a results store.

``DIR/index.html`` opens from disk without a server (no external script, style sheet or font) and
holds, per suite, a sortable table of every record's metrics (95 % bootstrap intervals under the
value when the record has ``ci``), and per (suite, model, dataset) a sample gallery: image | ground
truth | prediction | error map, worst AbsRel first, each row with the sample's recorded metrics.
``DIR/assets/`` holds the gallery PNGs, ``DIR/records/`` a copy of every raw record and per-sample
CSV the page links to.

Where a gallery's pictures come from:
- image and ground truth: the record's dataset rebuilt as the run built it (card, split, data root);
- prediction: the float16 ``.npz`` that ``dabench run --log-samples`` kept for the sample
  (``runs/<run_id>/samples/<model>/<dataset>/<sample>.npz``), else, only with ``predict=True``,
  the record's model run again (``dabench.results.paper.load_record_model``); otherwise the gallery
  says the predictions were not logged;
- error map: per-pixel |p − g| / g in the record's score space after the record's alignment
  (``dabench.eval.scoring.score_sample``), so its mean over valid pixels is the sample's AbsRel.
"""
from __future__ import annotations

import csv
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from dabench.provenance import atomic_write_bytes, atomic_write_text, git_commit, now_iso
from dabench.results.record import Record
from dabench.results.report_samples import (ERROR_MAX, Predictor, colorize_error, error_map, logged_prediction,
                                            path_part, rebuild_dataset, record_protocol)

GALLERY_METRICS = ("abs_rel", "delta1", "rmse", "silog")
MAX_SIDE = 768  # gallery pictures: real size up to this many pixels (ETH3D's 6048×4032 is shrunk to fit)


@dataclass
class ReportOutput:
    out_dir: Path
    index: Path
    records: int = 0
    galleries: int = 0
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _slug(*parts) -> str:
    return "/".join(path_part(p) for p in parts)


def _png(rgb: np.ndarray, max_side: int = MAX_SIDE) -> bytes:
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) > max_side:  # INTER_AREA: an average of the pixels each output pixel covers
        f = max_side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - encoding uint8 RGB does not fail
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def read_samples_csv(record: Record) -> list[dict]:
    """The per-sample rows written beside a record file (``<dataset>.samples.csv``), numbers parsed;
    [] when the record has no file or no CSV."""
    from dabench.results.store import samples_csv_path

    path = getattr(record, "path", None)
    if not path:
        return []
    csv_path = samples_csv_path(path)
    if not csv_path.is_file():
        return []
    from dabench.errors import DataError

    rows = []
    try:
        import io

        from dabench.results.store import read_samples_csv_text

        raw_rows = list(csv.DictReader(io.StringIO(read_samples_csv_text(csv_path), newline="")))
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{csv_path}: not a per-sample CSV written by dabench run ({e})") from None
    for row in raw_rows:
        out = {}
        for k, v in row.items():
            if k in ("name", "status"):
                out[k] = v
            else:
                try:
                    out[k] = float(v) if v not in ("", None) else None
                except (TypeError, ValueError):
                    out[k] = v
        rows.append(out)
    return rows


def worst_first(rows: list[dict], metric: str = "abs_rel") -> list[dict]:
    """Scored samples sorted by ``metric`` in its worse-first order (AbsRel: largest first)."""
    from dabench.results.frame import metric_info

    hib = metric_info(metric)["higher_is_better"]
    ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get(metric), float)
          and isinstance(r.get("index"), float) and float(r["index"]).is_integer() and not math.isnan(r[metric])]
    return sorted(ok, key=lambda r: r[metric], reverse=not hib)


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------

def generate_report(out_dir: str | os.PathLike, results: str | os.PathLike, *, samples: int = 8,
                    predict: bool = False, device: str = "cpu", data_root=None) -> ReportOutput:
    """Write ``out_dir/index.html`` (+ ``assets/``, ``records/``) for the records under ``results``.
    ``samples``: gallery rows per (model, dataset), worst AbsRel first; ``predict``: run the models
    again for samples whose prediction was not logged with ``--log-samples``."""
    from dabench.errors import DataError
    from dabench.results.store import latest_records, load_records

    results = Path(results)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; the report is a folder (index.html, assets/, records/)")
    if out_dir.resolve() == results.resolve() or results.resolve() in out_dir.resolve().parents:
        raise DataError(f"--out {out_dir} is inside the results directory {results}; choose another folder "
                        "(the report never writes into its input)")
    # the latest complete record per (suite, model, dataset); a key with only --limit runs shows its
    # newest partial record, marked as such
    records = latest_records(load_records(results), include_partial=True)
    if not records:
        raise DataError(f"no result records in {results}; run `dabench run --suite zero-shot` first")
    res = ReportOutput(out_dir=out_dir, index=out_dir / "index.html", records=len(records))
    record_links = _copy_records(records, results, out_dir)
    sections = []
    by_suite: dict[str, list[Record]] = {}
    for r in records:
        by_suite.setdefault(str(r.get("suite")), []).append(r)
    for suite, recs in sorted(by_suite.items()):
        parts = [f'<section id="suite-{_slug(suite)}"><h2>Suite {_esc(suite)}</h2>',
                 _suite_table(suite, recs, record_links)]
        for rec in sorted(recs, key=lambda r: (str(r.get("model")), str(r.get("dataset")))):
            if rec.get("status", "ok") != "ok":
                continue
            parts.append(_gallery(rec, results, out_dir, res, samples=samples, predict=predict, device=device,
                                  data_root=data_root, record_links=record_links))
        parts.append("</section>")
        sections.append((suite, "\n".join(parts)))
    from dabench.results.sensitivity import report_section

    sens_html, sens_images, sens_notes = report_section(results, out_dir)  # `dabench sensitivity` outputs
    res.images += sens_images
    res.notes += sens_notes
    page = _page(sections, results, res, sensitivity=sens_html)
    atomic_write_text(res.index, page)
    return res


def _copy_records(records: list[Record], results: Path, out_dir: Path) -> dict[int, dict[str, str]]:
    """Copy each record file (and its per-sample CSV) to ``out_dir/records/``; links relative to the page."""
    from dabench.results.store import samples_csv_path

    links: dict[int, dict[str, str]] = {}
    for r in records:
        src = r.path
        try:
            rel = src.resolve().relative_to(results.resolve())
        except ValueError:
            rel = Path(src.name)
        dst = out_dir / "records" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dst, src.read_bytes())
        entry = {"json": "records/" + quote(rel.as_posix())}
        csv_src = samples_csv_path(src)
        if csv_src.is_file():
            atomic_write_bytes(dst.with_name(csv_src.name), csv_src.read_bytes())
            entry["csv"] = "records/" + quote(rel.with_name(csv_src.name).as_posix())
        links[id(r)] = entry
    return links


def _suite_table(suite: str, recs: list[Record], record_links) -> str:
    """One row per model, columns dataset × metric; cells carry ``data-value`` for sorting and, when
    the record has one, its 95 % interval."""
    from dabench.results.frame import format_params, format_value
    from dabench.results.tables import build_table, load_suite_spec

    spec = load_suite_spec(suite)
    metrics = list(spec.primary_metrics) if spec is not None else None
    ok = [r for r in recs if r.get("status", "ok") == "ok"]
    table = build_table(ok, metrics=metrics, dataset_order=spec.dataset_names if spec is not None else None)
    by_cell = {(str(r.get("model")), str(r.get("dataset"))): r for r in ok}
    marks = table.marks()
    head = ['<th data-type="text">Model</th>', '<th data-type="num">Params</th>'] + [
        f'<th data-type="num" title="{_esc(c.metric)} on {_esc(c.dataset)}">{_esc(c.header)}</th>'
        for c in table.columns]
    body = []
    for i, row in enumerate(table.rows):
        cells = [f'<td data-value="{_esc(row.label)}">{_esc(row.label)}</td>',
                 f'<td data-value="{_esc(row.params if row.params is not None else "")}">'
                 f'{_esc(format_params(row.params) or "–")}</td>']
        for j, col in enumerate(table.columns):
            v = table.cell(row, col)
            rec = by_cell.get((row.model, col.dataset))
            text = format_value(v, col.fmt)
            if text is None:
                cells.append('<td data-value="">–</td>')
                continue
            ci = ((rec or {}).get("ci") or {}).get(col.metric)
            ci_html = ""
            if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
                ci_html = (f'<span class="ci">[{_esc(format_value(ci[0], col.fmt))}, '
                           f'{_esc(format_value(ci[1], col.fmt))}]</span>')
            cls = {"best": ' class="best"', "second": ' class="second"'}.get(marks.get((i, j)), "")
            link = (record_links.get(id(rec)) or {}).get("json") if rec is not None else None
            text_html = f'<a href="{_esc(link)}">{_esc(text)}</a>' if link else _esc(text)
            cells.append(f'<td data-value="{v!r}"{cls} data-dataset="{_esc(col.dataset)}" '
                         f'data-metric="{_esc(col.metric)}">{text_html}{ci_html}</td>')
        body.append(f'<tr data-model="{_esc(row.model)}" data-baseline="{int(row.baseline)}">' + "".join(cells)
                    + "</tr>")
    notes = "".join(f"<li>{_esc(n)}</li>" for n in table.notes)  # built from ok records: no skip notes
    skipped = [r for r in recs if r.get("status", "ok") != "ok"]
    if skipped:  # one collapsed list: on a fresh machine every real dataset is skipped for every model
        items = "".join(f"<li>{_esc(r.get('model'))} on {_esc(r.get('dataset'))}: "
                        f"{_esc(r.get('skip_reason') or 'no reason given')}</li>" for r in skipped)
        sets = ", ".join(sorted({str(r.get("dataset")) for r in skipped}))
        notes += (f"<li><details><summary>{len(skipped)} skipped record(s) ({_esc(sets)})</summary>"
                  f"<ul>{items}</ul></details></li>")
    return (f'<table class="sortable" data-suite="{_esc(suite)}"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>'
            '<p class="hint">Click a header to sort. Best value per column in bold, second underlined '
            '(baselines are not ranked); each value links to its raw record; [lo, hi] = 95 % bootstrap '
            'interval over images when recorded.</p>'
            + (f"<ul class=notes>{notes}</ul>" if notes else ""))


GALLERY_COLUMNS = {"image": "image", "gt": "ground truth", "pred": "prediction", "err": "error |p−g|/g"}


def not_logged_note(record: Record) -> str:
    """The one line a gallery without predictions shows: what is missing and the commands that fill
    it (the record's run again with ``--log-samples``, when its suite is one ``dabench run`` runs,
    or ``dabench report --predict``)."""
    import shlex

    from dabench.results.tables import load_suite_spec

    suite, model = str(record.get("suite")), str(record.get("model"))
    fill = "build the report with `dabench report --predict` to run the model again"
    if load_suite_spec(suite) is not None:
        args = ["dabench", "run", "--suite", suite, "--model", model]
        if record.get("checkpoint"):
            args += ["--checkpoint", str(record["checkpoint"])]
        if record.get("random_init"):
            args.append("--random-init")
        limit = (record.get("config") or {}).get("limit")
        if isinstance(limit, int):
            args += ["--limit", str(limit)]
        fill = f"rerun `{shlex.join(args + ['--log-samples'])}` to keep them, or " + fill
    return (f"Predictions were not logged for this run, so the gallery shows image and ground truth only: "
            f"{fill}.")


def _gallery(rec: Record, results: Path, out_dir: Path, res: ReportOutput, *, samples: int, predict: bool,
             device: str, data_root, record_links) -> str:
    from dabench.errors import DabenchError
    from dabench.eval.scoring import score_sample
    from dabench.results.frame import format_value, metric_info
    from dabench.viz import colorize_depth

    model, ds = str(rec.get("model")), str(rec.get("dataset"))
    links = record_links.get(id(rec)) or {}
    raw = " · ".join(f'<a href="{_esc(v)}">{k.upper()}</a>' for k, v in links.items())
    head = (f'<details class="gallery" data-model="{_esc(model)}" data-dataset="{_esc(ds)}" open>'
            f'<summary>{_esc(model)} on {_esc(ds)}'
            + (f" (stand-in for {_esc(', '.join(rec['fallback_for']))})" if rec.get("fallback_for") else "")
            + f' — raw record: {raw}</summary>')
    rows = worst_first(read_samples_csv(rec))[:max(0, samples)]
    if not rows:
        return head + "<p>No per-sample CSV next to this record: nothing to show.</p></details>"
    why = ""
    try:
        dataset = rebuild_dataset(rec, data_root)
    except (DabenchError, OSError) as e:
        dataset, why = None, getattr(e, "message", str(e))
    protocol = record_protocol(rec)
    predictor, predictor_note = None, ""
    entries = []  # (sample name, AbsRel, name cell, {picture key: cell}, metrics cell); {} = no image
    notes: list[str] = []
    shown_predictions = 0
    for row in rows:
        idx, name = int(row["index"]), str(row["name"])
        metrics_html = "".join(f"<div>{_esc(metric_info(m)['display'])} "
                               f"{_esc(format_value(row.get(m), metric_info(m)['fmt']) or '–')}</div>"
                               for m in GALLERY_METRICS if m in row)
        if isinstance(row.get("valid_pixels"), float):
            metrics_html += f"<div>valid px {int(row['valid_pixels'])}</div>"
        name_cell = f"<td>{_esc(name)}<br><small>#{idx}</small></td>"
        cells: dict[str, str] = {}
        sample = None
        if dataset is not None and 0 <= idx < len(dataset):
            s = dataset[idx]
            if str(s.get("name", idx)) == name:
                sample = s
        if sample is None:
            msg = why if dataset is None else f"sample #{idx} of the rebuilt dataset is not {name}"
            if msg not in notes:
                notes.append(msg)
            entries.append((name, row.get("abs_rel"), name_cell, cells, metrics_html))
            continue
        from dabench.eval.scoring import prepare_sample

        sample = prepare_sample(sample, protocol)
        stem = _slug(rec.get("suite"), model, ds, f"{idx:06d}")
        pics = {"image": np.asarray(sample["image"]),
                "gt": colorize_depth(sample["depth"], np.asarray(sample.get("valid", np.isfinite(sample["depth"]))),
                                     "depth")}
        got = logged_prediction(rec, results, name, np.asarray(sample["depth"]).shape, notes)
        space = None
        if got is None and predict:
            if predictor is None and not predictor_note:
                try:
                    predictor = Predictor(rec, device)
                except (DabenchError, ImportError) as e:
                    predictor_note = f"--predict: {getattr(e, 'message', e)}"
                    notes.append(predictor_note)
            if predictor is not None:
                got = (predictor(np.asarray(sample["image"]), protocol), predictor.space)
        if got is not None:
            pred, space = got
            space = space or (predictor.space if predictor is not None else "disparity")
            if pred.shape == np.asarray(sample["depth"]).shape:
                status, _, info = score_sample(pred, sample, protocol, space, name=name, keep_maps=True)
                pics["pred"] = colorize_depth(pred, None, space)
                shown_predictions += 1
                if status == "ok":
                    p_s, g_s, valid = info["score_maps"]
                    pics["err"] = colorize_error(error_map(p_s, g_s, valid))
            else:
                notes.append(f"{name}: the logged prediction's shape {pred.shape} is not the image's")
        for key in ("image", "gt", "pred", "err"):
            if key in pics:
                rel = f"assets/{stem}_{key}.png"
                data = _png(pics[key])
                atomic_write_bytes(out_dir / rel, data)
                res.images.append(out_dir / rel)
                h, w = pics[key].shape[:2]
                f = min(1.0, MAX_SIDE / max(h, w))
                h, w = max(1, round(h * f)), max(1, round(w * f))
                cells[key] = f'<td><img src="{_esc(rel)}" width="{w}" height="{h}" alt="{key} {_esc(name)}"></td>'
        entries.append((name, row.get("abs_rel"), name_cell, cells, metrics_html))
    # prediction and error columns only when some sample has a prediction; else one note says why
    keys = [k for k in GALLERY_COLUMNS if shown_predictions or k in ("image", "gt")]
    out = [head]
    if not shown_predictions and not predictor_note:
        out.append(f"<p class=note>{_esc(not_logged_note(rec))}</p>")
    out.append('<table class="samples"><thead><tr><th>sample</th>' + "".join(
        f"<th>{_esc(GALLERY_COLUMNS[k])}</th>" for k in keys) + "<th>metrics</th></tr></thead><tbody>")
    for name, abs_rel, name_cell, cells, metrics_html in entries:
        pics = ("".join(cells.get(k, '<td class="missing">–</td>') for k in keys) if cells
                else f'<td colspan="{len(keys)}" class="missing">image not available</td>')
        out.append(f'<tr data-sample="{_esc(name)}" data-abs-rel="{_esc(repr(abs_rel))}">{name_cell}{pics}'
                   f'<td class="m">{metrics_html}</td></tr>')
    out.append("</tbody></table>")
    if predictor is not None:
        notes.append(f"Predictions re-made by {predictor.description} (--predict).")
    out += [f"<p class=note>{_esc(n)}</p>" for n in notes]
    out.append("</details>")
    res.galleries += 1
    return "\n".join(out)


_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}table.sortable th{cursor:pointer;background:#f4f6f8;user-select:none}
table.sortable th.asc::after{content:" ▲"}table.sortable th.desc::after{content:" ▼"}
td.best{font-weight:bold}td.second{text-decoration:underline}tr[data-baseline="1"]{color:#666;font-style:italic}
.ci{display:block;font-size:11px;color:#666}a{color:#1f5fa8;text-decoration:none}
.hint,.note{color:#555;font-size:12px}table.samples td{vertical-align:top}table.samples img{image-rendering:pixelated}
td.missing{color:#999;font-style:italic;text-align:center}td.m{text-align:left;font-size:12px;white-space:nowrap}
details.gallery{margin:12px 0;border:1px solid #e3e3e3;border-radius:4px;padding:6px 10px}
summary{font-weight:600;cursor:pointer}.legend{font-size:12px;color:#444}
"""

# Sorting: numbers by data-value (empty last), text otherwise; a second click reverses. The page
# marks itself ready when the script has run, so the browser test can tell it executed.
_SCRIPT = """
(function(){
  function key(td,num){var v=td.getAttribute('data-value');if(!num)return (v||td.textContent).toLowerCase();
    return v===''||v===null||v==='None'?null:parseFloat(v);}
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var num=th.getAttribute('data-type')==='num',asc=!th.classList.contains('asc');
        table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(asc?'asc':'desc');
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){var x=key(a.cells[col],num),y=key(b.cells[col],num);
          if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
          return (x<y?-1:x>y?1:0)*(asc?1:-1);});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.documentElement.setAttribute('data-report-ready','1');
})();
"""


def _page(sections: list[tuple[str, str]], results: Path, res: ReportOutput, sensitivity: str = "") -> str:
    commit = git_commit() or "unknown"
    toc = "".join(f'<li><a href="#suite-{_slug(suite)}">Suite {_esc(suite)}</a></li>' for suite, _ in sections)
    if sensitivity:
        toc += '<li><a href="#protocol-sensitivity">Protocol sensitivity</a></li>'
        sensitivity = f'<section id="protocol-sensitivity"><h2>Protocol sensitivity</h2>\n{sensitivity}</section>'

    legend = ('<p class="legend">Depth pictures: Spectral_r on disparity (1/depth), near = warm (red), far = '
              'cool (blue), invalid pixels black, each picture normalised to its own 2–98 % range and shown at '
              f'its real size up to {MAX_SIDE} px. Error maps: per-pixel AbsRel |p−g|/g in the record\'s score '
              f'space after its alignment, magma from 0 (black) to ≥ {ERROR_MAX} (bright), invalid grey. '
              'Gallery rows: worst AbsRel first.</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>dabench report</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{_STYLE}</style></head><body>\n<h1>dabench report</h1>\n"
            f"<p>Generated {_esc(now_iso())} by dabench (commit <code>{_esc(commit[:12])}</code>) from "
            f"<code>{_esc(results)}</code>: {res.records} record(s). Raw records are copied under "
            "<code>records/</code>.</p>\n"
            f"<ul>{toc}</ul>\n{legend}\n" + "\n".join(body for _, body in sections) + sensitivity
            + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
