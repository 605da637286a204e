"""Semantic segmentation transfer through mmsegmentation (`dabench finetune seg`, seg-* suites).

Importing this package is cheap; mmseg (7–9 s to import) is loaded only by the modules that need it:

- ``mmcv_compat``: the one place that makes mmseg importable on mmcv-lite (stand-in ``mmcv.ops``).
- ``backbone``: ``DepthAnythingEncoder``, the Depth Anything encoder as an mmseg backbone.
- ``datasets``: ``DabenchSyntheticSegDataset`` (the synthetic world's labels, mmseg layout).
- ``transforms``: ``DabenchLoadAnnotations`` (label loading + checks that name the bad file).
- ``metric``: ``DabenchIoUMetric`` (mmseg ``IoUMetric`` → dabench ``SegMetricState``).
- ``segmentors``: ``MajorityClassSegmentor`` (the baseline).
- ``config``: mmseg import and scope, presets under ``dabench/configs/heads/seg/``, the command line applied to a config.
- ``checkpoint``: dabench seg checkpoints (``final.safetensors``) and trusted resume of a run folder.
- ``evaluate``: ``Runner.test`` with ``DabenchIoUMetric``; the majority-class baseline.
- ``train``: ``finetune_seg`` (mmengine ``Runner``, DDP through torchrun, the held-out evaluation).
- ``suite``: ``run_seg_suite`` for ``dabench run --suite seg-*``.
"""
