"""Datasets for dabench: on-disk benchmark readers, YAML dataset cards and the synthetic world.

- ``build_dataset(name, split=None, data_root=None, limit=None, skip_missing=False, **kw)``: a torch
  ``Dataset`` of sample dicts (``image`` uint8 H×W×3, ``depth`` float32 metres, ``valid`` bool,
  ``name``, optional ``intrinsics`` 3×3, ``labels`` int64, ``sky`` bool) with ``.card`` and
  ``.skipped_missing``.
- ``list_datasets()``, ``load_card(name)``, ``dataset_available(name, data_root=None)``.
- ``dabench.data.train_sets``: the paper's labelled training sets; ``dabench.data.sources``:
  ``wds:`` / ``list:`` / ``folder:`` image sources for training;
- ``dabench.data.formats``: one reader per on-disk depth format; ``dabench.data.crops``: eval crops;
  ``dabench.data.synthetic``: the procedural world (``render_batch``, ``SEMANTIC_CLASSES``).
"""
from __future__ import annotations

from dabench.data.cards import list_datasets, load_card
from dabench.data.datasets import READERS, build_dataset, dataset_available

# Depth Anything's labelled training sets (dabench/data/train_sets.py), imported on first use
for _name, _attr in (("blendedmvs", "BlendedMvsDataset"), ("diml-indoor", "DimlIndoorDataset"),
                     ("diml-outdoor", "DimlOutdoorDataset"), ("hrwsi", "HrwsiDataset"), ("irs", "IrsDataset"),
                     ("megadepth", "MegaDepthDataset"), ("tartanair", "TartanAirDataset")):
    READERS.register(_name, f"dabench.data.train_sets:{_attr}")

__all__ = ["build_dataset", "dataset_available", "list_datasets", "load_card", "READERS"]
