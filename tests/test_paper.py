"""`dabench paper`: the paper's tables with published and own rows, figures as PNG+PDF, index.md."""
from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from dabench.cli import app
from dabench.results.paper import generate_paper, records_for_table
from dabench.results.published import get_published
from dabench.results.store import write_record


def _rec(model, dataset, metrics, suite="zero-shot", task="relative", **kw):
    return {"schema": "dabench.result/1", "status": "ok", "task": task, "suite": suite, "model": model,
            "dataset": dataset, "metrics": metrics, "higher_is_better": {"abs_rel": False, "delta1": True},
            "protocol": {"input_size": 56}, "seed": 0, **kw}


def _links(index: Path) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", index.read_text())


def test_paper_without_own_results(tmp_path):
    out = tmp_path / "paper"
    res = CliRunner().invoke(app, ["paper", "--out", str(out), "--results", str(tmp_path / "none"), "--no-figures"])
    assert res.exit_code == 0, res.output
    assert "No own results were found" in res.output
    index = (out / "index.md").read_text()
    assert "No own results were found" in index
    for n in ("2", "3", "4", "5", "7", "8", "9", "10", "12"):
        md = (out / "tables" / f"table_{n}.md").read_text()
        assert f"Table {n}" in md and "[1] Depth Anything (Yang et al." in md
        tex = (out / "tables" / f"table_{n}.tex").read_text()
        assert tex.startswith(f"% Table {n}: ") and "\\begin{tabular}" in tex and "\\bottomrule" in tex
        assert (out / "tables" / f"table_{n}.csv").exists()
    assert "(dabench) |" not in index  # no own row in any table
    for link in _links(out / "index.md"):
        assert (out / link).exists(), link


