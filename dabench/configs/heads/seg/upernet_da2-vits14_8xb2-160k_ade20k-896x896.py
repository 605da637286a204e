# UPerNet on the Depth Anything V2 ViT-S encoder, ADE20K (150 classes), paper schedule:
# 8 GPUs x 2 images, 160k iterations, 896x896 crops, slide inference with stride 426.
_base_ = [
    '_base_/models/upernet_da.py', '_base_/datasets/ade20k.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_160k.py'
]
crop_size = (896, 896)
model = dict(
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(426, 426)),
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='da2_vits14'),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
