"""Scoring segmentors: ``Runner.test`` over an mmseg test dataloader with ``DabenchIoUMetric``, and
the majority-class baseline (the class covering most labelled training pixels, predicted everywhere)."""
from __future__ import annotations

import copy
import shutil
import tempfile
import uuid

from dabench.errors import ConfigError
from dabench.finetune.seg.config import import_mmseg, leaf_datasets, mmseg_scope

# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def _runner_for_test(model, test_dataloader: dict, work_dir: str, *, tta: bool = False,
                     log_level: str = "WARNING"):
    from mmengine.runner import Runner

    if tta:
        from mmseg.registry import MODELS

        model = MODELS.build(dict(type="SegTTAModel", module=model))
    return Runner(model=model, work_dir=work_dir, test_dataloader=test_dataloader,
                  test_cfg=dict(type="TestLoop"), test_evaluator=dict(type="DabenchIoUMetric"),
                  default_scope="mmseg", log_level=log_level, experiment_name=f"dabench-seg-eval-{uuid.uuid4().hex[:8]}",
                  env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")), randomness=dict(seed=0))


def evaluate(model, test_dataloader: dict, *, tta: bool = False, work_dir: str | None = None,
             log_level: str = "WARNING") -> dict[str, float]:
    """Run ``model`` (an mmseg segmentor) over ``test_dataloader`` with ``Runner.test``; returns the
    ``DabenchIoUMetric`` dict (``miou``/``macc``/``aacc`` in percent, ``IoU.<class>``)."""
    import_mmseg()
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="dabench-seg-eval-")
        work_dir = tmp
    try:
        runner = _runner_for_test(model, test_dataloader, work_dir, tta=tta, log_level=log_level)
        return dict(runner.test())
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def majority_class(dataset_cfg: dict, num_classes: int, max_images: int = 2000) -> int:
    """The class covering most labelled pixels of a (training) dataset, read through mmseg's dataset
    and ``DabenchLoadAnnotations`` (so ``reduce_zero_label`` etc. apply). Up to ``max_images`` images."""
    import numpy as np
    from mmseg.registry import DATASETS

    import_mmseg()
    counts = np.zeros(num_classes, dtype=np.int64)
    for ds_cfg in leaf_datasets(copy.deepcopy(dataset_cfg)):
        ds_cfg = dict(ds_cfg)
        ds_cfg["pipeline"] = [dict(type="DabenchLoadAnnotations", num_classes=num_classes)]
        with mmseg_scope():
            ds = DATASETS.build(ds_cfg)
        for i in range(min(len(ds), max_images)):
            seg = ds[i]["gt_seg_map"]
            seg = seg[seg != 255]
            counts += np.bincount(seg.ravel().astype(np.int64), minlength=num_classes)[:num_classes]
    if counts.sum() == 0:
        raise ConfigError("cannot find the majority class: the training labels are all ignore (255)")
    return int(counts.argmax())


def synthetic_train_split(test_dataset: dict) -> dict:
    """The training scenes of a synthetic test set's family (the majority-class baseline's split):
    as many as the card's ``segmentation.train_scenes`` (what the tiny preset trains on)."""
    from dabench.data.cards import load_card

    family = test_dataset.get("family", "outdoor")
    seg = load_card(f"synthetic-{family}")["segmentation"]
    return dict(type="DabenchSyntheticSegDataset", family=family, split=seg["train_split"],
                num_samples=int(seg["train_scenes"]), size=tuple(test_dataset.get("size", (84, 84))),
                seed=int(test_dataset.get("seed", 0)))


def train_split_for(test_dataset: dict, train_dataset: dict) -> dict:
    """The training split that matches ``test_dataset`` (whose majority class is the baseline):
    for one synthetic family its own ``train`` scenes, otherwise (a mix of families, as the tiny
    synthetic config's held-out split, or real data) the config's training set."""
    if test_dataset.get("type") == "DabenchSyntheticSegDataset":
        return synthetic_train_split(test_dataset)
    return train_dataset


def majority_model(class_id: int, num_classes: int, data_preprocessor: dict):
    import_mmseg()
    from mmseg.registry import MODELS

    with mmseg_scope():
        return MODELS.build(dict(type="MajorityClassSegmentor", class_id=class_id, num_classes=num_classes,
                                 data_preprocessor=copy.deepcopy(data_preprocessor)))


def with_per_class(metrics: dict) -> dict:
    """mmseg's IoUMetric output as dabench's summary (mIoU, mAcc, aAcc) plus ``per_class`` IoU."""
    from dabench.finetune.seg.metric import split_metrics

    summary, per_class = split_metrics(metrics)
    return {**summary, "per_class": per_class}
