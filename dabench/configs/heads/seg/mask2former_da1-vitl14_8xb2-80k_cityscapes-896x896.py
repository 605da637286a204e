# The paper's Cityscapes model (Table 7: 84.8 single-scale / 86.2 multi-scale mIoU): Depth Anything
# V1 ViT-L encoder + Mask2Former (200 queries), 8 GPUs x 2 images (batch 16), 80k iterations,
# 896x896 crops, slide inference with stride 518. Needs: pip install -e '.[mmcv-full]'.
_base_ = [
    '_base_/models/mask2former_da.py', '_base_/datasets/cityscapes.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_80k.py'
]
crop_size = (896, 896)
model = dict(
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(518, 518)),
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='da1_vitl14'))
