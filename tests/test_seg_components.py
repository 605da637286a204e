"""dabench.finetune.seg building blocks: the mmcv-lite shim, the Depth Anything mmseg backbone,
label checks, the synthetic mmseg dataset, DabenchIoUMetric and the majority-class segmentor."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dabench.errors import CheckpointError, DataError, MissingFileError

pytest.importorskip("mmseg")


@pytest.fixture(scope="module")
def mm():
    """The seg fine-tuning helpers these tests use, with mmseg imported and dabench's parts registered."""
    from types import SimpleNamespace

    from dabench.finetune.seg import config, evaluate

    config.import_mmseg()
    return SimpleNamespace(mmseg_scope=config.mmseg_scope, load_config=config.load_config,
                           resolve_config=config.resolve_config,
                           majority_model=evaluate.majority_model)


# ------------------------------------------------------------------ mmcv.ops shim
def test_shim_provides_pure_point_sample_and_clear_errors(mm):
    import torch.nn.functional as F

    from dabench.finetune.seg.mmcv_compat import MmcvOpsUnavailable, ensure_mmcv_ops, full_mmcv_available

    if full_mmcv_available():
        pytest.skip("full mmcv installed: the shim is a no-op")
    assert ensure_mmcv_ops() is False  # idempotent: already installed by import_mmseg
    from mmcv.ops import CrissCrossAttention, point_sample

    feats = torch.randn(2, 3, 7, 9)
    pts = torch.rand(2, 5, 2)
    ref = F.grid_sample(feats, (2 * pts - 1).unsqueeze(2), align_corners=False).squeeze(3)
    assert torch.allclose(point_sample(feats, pts, align_corners=False), ref, atol=1e-6)
    with pytest.raises(MmcvOpsUnavailable, match="mmcv-full"):
        CrissCrossAttention(16)
    import mmcv.ops

    with pytest.raises(MmcvOpsUnavailable, match="compiled ops"):
        mmcv.ops.sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))


# ------------------------------------------------------------------ backbone
def _official_pth(tmp_path: Path, arch="da2_test", name="depth_anything_v2_test.pth") -> tuple[Path, dict]:
    from dabench.models import create_model

    torch.manual_seed(3)
    sd = create_model(arch).state_dict()
    path = tmp_path / name
    torch.save(sd, path)
    return path, sd


def test_backbone_taps_shapes_and_non_multiple_inputs(mm):
    from mmseg.registry import MODELS

    with mm.mmseg_scope():
        bb = MODELS.build(dict(type="DepthAnythingEncoder", arch="da2_test"))
    assert bb.out_indices == [1, 3, 4, 5] and bb.embed_dim == 32
    outs = bb(torch.randn(2, 3, 70, 84))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 5, 6)] * 4
    outs = bb(torch.randn(1, 3, 60, 75))  # resampled to 56x70 -> 4x5 tokens
    assert tuple(outs[0].shape) == (1, 32, 4, 5)
    v1 = MODELS.build(dict(type="DepthAnythingEncoder", arch="da1_test"))
    assert v1.out_indices == [0, 1, 2, 3]  # V1 taps the last four of its 4 blocks


def test_backbone_loads_official_pth_and_dabench_safetensors(mm, tmp_path):
    from mmseg.registry import MODELS

    from dabench.finetune.seg.backbone import infer_arch
    from dabench.models import create_model, save_checkpoint

    path, sd = _official_pth(tmp_path)
    assert infer_arch(path) == "da2_test"  # "v2" in the file name picks V2 over the same-shaped V1 test model
    bb = MODELS.build(dict(type="DepthAnythingEncoder", arch="da2_test", init=str(path)))
    enc = bb.encoder.state_dict()
    assert torch.equal(enc["cls_token"], sd["pretrained.cls_token"])
    assert torch.equal(enc["blocks.3.attn.qkv.weight"], sd["pretrained.blocks.3.attn.qkv.weight"])
    assert not any(k.startswith("depth_head") for k in bb.state_dict())

    torch.manual_seed(5)
    model = create_model("da2_test")
    st = save_checkpoint(model, tmp_path / "student.safetensors", arch="da2_test")
    assert infer_arch(st) == "da2_test"
    bb2 = MODELS.build(dict(type="DepthAnythingEncoder", arch="da2_test", init=str(st)))
    assert torch.equal(bb2.encoder.pos_embed, model.pretrained.pos_embed)


