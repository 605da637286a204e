# The paper's ADE20K model (Table 8: 59.4 mIoU): Depth Anything V1 ViT-L encoder + Mask2Former
# (200 queries), 8 GPUs x 2 images (batch 16), 160k iterations, 896x896 crops, slide inference
# with stride 426. Needs: pip install -e '.[mmcv-full]'.
_base_ = [
    '_base_/models/mask2former_da.py', '_base_/datasets/ade20k.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_160k.py'
]
crop_size = (896, 896)
num_classes = 150
model = dict(
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(426, 426)),
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='da1_vitl14'),
    decode_head=dict(
        num_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])))
