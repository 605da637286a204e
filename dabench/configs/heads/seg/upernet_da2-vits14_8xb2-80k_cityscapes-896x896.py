# UPerNet on the Depth Anything V2 ViT-S encoder, Cityscapes (19 classes), paper schedule:
# 8 GPUs x 2 images, 80k iterations, 896x896 crops, slide inference with stride 518.
_base_ = [
    '_base_/models/upernet_da.py', '_base_/datasets/cityscapes.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_80k.py'
]
crop_size = (896, 896)
model = dict(
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(518, 518)),
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='da2_vits14'),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))