def test_backbone_rejects_wrong_checkpoints(mm, tmp_path):
    from mmseg.registry import MODELS

    path, sd = _official_pth(tmp_path)
    with pytest.raises(CheckpointError, match="da2_test"):  # file belongs to da2_test, config asks da1_vits14
        MODELS.build(dict(type="DepthAnythingEncoder", arch="da2_vits14", init=str(path)))
    bad = {k: v for k, v in sd.items() if not k.startswith("pretrained.")}
    torch.save(bad, tmp_path / "nohead.pth")
    with pytest.raises(CheckpointError, match="nohead.pth"):
        MODELS.build(dict(type="DepthAnythingEncoder", arch="da2_test", init=str(tmp_path / "nohead.pth")))
    with pytest.raises(MissingFileError):
        MODELS.build(dict(type="DepthAnythingEncoder", arch="da2_test", init=str(tmp_path / "absent.pth")))


def test_tiny_segmentor_trains_one_step(mm):
    """EncoderDecoder + Feature2Pyramid + UPerHead from the tiny config: loss goes down on one batch."""
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    cfg = mm.load_config(mm.resolve_config("synthetic", "upernet", "tiny"))
    from mmengine.model import revert_sync_batchnorm

    with mm.mmseg_scope():
        model = revert_sync_batchnorm(MODELS.build(cfg.model))  # one process: SyncBN layers as BN
    torch.manual_seed(0)
    imgs = [torch.randint(0, 255, (3, 70, 70), dtype=torch.uint8) for _ in range(2)]
    samples = []
    for _ in imgs:
        s = SegDataSample(metainfo=dict(img_shape=(70, 70), ori_shape=(70, 70), pad_shape=(70, 70)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 13, (1, 70, 70)))
        samples.append(s)
    data = model.data_preprocessor(dict(inputs=imgs, data_samples=samples), True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = sum(v for k, v in model.loss(**data).items() if "loss" in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------ labels and datasets
def _write_pair(d: Path, name: str, img_hw=(28, 28), label=None):
    import cv2

    (d / "img").mkdir(parents=True, exist_ok=True)
    (d / "ann").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(d / "img" / f"{name}.png"), np.zeros((*img_hw, 3), np.uint8))
    if label is not None:
        cv2.imwrite(str(d / "ann" / f"{name}.png"), label)
    return dict(img_path=str(d / "img" / f"{name}.png"), seg_map_path=str(d / "ann" / f"{name}.png"),
                reduce_zero_label=False, seg_fields=[], label_map=None)


def _load(mm, info, num_classes=5):
    from mmseg.registry import TRANSFORMS

    with mm.mmseg_scope():
        load_img = TRANSFORMS.build(dict(type="LoadImageFromFile"))
        load_ann = TRANSFORMS.build(dict(type="DabenchLoadAnnotations", num_classes=num_classes))
    return load_ann(load_img(dict(info)))


def test_label_checks_name_the_file(mm, tmp_path):
    ok = np.full((28, 28), 2, np.uint8)
    ok[0, 0] = 255
    out = _load(mm, _write_pair(tmp_path, "ok", label=ok))
    assert out["gt_seg_map"].shape == (28, 28)

    bad_ids = ok.copy()
    bad_ids[3, 3] = 7
    with pytest.raises(DataError, match=r"bad_ids\.png.*\[7\].*5 classes"):
        _load(mm, _write_pair(tmp_path, "bad_ids", label=bad_ids))
    with pytest.raises(DataError, match=r"small\.png.*does not match"):
        _load(mm, _write_pair(tmp_path, "small", label=np.zeros((14, 28), np.uint8)))
    with pytest.raises(DataError, match=r"rgb\.png.*single-channel"):
        _load(mm, _write_pair(tmp_path, "rgb", label=np.zeros((28, 28, 3), np.uint8)))
    with pytest.raises(MissingFileError, match=r"missing\.png"):
        _load(mm, _write_pair(tmp_path, "missing", label=None))


def test_synthetic_dataset_layout_classes_and_held_out_split(mm):
    from mmseg.registry import DATASETS

    from dabench.data.synthetic import SEMANTIC_CLASSES, SyntheticDataset

    pipe = [dict(type="LoadImageFromFile"), dict(type="DabenchLoadAnnotations", num_classes=len(SEMANTIC_CLASSES)),
            dict(type="PackSegInputs")]
    with mm.mmseg_scope():
        ds = DATASETS.build(dict(type="DabenchSyntheticSegDataset", family="outdoor", split="test", num_samples=3,
                                 size=(42, 56), pipeline=pipe))
    assert len(ds) == 3 and ds.metainfo["classes"] == tuple(SEMANTIC_CLASSES)
    item = ds[1]
    ref = SyntheticDataset("outdoor", 3, (42, 56), 0, "test")[1]
    assert tuple(item["inputs"].shape) == (3, 42, 56)
    assert np.array_equal(item["data_samples"].gt_sem_seg.data[0].numpy(), ref["labels"])
    assert np.array_equal(item["inputs"].numpy()[::-1].transpose(1, 2, 0), ref["image"])  # BGR on disk
    assert Path(ds.data_root, "done.json").is_file()


# ------------------------------------------------------------------ metric
def _reference(preds, gts, n, ignore=255):
    inter = np.zeros(n)
    union = np.zeros(n)
    label = np.zeros(n)
    for p, g in zip(preds, gts):
        keep = g != ignore
        for c in range(n):
            pc, gc = (p == c) & keep, (g == c) & keep
            inter[c] += (pc & gc).sum()
            union[c] += (pc | gc).sum()
            label[c] += gc.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
        acc = inter / label
    return {"miou": np.nanmean(iou) * 100, "macc": np.nanmean(acc) * 100, "aacc": inter.sum() / label.sum() * 100,
            "iou": iou * 100}


def test_iou_metric_matches_numpy_reference_and_mmseg(mm):
    from mmengine.structures import PixelData
    from mmseg.evaluation.metrics import IoUMetric
    from mmseg.registry import METRICS
    from mmseg.structures import SegDataSample

    rng = np.random.default_rng(0)
    n = 4
    classes = ("a", "b", "c", "d")
    gts = [rng.integers(0, 3, (9, 11)) for _ in range(3)]  # class d never in labels
    for g in gts:
        g[rng.random(g.shape) < 0.2] = 255
    preds = [np.where(rng.random(g.shape) < 0.6, np.where(g == 255, 0, g), rng.integers(0, 3, g.shape)) for g in gts]
    samples = []
    for p, g in zip(preds, gts):
        s = SegDataSample()
        s.pred_sem_seg = PixelData(data=torch.from_numpy(p)[None])
        s.gt_sem_seg = PixelData(data=torch.from_numpy(g)[None])
        samples.append(s.to_dict())
    ours = METRICS.build(dict(type="DabenchIoUMetric"))
    theirs = IoUMetric()
    for m in (ours, theirs):
        m.dataset_meta = {"classes": classes}
        m.process({}, samples)
    got = ours.evaluate(len(samples))
    mm_res = theirs.evaluate(len(samples))
    ref = _reference(preds, gts, n)
    for k in ("miou", "macc", "aacc"):
        assert got[k] == pytest.approx(ref[k], abs=1e-6)
    assert got["miou"] == pytest.approx(mm_res["mIoU"], abs=0.01)  # mmseg rounds to 2 decimals
    assert got["aacc"] == pytest.approx(mm_res["aAcc"], abs=0.01)
    assert got["IoU.a"] == pytest.approx(ref["iou"][0], abs=1e-6)
    assert np.isnan(got["IoU.d"])  # absent from labels and predictions
    # unrounded: mmseg's own formulas on the very areas DabenchIoUMetric summed
    per_image = [IoUMetric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(g), n, 255)
                 for p, g in zip(preds, gts)]
    raw = IoUMetric.total_area_to_metrics(*[sum(a) for a in zip(*per_image)], ["mIoU"])
    assert got["miou"] == pytest.approx(float(np.nanmean(np.asarray(raw["IoU"], np.float64))) * 100, abs=1e-3)
    assert got["macc"] == pytest.approx(float(np.nanmean(np.asarray(raw["Acc"], np.float64))) * 100, abs=1e-3)
    assert got["aacc"] == pytest.approx(float(raw["aAcc"]) * 100, abs=1e-3)
    from dabench.finetune.seg.metric import split_metrics

    summary, per_class = split_metrics({f"test/{k}": v for k, v in got.items()})
    assert set(summary) == {"miou", "macc", "aacc"} and per_class["d"] is None


