"""`dabench report`: the HTML is parsed (every referenced file exists, every table row matches a
record), the gallery is worst-first with error maps whose mean is the recorded AbsRel, predictions
come from --log-samples files or --predict only, and the page renders in headless Chromium."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.eval.runner import run_suite
from dabench.eval.scoring import score_sample
from dabench.results.record import Record
from dabench.results.report import error_map, generate_report, read_samples_csv, worst_first
from dabench.results.store import load_records
from dabench.tasks import EvalRequest


class _Page(HTMLParser):
    """Collects image sources, links, and the metric cells of the suite tables."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.cells, self.gallery_rows = [], [], [], []
        self._row_model = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "a" and not a.get("href", "#").startswith("#"):
            self.links.append(a["href"])
        elif tag == "tr" and "data-model" in a:
            self._row_model = a["data-model"]
        elif tag == "tr" and "data-sample" in a:
            self.gallery_rows.append((a["data-sample"], float(a["data-abs-rel"])))
        elif tag == "td" and "data-metric" in a and self._row_model is not None:
            self.cells.append((self._row_model, a["data-dataset"], a["data-metric"], float(a["data-value"])))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "results"
    for model, log in (("horizon_prior", True), ("constant", False)):  # one run keeps its predictions
        run_suite("synthetic", EvalRequest(datasets="synthetic-indoor", limit=3, results_dir=root, show_progress=False,
                  use_cache=False, log_samples=log, bootstrap=200), models=[model])
    return root


def _parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text())
    return page


def test_every_reference_exists_and_every_row_matches_a_record(results, tmp_path):
    out = tmp_path / "site"
    res = generate_report(out, results, samples=2, predict=True)
    page = _parse(res.index)
    assert page.images and all((out / src).is_file() for src in page.images)
    assert page.links and all((out / href).is_file() for href in page.links)
    records = {(r["model"], r["dataset"]): r for r in load_records(results) if r["status"] == "ok"}
    assert {(m, d) for m, d, _, _ in page.cells} == set(records)  # one row per model, nothing invented
    for model, dataset, metric, value in page.cells:
        assert math.isclose(value, records[(model, dataset)]["metrics"][metric], rel_tol=1e-12)
    # the copied raw records are the records
    for href in page.links:
        if href.endswith(".json"):
            rec = json.loads((out / href).read_text())
            assert (rec["model"], rec["dataset"]) in records
    # image | ground truth | prediction | error map for each of the 2 worst samples of both models
    text = res.index.read_text()
    assert len(page.images) == 2 * 2 * 4 and "Predictions re-made by constant" in text
    assert "Predictions re-made by horizon_prior" not in text  # its --log-samples files were used
    # the records' bootstrap intervals are printed under their values
    rec = next(r for r in load_records(results) if r["model"] == "horizon_prior")
    lo, hi = rec["ci"]["abs_rel"]
    assert f'<span class="ci">[{lo:.3f}, {hi:.3f}]</span>' in text


def test_gallery_is_worst_first_and_error_map_mean_is_the_recorded_abs_rel(results, tmp_path):
    from dabench.data import build_dataset
    from dabench.eval.suites import Protocol
    from dabench.models import create_model
    from dabench.models.inference import predict_batch

    res = generate_report(tmp_path / "site", results, samples=3)
    rows = _parse(res.index).gallery_rows
    per_model = [rows[:3], rows[3:]]
    for part in per_model:
        values = [v for _, v in part]
        assert values == sorted(values, reverse=True)  # AbsRel: worst (largest) first
    rec = next(r for r in load_records(results) if r["model"] == "horizon_prior")
    csv_rows = read_samples_csv(rec)
    assert [r["name"] for r in worst_first(csv_rows)] == [n for n, _ in per_model[1]]
    # the error map of each sample averages to the AbsRel the runner recorded for it
    ds = build_dataset("synthetic-indoor", split=rec["split"])
    proto = Protocol(**{k: v for k, v in rec["protocol"].items() if k in Protocol.__dataclass_fields__})
    model = create_model("horizon_prior")
    for row in csv_rows:
        sample = ds[int(row["index"])]
        pred = predict_batch(model, [sample["image"]], input_size=proto.input_size)[0]
        status, _, info = score_sample(pred, sample, proto, "disparity", keep_maps=True)
        err = error_map(*info["score_maps"])
        assert status == "ok" and math.isclose(np.nanmean(err), row["abs_rel"], rel_tol=1e-9)


def test_logged_predictions_are_used_and_nothing_is_run_again(results, tmp_path):
    res = generate_report(tmp_path / "site", results, samples=1)
    text = res.index.read_text()
    # horizon_prior ran with --log-samples: all four pictures; constant did not: image and ground truth only
    assert sorted(p.name.rsplit("_", 1)[1] for p in res.images if "/horizon_prior/" in p.as_posix()) == \
        ["err.png", "gt.png", "image.png", "pred.png"]
    assert sorted(p.name.rsplit("_", 1)[1] for p in res.images if "/constant/" in p.as_posix()) == \
        ["gt.png", "image.png"]
    assert "re-made" not in text
    # the gallery without predictions says so once, with the command that fills it, and has no
    # prediction/error columns full of "not logged" cells
    assert text.count("Predictions were not logged") == 1 and ">not logged<" not in text
    assert "dabench run --suite synthetic --model constant --limit 3 --log-samples" in text
    assert "dabench report --predict" in text
    galleries = _galleries(text)
    assert "<th>prediction</th>" not in galleries["constant"] and "<th>ground truth</th>" in galleries["constant"]
    assert "<th>prediction</th>" in galleries["horizon_prior"] and "<th>error |p−g|/g</th>" in galleries["horizon_prior"]
    assert "Predictions were not logged" not in galleries["horizon_prior"]


