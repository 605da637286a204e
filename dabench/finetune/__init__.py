"""Fine-tuning heads on a Depth Anything encoder.

- ``metric_heads``: the ZoeDepth-style metric-bins head and the V2 simple head (``build_metric_model``
  is what ``dabench.models.HEADS`` calls for ``metric_zoe`` / ``metric_simple`` checkpoints).
- ``metric``: ``dabench finetune metric`` (config on ``dabench/configs/heads/metric/``, training through
  ``dabench.train.engine``, SILog).
- ``metric_eval``: the fine-tune's held-out evaluation through ``dabench.eval.runner`` at its
  training size, and the median-depth baseline.
- ``seg/``: semantic segmentation through mmsegmentation (``dabench finetune seg``).
"""