def test_majority_class_segmentor_predicts_one_class(mm):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    cfg = mm.load_config(mm.resolve_config("synthetic", "upernet", "tiny"))
    model = mm.majority_model(2, 5, cfg.model.data_preprocessor)
    s = SegDataSample(metainfo=dict(img_shape=(70, 70), ori_shape=(30, 40), pad_shape=(70, 70),
                                    padding_size=[0, 0, 0, 0]))
    s.gt_sem_seg = PixelData(data=torch.zeros(1, 30, 40, dtype=torch.long))
    out = model.test_step(dict(inputs=[torch.zeros(3, 70, 70, dtype=torch.uint8)], data_samples=[s]))
    assert out[0].pred_sem_seg.data.shape[-2:] == (30, 40)
    assert bool((out[0].pred_sem_seg.data == 2).all())


def test_synthetic_held_out_split_holds_both_families_and_scores_indoor_classes(mm):
    """The tiny synthetic config's held-out test split mixes indoor and outdoor scenes, so
    indoor-only classes get an IoU (not null). Scored with the majority-class segmentor through the
    same evaluation as `finetune seg`, against per-class IoU counted with numpy on the label maps."""
    import copy

    from dabench.data.synthetic import CLASS_ID, SEMANTIC_CLASSES, SyntheticDataset
    from dabench.finetune.seg.config import leaf_datasets
    from dabench.finetune.seg.evaluate import evaluate
    from dabench.finetune.seg.metric import split_metrics
    from dabench.finetune.seg.train import held_out_split

    cfg = mm.load_config(mm.resolve_config("synthetic", "upernet", "tiny"))
    assert sorted(held_out_split(cfg)["families"]) == ["indoor", "outdoor"]
    loader = copy.deepcopy(cfg.test_dataloader.to_dict())
    test_sets = list(leaf_datasets(loader["dataset"]))
    assert sorted(d["family"] for d in test_sets) == ["indoor", "outdoor"]
    assert {d["split"] for d in test_sets} == {"test"}
    size = (42, 42)
    for d in test_sets:  # two scenes per family, small: the split definition is what is tested
        d.update(num_samples=2, size=size)
    labels = np.stack([SyntheticDataset(d["family"], 2, size, 0, "test")[i]["labels"]
                       for d in test_sets for i in range(2)])
    indoor_only = [CLASS_ID[c] for c in ("floor", "wall", "ceiling")]
    assert all((labels == c).any() for c in indoor_only) and (labels == CLASS_ID["road"]).any()

    n, cls = len(SEMANTIC_CLASSES), CLASS_ID["road"]
    model = mm.majority_model(cls, n, cfg.model.data_preprocessor)
    model.dataset_meta = {"classes": tuple(SEMANTIC_CLASSES)}
    summary, per_class = split_metrics(evaluate(model, loader))
    valid = labels != 255
    for c, name in enumerate(SEMANTIC_CLASSES):  # predicting `cls` everywhere: IoU 0 for any other labelled class
        present = bool((labels[valid] == c).any())
        expect = (100.0 * (labels[valid] == c).sum() / valid.sum()) if c == cls else (0.0 if present else None)
        if expect is None:
            assert per_class[name] is None, name
        else:
            assert per_class[name] == pytest.approx(expect, abs=1e-6), name
    assert all(per_class[SEMANTIC_CLASSES[c]] is not None for c in indoor_only)


