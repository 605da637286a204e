"""The protocol of every suite and dataset as one table (``dabench ls protocols``, the docs' Protocols page).

Each row is what ``resolve_protocol`` gives for a dataset of a suite — alignment, the space it is
scored in, the ground-truth range, the crop, the resolution the alignment is fitted at — with the
size of the split (from the shipped split list; no data needed) and where the protocol comes from
(the suite entry's ``source``, else the suite's).
"""
from __future__ import annotations

import math

COLUMNS = ("suite", "dataset", "alignment", "space", "range (m)", "crop", "fit res", "split", "source")


def _num(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:g}"


def split_size(card: dict, split: str | None) -> str:
    """``"<split> (<entries>)"`` from the card's split list, ``"<split> (scan)"`` for scanned folders."""
    from dabench.data.cards import read_split_file, resolve_split, split_file_path

    split = resolve_split(card, split)
    if card.get("reader") == "synthetic":
        return f"{split} ({card['num_samples'][split]})"
    if card.get("annotations"):
        return f"{split} ({card['annotations']})"
    if not card["split_file"].get(split):
        return f"{split} (scan)"
    rows = read_split_file(split_file_path(card, split))
    with_gt = [r for r in rows if not (len(r) > 1 and r[1] == "None")]  # KITTI rows without ground truth
    return f"{split} ({len(with_gt)})"


def protocol_rows(suites: list[str] | None = None) -> list[dict[str, str]]:
    """One row per (depth or ordinal suite, dataset), suites in name order (segmentation suites have
    no depth protocol and are left out)."""
    from dabench.data import load_card
    from dabench.eval.suites import list_suites, load_suite, resolve_protocol

    rows = []
    for name in suites or list_suites():
        suite = load_suite(name)
        if suite.task == "segmentation":
            continue
        for entry in suite.datasets:
            card = load_card(entry.dataset)
            p = resolve_protocol(suite, entry.dataset, card)
            ordinal = suite.task == "ordinal"
            geometry = suite.task in ("geometry", "boundary")  # each level fits its own (dabench.metrics.geometry)
            rows.append({
                "suite": suite.name, "dataset": entry.dataset,
                "alignment": "- (pair order)" if ordinal else "- (per level)" if geometry else p.alignment,
                "space": "-" if ordinal or geometry else p.score_space,
                "range (m)": "-" if ordinal else f"{_num(p.min_depth)}–{_num(p.max_depth)}",
                "crop": "-" if ordinal else p.crop,
                "fit res": "-" if ordinal or p.alignment == "none" else
                ("full" if p.alignment_max_res is None else f"≤{p.alignment_max_res} px"),
                "split": split_size(card, p.split),
                "source": entry.source or suite.source,
            })
    return rows


def protocol_markdown(rows: list[dict[str, str]]) -> str:
    """The rows as a GitHub Markdown table (the docs' Protocols page)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c]).replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