def _galleries(text: str) -> dict[str, str]:
    """Each gallery's HTML by model."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<details class="gallery" data-model="([^"]+)".*?</details>',
                                                        text, flags=re.S)}


def test_a_logged_npz_is_what_the_gallery_draws_and_a_ci_is_shown(results, tmp_path):
    import cv2

    from dabench.viz import colorize_depth

    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    rec_path = next(r.path for r in load_records(copy) if r["model"] == "constant")
    rec = json.loads(rec_path.read_text())
    rec["run_id"] = "run1"
    rec["ci"] = {"abs_rel": [0.1234, 0.2345]}
    rec_path.write_text(json.dumps(rec))
    worst = worst_first(read_samples_csv(Record({}, path=rec_path)))[0]
    folder = copy / "runs" / "run1" / "samples" / "constant" / "synthetic-indoor"
    folder.mkdir(parents=True)
    pred = np.tile(np.linspace(0.1, 1.0, 126, dtype=np.float16), (98, 1))  # a left-to-right ramp
    from dabench.results.store import sample_file_name

    np.savez(folder / f"{sample_file_name(worst['name'])}.npz", pred=pred, output_space=np.array("disparity"))
    res = generate_report(tmp_path / "site", copy, samples=1)
    assert '<span class="ci">[0.123, 0.234]</span>' in res.index.read_text()
    (png,) = [p for p in res.images if p.name.endswith("_pred.png") and "/constant/" in p.as_posix()]
    np.testing.assert_array_equal(cv2.imread(str(png))[..., ::-1], colorize_depth(pred.astype(np.float32)))


def test_cli_errors(results, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["report", "--out", str(results / "site"), "--results", str(results)])
    assert r.exit_code == 2 and "inside the results directory" in " ".join(r.output.split())
    r = runner.invoke(app, ["report", "--out", str(tmp_path / "s"), "--results", str(tmp_path / "none")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())
    (tmp_path / "afile").write_text("mine")
    r = runner.invoke(app, ["report", "--out", str(tmp_path / "afile"), "--results", str(results)])
    assert r.exit_code == 2 and "is a file" in " ".join(r.output.split())
    assert (tmp_path / "afile").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["report", "--out", str(tmp_path / "s"), "--results", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no result records" in " ".join(r.output.split())


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless browser test needs Debian's `chromium` "
                    "(apt-get install -y chromium; .ci/run installs it when run as root)")
def test_renders_in_headless_chromium_without_console_errors(results, tmp_path):
    import cv2

    res = generate_report(tmp_path / "site", results, samples=2, predict=True)
    url = res.index.resolve().as_uri()
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "shot.png"
    run = subprocess.run(base + ["--window-size=1200,900", f"--screenshot={shot}", url], capture_output=True,
                         text=True, timeout=120)
    assert shot.is_file(), run.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (900, 1200) and img.std() > 10  # not a blank page
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    # console output (errors, failed resource loads) is logged as INFO:CONSOLE lines; the page logs nothing
    console = [line for line in (run.stderr + dom.stderr).splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert 'data-report-ready="1"' in dom.stdout  # the sorting script ran to its end


def test_hostile_names_are_escaped_and_stay_inside_the_output(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    rec_path = next(r.path for r in load_records(copy) if r["model"] == "constant")
    rec = json.loads(rec_path.read_text())
    rec["model"] = '<script>alert(1)</script>/../../evil'
    rec["model_params"] = '"><img src=x onerror=alert(2)>'
    rec_path.write_text(json.dumps(rec))
    csv_path = rec_path.with_name(rec_path.stem + ".samples.csv")
    csv_path.write_text(csv_path.read_text().replace("synthetic-indoor/test/", '"<b>x</b>/../../"'))
    out = tmp_path / "site"
    res = generate_report(out, copy, samples=2, predict=True)
    text = res.index.read_text()
    assert "<script>alert" not in text and "onerror=alert(2)>" not in text and "<b>x</b>" not in text
    assert all(out.resolve() in p.resolve().parents for p in res.images)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["results", "site"]  # nothing written beside


def test_dot_dot_names_never_lead_outside_the_output(results, tmp_path):
    """suite and model '..' (safe_name keeps '..' as it is): gallery PNGs stay under --out."""
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    rec_path = next(r.path for r in load_records(copy) if r["model"] == "constant")
    rec = json.loads(rec_path.read_text())
    rec.update(suite="..", model="..")
    rec_path.write_text(json.dumps(rec))
    out = tmp_path / "o1" / "o2" / "site"
    res = generate_report(out, copy, samples=1)
    assert res.images and all(out.resolve() in p.resolve().parents for p in res.images)
    assert sorted(q.name for q in (tmp_path / "o1" / "o2").iterdir()) == ["site"]
    assert sorted(q.name for q in (tmp_path / "o1").iterdir()) == ["o2"]
