"""Which datasets a suite run scores: the ones on disk, the synthetic stand-ins of absent ones (or
a clear error naming the expected layout), and each split's full size."""
from __future__ import annotations

from pathlib import Path

from dabench.eval.suites import Suite


def plan_datasets(suite: Suite, selected: list[str], root,
                   allow_fallback: bool = False) -> tuple[list[tuple[str, dict | None]], list[dict]]:
    """[(dataset, fallback_info)] to evaluate and [(skipped dataset info)] for absent ones.

    With a data root given, an absent dataset is an error (naming the expected folder and layout)
    unless ``allow_fallback``: a mistyped root must not quietly score the synthetic stand-in."""
    from dabench.data import dataset_available, load_card
    from dabench.errors import MissingFileError

    plan: list[tuple[str, dict | None]] = []
    skipped: list[dict] = []
    fallback_for: dict[str, list[str]] = {}
    missing: list[str] = []
    for ds in selected:
        card = load_card(ds)
        if dataset_available(ds, root):
            plan.append((ds, None))
            continue
        fb = card.get("fallback")
        if root is not None and not allow_fallback:
            missing.append(expected_layout(ds, card, root))
            continue
        where = f"under {root / card['root']}" if (root is not None and card.get("root")) else \
            "(no --data-root / $DABENCH_DATA given)"
        reason = f"dataset {ds} not found {where}" + (f"; {fb} evaluated in its place" if fb else "; no fallback")
        skipped.append({"dataset": ds, "reason": reason, "fallback": fb})
        if fb:
            fallback_for.setdefault(fb, []).append(ds)
    if missing:
        raise MissingFileError(f"data root {root}: " + "; ".join(missing)
                               + ". Pass --allow-fallback to score the synthetic stand-ins instead "
                                 "(recorded as fallbacks), or --datasets to pick the sets you have")
    for fb, reals in fallback_for.items():
        existing = [i for i, (d, _) in enumerate(plan) if d == fb]
        if existing:
            plan[existing[0]] = (fb, {"fallback_for": reals})
        else:
            plan.append((fb, {"fallback_for": reals}))
    return plan, skipped


def expected_layout(ds: str, card: dict, root: Path) -> str:
    """What a dataset needs on disk, for the missing-data error."""
    from dabench.data.cards import split_file_path

    folder = root / card["root"] if card.get("root") else root
    need = [f"folder {folder}"]
    if card.get("annotations"):  # e.g. DA-2K's annotations.json
        need.append(f"annotation file {folder / card['annotations']}")
    for split, f in (card.get("split_file") or {}).items():
        if f and not split_file_path(card, split).is_file():
            need.append(f"split list {split_file_path(card, split)}")
    return f"dataset {ds} not found: expected " + " and ".join(need) + f" (layout: datasets/{ds}.yaml, notes)"


def split_size(ds: str, split, root, dataset, limit) -> int:
    """Entries of the whole split (before ``limit``): decides whether a record is complete."""
    from dabench.data import build_dataset

    n = len(dataset) + int(getattr(dataset, "skipped_missing", 0) or 0)
    if limit is None or n < int(limit):
        return n
    full = build_dataset(ds, split=split, data_root=root, skip_missing=True)
    return len(full) + int(getattr(full, "skipped_missing", 0) or 0)
