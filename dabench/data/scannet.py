"""ScanNet as Marigold evaluates it: 800 frames sampled from the ScanNet v2 validation scenes.

Layout (Marigold's ``scannet_val_sampled_800_1`` archive, unpacked under the card's root):
``<root>/<scene>/color/<frame>.jpg`` and ``<root>/<scene>/depth/<frame>.png`` (uint16 millimetres,
0 = no measurement); split rows ``<color> <depth>`` relative to the root
(prs-eth/Marigold src/dataset/scannet_dataset.py:35-53: depth / 1000, range 1e-3..10 m).
"""
from __future__ import annotations

from dabench.data.datasets import Entry, FileDepthDataset, split_rows, split_file_path
from dabench.errors import DataError


class ScannetDataset(FileDepthDataset):
    """ScanNet v2 validation frames listed by ``<color jpg> <depth png>`` rows."""

    @classmethod
    def entries(cls, card, split, root):
        from dabench.data.da2k import safe_relative_path

        out = []
        for row in split_rows(card, split):
            if len(row) < 2:
                raise DataError(f"split file {split_file_path(card, split)}: row {' '.join(row)!r} needs "
                                "'<color image> <depth png>'")
            where = f"split file {split_file_path(card, split)}"
            out.append(Entry(row[0], safe_relative_path(root, row[0], where), (safe_relative_path(root, row[1], where),)))
        return out

    def read_depth(self, e):
        from dabench.data.formats import read_nyu_depth  # the same encoding: uint16 mm, 0 invalid

        return read_nyu_depth(e.depth[0])
