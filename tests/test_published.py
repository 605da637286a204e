"""Published numbers (dabench/configs/published): schema, source labels, dataset/metric names, and the
paper's winners. Expected winners below were read off the paper's tables by hand (PAPER.md)."""
from __future__ import annotations

import pytest

from dabench.errors import DataError
from dabench.results.published import get_published, load_published, parse_published
from dabench.results.tables import build_table

CARD_NAMES = {"da2k", "kitti", "nyu", "sintel", "ddad", "eth3d", "diode", "diode-indoor", "sunrgbd", "ibims", "hypersim",
              "vkitti2", "diode-outdoor", "cityscapes", "ade20k", "mean"}
METRIC_NAMES = {"abs_rel", "delta1", "delta2", "delta3", "rmse", "log10", "rmse_log", "miou", "miou_ms",
                "pair_accuracy"}


def _best(table_id: str, dataset: str, metric: str) -> list[str]:
    t = get_published(table_id)
    return build_table([], published=[t], metrics=t.metrics).best_rows(dataset, metric)


def test_every_table_loads_with_a_source():
    tables = load_published()
    assert [t.table for t in tables if t.id.startswith("da1-")] == ["Table 2", "Table 3", "Table 4", "Table 5",
                                                                   "Table 7", "Table 8", "Table 9", "Table 10",
                                                                   "Table 12"]
    assert [t.table for t in tables if t.id.startswith("da2-")] == ["DA-2K table"]
    for t in tables:
        paper = "2401.10891" if t.id.startswith("da1-") else "2406.09414"
        assert "Depth Anything" in t.source and t.table in t.source and paper in t.source
        assert set(t.datasets) <= CARD_NAMES and set(t.metrics) <= METRIC_NAMES
        assert t.rows
        for r in t.rows:
            for ds, vals in r.results.items():
                for m, v in vals.items():
                    if v is None:
                        continue
                    if m.startswith("miou"):
                        assert 0 < v <= 100  # percent, as printed
                    elif m == "rmse":
                        assert 0 < v < 5
                    else:
                        assert 0 < v <= 1


def test_table2_values_and_params():
    t = get_published("da1-table2")
    assert [r.model for r in t.rows] == ["MiDaS v3.1 BEiT-L-512", "Depth Anything ViT-S", "Depth Anything ViT-B",
                                         "Depth Anything ViT-L"]
    assert t.row("Depth Anything ViT-S").params == pytest.approx(24.8e6)
    assert t.row("MiDaS v3.1 BEiT-L-512").value("sintel", "abs_rel") == 0.587
    assert t.row("Depth Anything ViT-L").value("diode", "delta1") == 0.952
    assert t.canonical_dataset("diode-indoor") == "diode"  # suites may name the indoor subset explicitly


@pytest.mark.parametrize("dataset,metric,winners", [
    ("kitti", "abs_rel", ["Depth Anything ViT-L"]),      # .076
    ("kitti", "delta1", ["Depth Anything ViT-L"]),       # .947
    ("nyu", "abs_rel", ["Depth Anything ViT-L"]),        # .043
    ("nyu", "delta1", ["Depth Anything ViT-L"]),         # .981 (MiDaS .980 second)
    ("sintel", "abs_rel", ["Depth Anything ViT-B"]),     # .432 beats ViT-L's .458
    ("sintel", "delta1", ["Depth Anything ViT-L"]),      # .760
    ("ddad", "abs_rel", ["Depth Anything ViT-L"]),       # .230
    ("eth3d", "abs_rel", ["Depth Anything ViT-B"]),      # .126
    ("eth3d", "delta1", ["Depth Anything ViT-S"]),       # .885
    ("diode", "abs_rel", ["Depth Anything ViT-L"]),      # .066
    ("diode", "delta1", ["Depth Anything ViT-L"]),       # .952
])
def test_table2_winners(dataset, metric, winners):
    assert _best("da1-table2", dataset, metric) == winners


