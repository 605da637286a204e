"""Semantic segmentation transfer through mmsegmentation (`dabench finetune seg`, seg-* suites).

Importing this package is cheap; mmseg (7–9 s to import) is loaded only by the modules that need it:

- ``mmcv_compat``: the one place that makes mmseg importable on mmcv-lite (stand-in ``mmcv.ops``).
- ``backbone``: ``DepthAnythingEncoder``, the Depth Anything encoder as an mmseg backbone.
- ``datasets``: ``DabenchSyntheticSegDataset`` (the synthetic world's labels, mmseg layout).
- ``transforms``: ``DabenchLoadAnnotations`` (label loading + checks that name the bad file).
- ``metric``: ``DabenchIoUMetric`` (mmseg ``IoUMetric`` → dabench ``SegMetricState``).
- ``segmentors``: ``MajorityClassSegmentor`` (the baseline).
- ``runner``: configs (``heads/seg/``), training with mmengine's ``Runner``, checkpoints, evaluation.
- ``suite``: ``run_seg_suite`` for ``dabench run --suite seg-*``.
"""
