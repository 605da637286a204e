"""``MajorityClassSegmentor``: the floor every segmentation result is compared with.

It predicts, for every pixel of every image, the class that covers most labelled pixels of the
*training* split (see :func:`dabench.finetune.seg.evaluate.majority_class`). It is an mmseg
segmentor, so it is evaluated on the same held-out images, through the same data pipeline,
``DabenchIoUMetric`` and results records as a fine-tuned model.
"""
from __future__ import annotations

import torch
from torch import nn

from dabench.errors import ConfigError
from dabench.finetune.seg.mmcv_compat import ensure_mmcv_ops

ensure_mmcv_ops()
from mmseg.models.segmentors.base import BaseSegmentor  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402


@MODELS.register_module()
class MajorityClassSegmentor(BaseSegmentor):
    """Predicts class ``class_id`` everywhere (``num_classes`` output channels)."""

    def __init__(self, class_id: int, num_classes: int, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0 <= int(class_id) < int(num_classes):
            raise ConfigError(f"majority class id {class_id} is outside the {num_classes} classes")
        self.class_id = int(class_id)
        self.num_classes = int(num_classes)
        self.out_channels = self.num_classes
        self.align_corners = False
        # a parameter so mmengine's optimiser/device logic has something to hold; never trained
        self._anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def extract_feat(self, inputs):
        return inputs

    def encode_decode(self, inputs, batch_data_samples):
        b, _, h, w = inputs.shape
        logits = inputs.new_zeros((b, self.num_classes, h, w))
        logits[:, self.class_id] = 1.0
        return logits

    def _forward(self, inputs, data_samples=None):
        return self.encode_decode(inputs, data_samples)

    def loss(self, inputs, data_samples):
        raise ConfigError("the majority-class baseline has nothing to train")

    def predict(self, inputs, data_samples=None):
        return self.postprocess_result(self.encode_decode(inputs, data_samples), data_samples)
