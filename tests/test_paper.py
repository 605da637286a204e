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
    for stem in ("bars_table_2", "bars_table_3", "params_vs_abs_rel", "qualitative_grid"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    # the synthetic suite holds one value: a number, not a figure
    assert "bars_suite_synthetic.png" not in names
    assert any(n.startswith("Per-dataset values — Suite synthetic") and "single value" in n for n in res.notes)
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
    written, left_out = figs.params_scatter([("relative, aligned", rel), ("metric, no alignment", met)], "x",
                                            min_models=1)
    assert written and left_out == []
    axes = [ax for ax in captured[0].axes if ax.get_title()]
    assert len(axes) == 2 and {ax.get_title().split("\n")[1] for ax in axes} == {"relative, aligned",
                                                                                 "metric, no alignment"}
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()]  # every panel has tick labels
        assert not ax.texts  # no point labels to overlap: one legend names the models
    assert sorted(t.get_text() for t in captured[0].legends[0].get_texts()) == ["m (dabench) (97.0M)",
                                                                               "n (dabench) (25.0M)"]


def _xticks(ax) -> list[str]:
    lo, hi = ax.get_xlim()
    return [t.get_text() for t, v in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= v <= hi]


def test_params_scatter_ticks_are_round_and_small_panels_are_left_out(monkeypatch):
    """Ticks are round numbers (a 225.9K model never sits under a '208.1K' tick); panels with fewer
    than three models are left out and named."""
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    recs = [_rec(m, "synthetic-indoor", {"abs_rel": v}, model_params=p, suite="synthetic", checkpoint=f"/x/{m}")
            for m, v, p in (("teacher", 0.30, 225_900), ("student", 0.32, 208_100), ("wide", 0.28, 1_250_000))]
    recs += [_rec("teacher", "synthetic-outdoor", {"abs_rel": 0.4}, model_params=225_900, suite="synthetic"),
             _rec("student", "synthetic-outdoor", {"abs_rel": 0.5}, model_params=208_100, suite="synthetic")]
    table = build_table(recs, metrics=["abs_rel"])
    written, left_out = figs.params_scatter([("relative", table)], "x")
    assert written and len(left_out) == 1 and left_out[0].startswith("Synthetic outdoor")
    axes = [ax for ax in captured[0].axes if ax.get_title()]
    assert len(axes) == 1 and axes[0].get_title().startswith("Synthetic indoor")
    ax = axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 3  # one star per model
    ticks = _xticks(ax)
    # every label is a round number with a 1-2 significant digit mantissa, in the plotted order
    assert ticks == [figs.round_params(v) for v in ax.get_xticks() if ax.get_xlim()[0] <= v <= ax.get_xlim()[1]]
    assert ticks == ["200K", "500K", "1M", "2M"], ticks
    assert not {"208.1K", "225.9K"} & set(ticks)
    legend = sorted(t.get_text() for t in captured[0].legends[0].get_texts())
    assert legend == ["student (dabench) (208.1K)", "teacher (dabench) (225.9K)", "wide (dabench) (1.2M)"]
    # nothing left: no figure, every panel named
    written, left_out = figs.params_scatter([("relative", table)], "y", min_models=4)
    assert written is None and len(left_out) == 2


def test_param_ticks_are_round_and_never_fewer_than_three():
    from dabench.results.figures import param_ticks, round_params

    assert [round_params(t) for t in param_ticks(24.8e6 / 2, 345e6 * 2)] == ["30M", "100M", "300M"]
    assert [round_params(t) for t in param_ticks(1e5, 2e9)] == ["100K", "1M", "10M", "100M", "1B"]
    for lo in (1.1e3, 9e4, 2.2e5, 7.7e6, 3.3e8):  # any 4x range (the scatter's narrowest) gets three
        ticks = param_ticks(lo, 4 * lo)
        assert 3 <= len(ticks) <= 7 and all(lo <= t <= 4 * lo for t in ticks)


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


def _dots(ax) -> list[tuple[float, float, str]]:
    """(x, y, colour) of every dot of a dot-plot panel (the row guides are lines without markers)."""
    from matplotlib.colors import to_hex

    return [(float(line.get_xdata()[0]), float(line.get_ydata()[0]), to_hex(line.get_color()))
            for line in ax.lines if line.get_marker() == "o"]


def _row_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels() if t.get_text()]


