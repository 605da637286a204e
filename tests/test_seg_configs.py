"""dabench/configs/heads/seg configs: mmseg naming, `_base_` composition, the paper's recipe values, presets."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("mmengine")

from dabench.errors import CheckpointError, ConfigError  # noqa: E402
from dabench.finetune.seg import checkpoint as C  # noqa: E402
from dabench.finetune.seg import config as R  # noqa: E402

NAME = re.compile(r"^(?P<head>upernet|mask2former)_(?P<backbone>da[12]-[a-z0-9]+)_(?P<gpus>\d+)xb(?P<batch>\d+)-"
                  r"(?P<iters>\d+k?)_(?P<dataset>cityscapes|ade20k|synthetic)-(?P<crop>\d+x\d+)\.py$")


def _configs():
    return sorted(p for p in R.heads_dir().glob("*.py"))


def test_every_config_is_named_like_mmseg_and_loads():
    files = _configs()
    assert len(files) >= 6
    for path in files:
        m = NAME.match(path.name)
        assert m, f"{path.name} does not follow {{head}}_{{backbone}}_{{gpus}}xb{{batch}}-{{iters}}_{{dataset}}-{{crop}}"
        cfg = R.load_config(path)
        model = cfg.model
        assert model.backbone.type == "DepthAnythingEncoder"
        assert model.backbone.arch == m["backbone"].replace("-", "_")
        assert model.neck.type == "Feature2Pyramid" and list(model.neck.rescales) == [4, 2, 1, 0.5]
        assert model.decode_head.type == ("UPerHead" if m["head"] == "upernet" else "Mask2FormerHead")
        iters = int(m["iters"][:-1]) * 1000 if m["iters"].endswith("k") else int(m["iters"])
        assert cfg.train_cfg.max_iters == iters
        assert cfg.train_dataloader.batch_size == int(m["batch"])
        crop = tuple(int(v) for v in m["crop"].split("x"))
        assert tuple(model.test_cfg.crop_size) == crop and tuple(model.data_preprocessor.size) == crop
        assert cfg.val_evaluator.type == "DabenchIoUMetric"
        n = {"cityscapes": 19, "ade20k": 150, "synthetic": 13}[m["dataset"]]
        assert model.decode_head.num_classes == n
        if m["head"] == "mask2former":
            assert len(model.decode_head.loss_cls.class_weight) == n + 1
        if m["dataset"] != "synthetic" and m["backbone"] != "da2-test":  # the paper's crop and sliding-window strides
            assert crop == (896, 896)
            assert tuple(model.test_cfg.stride) == {"cityscapes": (518, 518), "ade20k": (426, 426)}[m["dataset"]]
            assert cfg.slide_test_cfg.stride == model.test_cfg.stride


@pytest.mark.parametrize("name", ["mask2former_da1-vitl14_8xb2-80k_cityscapes-896x896.py",
                                  "mask2former_da1-vitl14_8xb2-160k_ade20k-896x896.py"])
def test_paper_recipe(name):
    cfg = R.load_config(R.heads_dir() / name)
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == "AdamW" and opt.optimizer.lr == 3e-5 and opt.optimizer.weight_decay == 0.05
    assert opt.paramwise_cfg.custom_keys["backbone"]["lr_mult"] == 0.1
    assert opt.clip_grad.max_norm == 0.01
    warm, poly = cfg.param_scheduler
    assert warm.type == "LinearLR" and (warm.begin, warm.end) == (0, 1500)
    assert poly.type == "PolyLR" and poly.power == 1.0 and (poly.begin, poly.end) == (1500, cfg.train_cfg.max_iters)
    assert cfg.model.decode_head.num_queries == 200
    assert cfg.model.decode_head.pixel_decoder.encoder.num_layers == 6
    assert cfg.model.backbone.arch == "da1_vitl14" and cfg.model.neck.embed_dim == 1024
    assert cfg.train_dataloader.batch_size * 8 == 16  # 8 GPUs x 2 = the paper's batch 16
    tta = [t for t in cfg.tta_pipeline if t["type"] == "TestTimeAug"][0]["transforms"]
    ratios = [t["scale_factor"] for t in tta[1]]
    assert ratios == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0] and len(tta[2]) == 2  # multi-scale + flip


def test_presets_and_overrides(tmp_path):
    for (preset, dataset, head), fname in R.PRESETS.items():
        assert R.resolve_config(dataset, head, preset).name == fname
    with pytest.raises(ConfigError, match="available"):
        R.resolve_config("ade20k", "mask2former", "tiny")
    with pytest.raises(ConfigError, match="valid: cityscapes, ade20k, synthetic"):
        R.resolve_config("kitti", "upernet", "paper")

    cfg = R.load_config(R.resolve_config("cityscapes", "upernet", "paper"))
    R.configure(cfg, work_dir=tmp_path, arch="da1_vitl14", init="x.pth", max_iters=8000)
    assert cfg.model.backbone.arch == "da1_vitl14" and cfg.model.backbone.init == "x.pth"
    assert cfg.model.neck.embed_dim == 1024 and cfg.model.decode_head.in_channels == [1024] * 4
    assert cfg.model.auxiliary_head.in_channels == 1024
    assert [(s["begin"], s["end"]) for s in cfg.param_scheduler] == [(0, 150), (150, 8000)]
    assert cfg.default_hooks.checkpoint.interval == 5000
    n_checks = [t["num_classes"] for p in R._pipelines(cfg) for t in p
                if isinstance(t, dict) and t.get("type") == "DabenchLoadAnnotations"]
    assert n_checks and set(n_checks) == {19}


def _lr_trace(schedulers: list, iters: int, base_lr: float = 1.0) -> list[float]:
    """The learning rate mmengine's own schedulers give at each of ``iters`` iterations."""
    import torch
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    opt = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr))
    built = [PARAM_SCHEDULERS.build({**s, "optimizer": opt}) for s in schedulers]
    out = []
    for _ in range(iters):
        out.append(opt.param_groups[0]["lr"])
        for sch in built:
            sch.step()
    return out