def test_paper_with_own_results_and_figures(tmp_path):
    results = tmp_path / "results"
    write_record(_rec("horizon_prior", "kitti", {"abs_rel": 0.31, "delta1": 0.55}, model_params=0), results)
    write_record(_rec("horizon_prior", "diode-indoor", {"abs_rel": 0.05, "delta1": 0.96}, model_params=0), results)
    write_record(_rec("horizon_prior", "synthetic-indoor", {"abs_rel": 0.26, "delta1": 0.57}, model_params=0,
                      suite="synthetic"), results)
    write_record(_rec("tiny_net", "nyu", {"delta1": 0.5, "abs_rel": 0.4, "rmse": 1.0},
                      suite="metric-nyu", task="metric", model_params=2.5e7,
                      checkpoint=str(tmp_path / "gone.safetensors")), results)
    out = tmp_path / "paper"
    res = generate_paper(out, results, grid_samples=2)
    t2 = (out / "tables" / "table_2.md").read_text()
    # the own row sits next to the published ones; diode-indoor lands in the paper's DIODE column
    # a weight-free baseline is shown, labelled, and never ranked: DIODE's best stays the paper's 0.066
    assert "| horizon_prior (dabench, baseline) | 0 | 0.310 | 0.550 | – | – |" in t2
    assert "**0.050**" not in t2 and "| 0.050 |" in t2 and "**0.066**" in t2 and "Depth Anything ViT-L [1]" in t2
    assert "Weight-free baselines (horizon_prior) are shown for reference and not ranked." in t2
    assert "| tiny_net (dabench) | 25.0M | <u>0.500</u>" not in t2
    t3 = (out / "tables" / "table_3.md").read_text()
    assert "| tiny_net (dabench) | 25.0M | 0.500 | – | – | 0.400 | 1.000 | – |" in t3
    assert "horizon_prior" not in t3
    # the synthetic suite matches no paper table: it gets its own table
    syn = (out / "tables" / "suite_synthetic.md").read_text()
    assert "horizon_prior (dabench, baseline)" in syn and "0.260" in syn
    names = {p.name for p in (out / "figures").iterdir()}
    for stem in ("bars_table_2", "bars_table_3", "params_vs_abs_rel", "qualitative_grid", "bars_suite_synthetic"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    assert (out / "figures" / "qualitative_grid.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "figures" / "qualitative_grid.pdf").read_bytes()[:4] == b"%PDF"
    index = (out / "index.md").read_text()
    assert "Qualitative grid — horizon_prior (weight-free baseline) on synthetic-indoor" in index
    for link in _links(out / "index.md"):
        assert (out / link).exists(), link
    assert res.own_records == 4


def test_grid_skipped_with_a_note_when_no_model_loads(tmp_path):
    results = tmp_path / "results"
    write_record(_rec("not_a_model", "kitti", {"abs_rel": 0.3, "delta1": 0.5}), results)
    pub = tmp_path / "published"  # one small published table keeps this test fast
    pub.mkdir()
    (pub / "t12.yaml").write_text(Path(get_published("da1-table12").path).read_text())
    out = tmp_path / "paper"
    generate_paper(out, results, published_dir=pub)
    index = (out / "index.md").read_text()
    assert "Qualitative grid skipped: no record's model could be loaded" in index
    assert "not_a_model" in index and not (out / "figures" / "qualitative_grid.png").exists()


def test_records_for_table_matching():
    t2, t3, t5 = (get_published(i) for i in ("da1-table2", "da1-table3", "da1-table5"))
    zs = _rec("a", "synthetic-outdoor", {}, fallback_for=["kitti"])
    metric_nyu = _rec("b", "nyu", {}, suite="metric-nyu", task="metric")
    metric_sun = _rec("c", "sunrgbd", {}, suite="custom", task="metric")
    recs = [zs, metric_nyu, metric_sun]
    assert records_for_table(recs, t2) == [zs]          # suite zero-shot, fallback datasets included
    assert records_for_table(recs, t3) == [metric_nyu]
    assert records_for_table(recs, t5) == [metric_sun]   # task metric + a Table 5 dataset


def _capture(monkeypatch):
    from dabench.results import figures as figs

    captured = []

    def fake_save(fig, stem, formats=("png", "pdf"), dpi=150):
        fig.canvas.draw()
        captured.append(fig)
        return [Path(f"{stem}.png")]

    monkeypatch.setattr(figs, "save_figure", fake_save)
    return figs, captured


def test_dot_plots_keep_full_names_and_a_legend(monkeypatch):
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    long = "a_model_with_a_very_long_descriptive_name_" * 2
    recs = [_rec(long, "kitti", {"abs_rel": 0.31}), _rec("horizon_prior", "kitti", {"abs_rel": 0.4},
                                                         arch="horizon_prior")]
    table = build_table(recs, published=[get_published("da1-table2")], metrics=["abs_rel"])
    assert figs.bar_charts(table, "abs_rel", "x")
    ax = captured[0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert f"{long} (dabench)" in labels and all(t.get_rotation() == 0 for t in ax.get_yticklabels())
    texts = [t.get_text() for t in ax.texts]
    assert "0.310" in texts and "0.076" in texts  # values printed beside the dots
    lo, hi = ax.get_xlim()
    assert lo > 0.0  # fitted to the data, not started at zero
    legend = [t.get_text() for t in captured[0].legends[0].get_texts()]
    assert legend == ["published (paper)", "measured (dabench)", "weight-free baseline (dabench, not ranked)"]


def test_params_scatter_never_mixes_protocols_and_ticks_every_panel(monkeypatch):
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    rel = build_table([_rec("n", "nyu", {"abs_rel": 0.3}, model_params=2.5e7)], metrics=["abs_rel"])
    met = build_table([_rec("m", "nyu", {"abs_rel": 0.1}, model_params=9.7e7, suite="metric-nyu", task="metric")],
                      metrics=["abs_rel"])
    assert figs.params_scatter([("relative, aligned", rel), ("metric, no alignment", met)], "x")
    axes = [ax for ax in captured[0].axes if ax.get_title()]
    assert len(axes) == 2 and {ax.get_title().split("\n")[1] for ax in axes} == {"relative, aligned",
                                                                                 "metric, no alignment"}
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()]  # every panel has tick labels
        assert not ax.texts  # no point labels to overlap: one legend names the models
    assert sorted(t.get_text() for t in captured[0].legends[0].get_texts()) == ["m (dabench) (97.0M)",
                                                                               "n (dabench) (25.0M)"]


def test_grid_models_side_by_side_at_real_resolution(tmp_path):
    import cv2

    results = tmp_path / "results"
    for m in ("horizon_prior", "constant"):
        write_record(_rec(m, "synthetic-indoor", {"abs_rel": 0.3}, suite="synthetic", arch=m), results)
    out = tmp_path / "paper"
    pub = tmp_path / "published"  # one small published table keeps this test fast
    pub.mkdir()
    (pub / "t12.yaml").write_text(Path(get_published("da1-table12").path).read_text())
    generate_paper(out, results, published_dir=pub, grid_samples=1, grid_models=["constant", "horizon_*"])
    index = (out / "index.md").read_text()
    assert "constant (weight-free baseline), horizon_prior (weight-free baseline) on synthetic-indoor" in index
    img = cv2.imread(str(out / "figures" / "qualitative_grid.png"))
    assert img.shape[1] >= 4 * 126  # four columns, each at least the sample's 126 px width
    generate_paper(out, results, published_dir=pub, grid_samples=1, grid_models=["constant"], grid_colorbar=True)
    with_bars = cv2.imread(str(out / "figures" / "qualitative_grid.png"))
    assert with_bars.shape[1] > 3 * 126 + 2 * 40  # three pictures, two of them with a colorbar
    res = CliRunner().invoke(app, ["paper", "--out", str(out), "--results", str(results), "--no-figures",
                                   "--grid-models", "nope"])
    assert res.exit_code == 0
    res = generate_paper(out, results, published_dir=pub, grid_samples=1, grid_models=["nope"])
    assert any("--grid-models nope matched no record" in n for n in res.notes)


def test_paper_out_that_is_a_file_or_inside_the_results_is_refused(tmp_path):
    """One clear error each (a file was a NotADirectoryError traceback; inside the results, tables were
    written into the input)."""
    import pytest

    from dabench.errors import DataError

    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(DataError, match="is a file"):
        generate_paper(tmp_path / "afile", results, figures=False)
    assert (tmp_path / "afile").read_text() == "mine"
    with pytest.raises(DataError, match="inside the results directory"):
        generate_paper(results / "paper", results, figures=False)
    assert list(results.iterdir()) == []