def test_dot_plot_panels_show_only_rows_with_a_value(monkeypatch):
    """Table 2 with own rows on stand-in datasets: published rows only in the paper's panels, own rows
    only in the synthetic panels; each panel's dots are its rows."""
    from dabench.results.figures import BASELINE_COLOR, PUBLISHED_COLOR
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    recs = [_rec(m, ds, {"abs_rel": v}, arch=m) for m, ds, v in
            (("constant", "synthetic-indoor", 0.366), ("horizon_prior", "synthetic-indoor", 0.282),
             ("constant", "synthetic-outdoor", 1.316), ("horizon_prior", "synthetic-outdoor", 0.349))]
    t2 = get_published("da1-table2")
    table = build_table(recs, published=[t2], metrics=t2.metrics, dataset_order=t2.datasets)
    cols = figs.figure_columns(table)
    assert [c.dataset for c in cols] == ["kitti", "nyu", "sintel", "ddad", "eth3d", "diode", "synthetic-indoor",
                                         "synthetic-outdoor"] and {c.metric for c in cols} == {"abs_rel"}
    assert figs.bar_charts(table, None, "x", columns=cols)
    axes = captured[0].axes
    assert [ax.get_title() for ax in axes][::3] == ["KITTI AbsRel↓", "DDAD AbsRel↓", "Synthetic indoor (rooms) AbsRel↓"]
    published = [r.label for r in table.rows if r.kind == "published"]
    baselines = ["constant (dabench, baseline)", "horizon_prior (dabench, baseline)"]
    for ax in axes[:6]:
        dots = _dots(ax)
        assert len(dots) == 4 and {c for _, _, c in dots} == {PUBLISHED_COLOR}
    for k in (0, 3):  # the first panel of a line names its rows; its neighbours show the same rows
        assert _row_labels(axes[k]) == published
    assert _row_labels(axes[1]) == [] and _row_labels(axes[4]) == []
    assert _row_labels(axes[6]) == baselines and _row_labels(axes[7]) == []
    assert sorted(x for x, _, _ in _dots(axes[6])) == [0.282, 0.366]
    assert {c for _, _, c in _dots(axes[7])} == {BASELINE_COLOR}
    assert not any(t.get_text() == "–" for ax in axes for t in ax.texts)  # no empty rows drawn


def test_table_10_figure_draws_the_miou_panels_and_table_7_both_scales(monkeypatch):
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    for tid in ("da1-table10", "da1-table7"):
        t = get_published(tid)
        table = build_table([], published=[t], metrics=t.metrics, dataset_order=t.datasets)
        assert figs.bar_charts(table, None, "x", columns=figs.figure_columns(table))
    t10, t7 = captured
    assert [ax.get_title() for ax in t10.axes] == ["NYUv2 AbsRel↓", "KITTI AbsRel↓", "Cityscapes mIoU (%)↑",
                                                   "ADE20K mIoU (%)↑"]
    assert [sorted(x for x, _, _ in _dots(ax)) for ax in t10.axes] == [[0.056, 0.077], [0.046, 0.054],
                                                                      [82.1, 84.8], [52.4, 59.4]]
    # Table 7's title promises single- and multi-scale: both are drawn (Segmenter has multi-scale only)
    assert [ax.get_title() for ax in t7.axes] == ["Cityscapes mIoU (%)↑", "Cityscapes mIoU (MS) (%)↑"]
    assert [len(_dots(ax)) for ax in t7.axes] == [6, 7]
    assert "Segmenter ViT-L" not in _row_labels(t7.axes[0]) and _row_labels(t7.axes[1])[0] == "Segmenter ViT-L"


def test_loss_names_are_mathtext(monkeypatch):
    from dabench.results.figures import mathtext
    from dabench.results.tables import build_table

    assert mathtext("L_l only") == r"$L_{\mathrm{l}}$ only" and mathtext("+L_feat") == r"+$L_{\mathrm{feat}}$"
    assert mathtext("ViT-L") == "ViT-L" and mathtext("horizon_prior") == "horizon_prior"
    assert mathtext("a $5 model") == r"a \$5 model"
    figs, captured = _capture(monkeypatch)  # the fake save draws the figure: the mathtext parses
    t9 = get_published("da1-table9")
    table = build_table([], published=[t9], metrics=t9.metrics, dataset_order=t9.datasets)
    assert figs.bar_charts(table, "abs_rel", "x")
    assert _row_labels(captured[0].axes[0]) == [r"$L_{\mathrm{l}}$ only", r"+$L_{\mathrm{u}}$",
                                                "+strong perturbation", r"+$L_{\mathrm{feat}}$"]