def test_cityscapes_layout_through_the_suite_protocol(mm, tmp_path):
    """mmseg's CityscapesDataset on the standard layout, as the seg-cityscapes suite builds it."""
    import cv2
    from mmseg.registry import DATASETS

    from dabench.finetune.seg.suite import _available, dataset_protocol

    city = "aachen"
    img_dir = tmp_path / "cityscapes" / "leftImg8bit" / "val" / city
    ann_dir = tmp_path / "cityscapes" / "gtFine" / "val" / city
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    labels = np.full((28, 56), 255, np.uint8)
    labels[:, :20] = 0
    labels[:, 30:] = 18
    for i, lab in enumerate([labels, np.where(labels == 18, 25, labels).astype(np.uint8)]):
        stem = f"{city}_00000{i}_000019"
        cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), np.zeros((28, 56, 3), np.uint8))
        cv2.imwrite(str(ann_dir / f"{stem}_gtFine_labelTrainIds.png"), lab)

    proto = dataset_protocol("cityscapes", data_root=tmp_path)
    assert _available(proto) is None and proto["num_classes"] == 19
    assert proto["test_cfg"]["stride"] == (518, 518) and proto["split"] == "val"
    with mm.mmseg_scope():
        ds = DATASETS.build(proto["test_dataloader"]["dataset"])
    assert len(ds) == 2
    item = ds[0]
    assert tuple(item["inputs"].shape[-2:]) == (896, 1792)  # resized to the 896 short side
    assert tuple(item["data_samples"].gt_sem_seg.data.shape[-2:]) == (28, 56)  # labels stay at full resolution
    with pytest.raises(DataError, match=r"aachen_000001_000019_gtFine_labelTrainIds\.png.*\[25\]"):
        ds[1]
    assert "not found" in _available(dataset_protocol("cityscapes", data_root=tmp_path / "nowhere"))