def test_table2_second_places():
    t = get_published("da1-table2")
    table = build_table([], published=[t], metrics=t.metrics)
    marks = table.marks()
    col = [(c.dataset, c.metric) for c in table.columns].index(("kitti", "abs_rel"))
    seconds = [table.rows[i].model for (i, j), m in marks.items() if j == col and m == "second"]
    assert seconds == ["Depth Anything ViT-S", "Depth Anything ViT-B"]  # tied at .080


def test_metric_tables_winners():
    for metric in ("delta1", "delta2", "delta3", "abs_rel", "rmse", "log10"):
        assert _best("da1-table3", "nyu", metric) == ["Depth Anything ViT-L"], metric
    # KITTI: δ2 .998 is shared by SwinV2-L, NDDepth and DA; δ3 1.000 by SwinV2-L and DA
    assert _best("da1-table4", "kitti", "delta2") == ["SwinV2-L", "NDDepth", "Depth Anything ViT-L"]
    assert _best("da1-table4", "kitti", "delta3") == ["SwinV2-L", "Depth Anything ViT-L"]
    for metric in ("delta1", "abs_rel", "rmse", "rmse_log"):
        assert _best("da1-table4", "kitti", metric) == ["Depth Anything ViT-L"], metric
    for ds in ("sunrgbd", "ibims", "hypersim", "vkitti2", "diode-outdoor"):
        for metric in ("abs_rel", "delta1"):
            assert _best("da1-table5", ds, metric) == ["Depth Anything ViT-L"], (ds, metric)


def test_segmentation_and_ablation_winners():
    assert _best("da1-table7", "cityscapes", "miou") == ["Depth Anything ViT-L"]      # 84.8
    assert _best("da1-table7", "cityscapes", "miou_ms") == ["Depth Anything ViT-L"]   # 86.2
    assert get_published("da1-table7").row("Segmenter ViT-L").value("cityscapes", "miou") is None  # "–" in the paper
    assert _best("da1-table8", "ade20k", "miou") == ["Depth Anything ViT-L"]          # 59.4
    for ds in ("kitti", "nyu", "sintel", "ddad", "eth3d", "diode"):
        assert _best("da1-table9", ds, "abs_rel") == ["+L_feat"], ds
    assert _best("da1-table10", "cityscapes", "miou") == ["Depth Anything encoder"]
    assert _best("da1-table12", "mean", "abs_rel") == ["alpha = 0.85"]               # .175


@pytest.mark.parametrize("bad,match", [
    ({"id": "x", "table": "T", "datasets": ["nyu"], "metrics": ["abs_rel"], "rows": []}, "missing key 'source'"),
    ({"id": "x", "table": "T", "source": "S", "datasets": ["nyu"], "metrics": ["abs_rel"],
      "rows": [{"model": "m", "results": {"nyu": {"rmse": 1.0}}}]}, "metric 'rmse' not in metrics"),
    ({"id": "x", "table": "T", "source": "S", "datasets": ["nyu"], "metrics": ["abs_rel"],
      "rows": [{"model": "m", "results": {"kitti": {"abs_rel": 1.0}}}]}, "dataset 'kitti' not in datasets"),
    ({"id": "x", "table": "T", "source": "S", "datasets": ["nyu"], "metrics": ["abs_rel"],
      "rows": [{"model": "m", "results": {"nyu": {"abs_rel": "0.1"}}}]}, "is not a number"),
])
def test_parse_errors_name_the_problem(bad, match):
    with pytest.raises(DataError, match=match):
        parse_published({"schema": "dabench.published/1", **bad}, "bad.yaml")


def test_duplicate_ids_are_rejected(tmp_path):
    text = "schema: dabench.published/1\nid: a\ntable: T1\nsource: S\ndatasets: [nyu]\nmetrics: [abs_rel]\nrows: []\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(DataError, match="already used"):
        load_published(tmp_path)