PAPER = [dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=1500),
         dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=80000)]


def test_schedule_rescaling_keeps_phase_fractions():
    assert [(x["begin"], x["end"]) for x in R.rescale_schedule(PAPER, 80000, 8000)] == [(0, 150), (150, 8000)]
    assert [(x["begin"], x["end"]) for x in R.rescale_schedule(PAPER, 80000, 160000)] == [(0, 3000), (3000, 160000)]
    # a warm-up shorter than MIN_SCHEDULE_PHASE iterations cannot ramp: dropped, poly starts at 0
    assert [(x["type"], x["begin"], x["end"]) for x in R.rescale_schedule(PAPER, 80000, 10)] == [("PolyLR", 0, 10)]
    assert [(x["begin"], x["end"]) for x in R.rescale_schedule(PAPER, 80000, 1)] == [(0, 1)]


@pytest.mark.parametrize("iters", [10, 40, 300])
def test_short_runs_leave_warm_up(iters):
    """The issue's case: `--iters 10` of the paper schedule trained at ~1e-6 x base the whole run.
    Measured with mmengine's schedulers: the rate reaches most of the base and decays towards zero."""
    lrs = _lr_trace(R.rescale_schedule(PAPER, 80000, iters), iters)
    assert max(lrs) >= 0.75, lrs
    assert lrs[-1] <= 1.5 / iters + 1e-9  # poly (power 1) to zero: the last iteration's share
    full = _lr_trace(PAPER, 3000)  # unchanged recipe: 1500 iterations of warm-up, then the base rate
    assert full[0] == pytest.approx(1e-6) and max(full) == pytest.approx(1.0, rel=1e-3)


def test_tiny_real_presets_use_the_cards_layout(tmp_path):
    from dabench.data.cards import load_card

    for dataset in ("cityscapes", "ade20k"):
        cfg = R.load_config(R.resolve_config(dataset, "upernet", "tiny"))
        R.configure(cfg, work_dir=tmp_path, dataset=dataset, data_root=tmp_path / "data")
        card = load_card(dataset)
        seg = card["segmentation"]
        train = cfg.train_dataloader.dataset
        assert train.data_root == str(tmp_path / "data" / card["root"])
        assert [train.data_prefix.img_path, train.data_prefix.seg_map_path] == seg["folders"][seg["train_split"]]
        test = cfg.test_dataloader.dataset
        assert [test.data_prefix.img_path, test.data_prefix.seg_map_path] == seg["folders"][card["default_split"]]
        assert test.reduce_zero_label is (dataset == "ade20k") and test.seg_map_suffix == seg["seg_map_suffix"]
        assert cfg.model.backbone.arch == "da2_test" and cfg.train_cfg.max_iters == 300
        assert cfg.model.decode_head.num_classes == seg["num_classes"]
        assert cfg.train_dataloader.num_workers == 0
    with pytest.raises(ConfigError, match="synthetic world"):  # the synthetic preset cannot read real data
        R.configure(R.load_config(R.resolve_config("synthetic", "upernet", "tiny")), work_dir=tmp_path,
                    dataset="cityscapes", data_root=tmp_path)