def test_single_values_are_not_a_figure(monkeypatch, tmp_path):
    """One value per panel: no figure (a note says so); one single-value panel among others: an axis
    from 0, not a window of ±0.1 % around the value."""
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    one = build_table([_rec("metric_student", "synthetic-indoor", {"abs_rel": 0.276}, suite="metric-synthetic",
                            task="metric")], metrics=["abs_rel"])
    assert figs.bar_charts(one, None, "x", columns=figs.figure_columns(one)) is None and not captured
    mixed = build_table([_rec("a", "nyu", {"abs_rel": 0.276}), _rec("a", "kitti", {"abs_rel": 0.3}),
                         _rec("b", "kitti", {"abs_rel": 0.2})], metrics=["abs_rel"])
    assert figs.bar_charts(mixed, "abs_rel", "x")
    single = next(ax for ax in captured[0].axes if ax.get_title().startswith("NYU"))
    assert len(_dots(single)) == 1 and single.get_xlim()[0] == 0.0 and single.get_xlim()[1] > 0.276 * 1.3
    results = tmp_path / "results"
    write_record(one.rows and _rec("metric_student", "synthetic-indoor", {"abs_rel": 0.276},
                                   suite="metric-synthetic", task="metric"), results)
    pub = tmp_path / "published"
    pub.mkdir()
    res = generate_paper(tmp_path / "paper", results, published_dir=pub, grid=False)
    assert any("every panel would show a single value" in n for n in res.notes)
    assert not (tmp_path / "paper" / "figures" / "bars_suite_metric_synthetic.png").exists()


def test_majority_class_is_drawn_as_a_baseline(monkeypatch):
    from dabench.results.figures import BASELINE_COLOR, OWN_COLOR
    from dabench.results.tables import build_table

    figs, captured = _capture(monkeypatch)
    recs = [_rec(m, "synthetic", {"miou": v, "aacc": 0.5}, suite="finetune-seg", task="segmentation")
            for m, v in (("tiny_seg", 31.0), ("majority_class", 12.5))]
    table = build_table(recs, metrics=["miou", "aacc"])
    assert [r.baseline for r in table.rows] == [False, True] or [r.baseline for r in table.rows] == [True, False]
    assert figs.bar_charts(table, None, "x", columns=figs.figure_columns(table))
    colours = {x: c for x, _, c in _dots(captured[0].axes[0])}
    assert colours == {31.0: OWN_COLOR, 12.5: BASELINE_COLOR}
    legend = [t.get_text() for t in captured[0].legends[0].get_texts()]
    assert legend == ["measured (dabench)", "weight-free baseline (dabench, not ranked)"]


def test_default_grid_shows_several_models_with_two_line_headers(monkeypatch, tmp_path):
    from dabench.results.paper import qualitative_grid_for_records

    figs, captured = _capture(monkeypatch)
    recs = [_rec(m, "synthetic-indoor", {"abs_rel": v}, suite="synthetic", arch=m)
            for m, v in (("constant", 0.37), ("horizon_prior", 0.28), ("not_a_model", 0.1))]
    written, title = qualitative_grid_for_records(recs, tmp_path / "g", n=3)
    assert written and title.startswith("horizon_prior (weight-free baseline), constant (weight-free baseline)")
    fig = captured[0]
    assert len(fig.axes) == 3 * 4  # 3 samples x (image, ground truth, two models)
    heads = [ax.get_title() for ax in fig.axes[:4]]
    assert heads == ["image", "ground truth", "horizon_prior\nrelative disparity", "constant\nrelative disparity"]
    # a long model name still fits on two lines: the columns are at least GRID_MIN_WIDTH px wide
    import numpy as np

    s = {"image": np.zeros((96, 126, 3), np.uint8), "depth": np.ones((96, 126), np.float32), "name": "s0"}
    name = "depth_anything_v2_vits14_student_finetuned"
    figs.qualitative_grid([s], {name: [np.ones((96, 126), np.float32)]}, "disparity", tmp_path / "h", "t")
    assert captured[1].axes[2].get_title() == f"{name}\nrelative disparity"
    w_px = captured[1].axes[2].get_window_extent().width
    assert w_px >= figs.GRID_MIN_WIDTH * 0.9