class _Planted:
    """A pickle that writes a marker file when it is unpickled (what a hostile iter_N.pth does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _mmengine_like_checkpoint():
    """What mmengine's CheckpointHook saves besides tensors: HistoryBuffers, numpy arrays and scalars."""
    import numpy as np
    import torch
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("dabench-test-resume")
    for i in range(3):
        hub.update_scalar("train/loss", 1.0 / (i + 1))
    hub.update_info("eta", np.float64(12.5))
    return {"meta": {"iter": 3, "epoch": 0, "cfg": "x = 1", "dataset_meta": {"classes": ("a", "b")}},
            "state_dict": {"w": torch.ones(2)}, "message_hub": hub.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": np.float32(0.1), "params": [0]}]}}


def test_mmengine_checkpoints_load_with_an_allow_list(tmp_path):
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner import CheckpointLoader

    run = tmp_path / "run"
    run.mkdir()
    ck = _mmengine_like_checkpoint()
    ck["meta"]["config"] = f"open({str(tmp_path / 'config-ran')!r}, 'w')"  # mmengine's resume would execute it
    torch.save(ck, run / "iter_3.pth")
    (run / "last_checkpoint").write_text(str(run / "iter_3.pth"))
    assert C.latest_checkpoint(run) == run / "iter_3.pth"
    C.use_safe_checkpoint_loader()
    got = CheckpointLoader.load_checkpoint(str(run / "iter_3.pth"), map_location="cpu")  # mmengine's own path
    assert got["meta"]["iter"] == 3 and "config" not in got["meta"]
    buf = got["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buf, HistoryBuffer) and buf.current() == pytest.approx(1 / 3)
    assert got["message_hub"]["runtime_info"]["eta"] == 12.5
    assert not (tmp_path / "config-ran").exists()

    # last_checkpoint naming a file outside the run folder is refused
    torch.save(ck, tmp_path / "elsewhere.pth")
    (run / "last_checkpoint").write_text(str(tmp_path / "elsewhere.pth"))
    with pytest.raises(CheckpointError, match="outside the run folder"):
        C.latest_checkpoint(run)
    (run / "last_checkpoint").write_text("../elsewhere.pth")
    with pytest.raises(CheckpointError):
        C.latest_checkpoint(run)


def test_planted_checkpoint_never_runs_code(tmp_path):
    """A hostile iter_N.pth + last_checkpoint in --out: refused with exit 2, the payload never runs."""
    import torch
    from typer.testing import CliRunner

    from dabench.cli import app

    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    ck = _mmengine_like_checkpoint()
    ck["meta"]["planted"] = _Planted(marker)
    torch.save(ck, out / "iter_20.pth")
    (out / "last_checkpoint").write_text(str(out / "iter_20.pth"))
    res = CliRunner().invoke(app, ["finetune", "seg", "--dataset", "synthetic", "--preset", "tiny", "--random-init",
                                   "--arch", "da2_test", "--iters", "40", "--out", str(out), "--resume", "--no-eval"],
                             env={"COLUMNS": "500"})
    assert not marker.exists()
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.replace("│", " ").split())
    assert "refusing to load checkpoint" in text and "iter_20.pth" in text
    assert "weights_only=False" not in text and "Traceback" not in text
    # mmengine's own loader (load_from / resume) refuses it too
    from mmengine.runner import CheckpointLoader

    C.use_safe_checkpoint_loader()
    with pytest.raises(CheckpointError, match="refusing"):
        CheckpointLoader.load_checkpoint(str(out / "iter_20.pth"), map_location="cpu")
    assert not marker.exists()


def test_resume_falls_back_from_a_corrupt_newest_checkpoint(tmp_path):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    torch.save(_mmengine_like_checkpoint(), run / "iter_2.pth")
    (run / "iter_4.pth").write_bytes(b"PK\x03\x04 truncated")
    (run / "last_checkpoint").write_text(str(run / "iter_4.pth"))
    warnings = []
    path, ck = C.resume_checkpoint(run, warn=warnings.append)
    assert path == run / "iter_2.pth" and ck["meta"]["iter"] == 3
    assert len(warnings) == 1 and "iter_4.pth" in warnings[0] and "corrupt" in warnings[0]

