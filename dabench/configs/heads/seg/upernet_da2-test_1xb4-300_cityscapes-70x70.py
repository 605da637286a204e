# Tiny preset on real Cityscapes (19 classes, labelTrainIds; 2048x1024 frames become 196x98): the tiny V2-style test encoder (da2_test) + the narrow UPerNet of the
# synthetic tiny preset, 300 iterations of batch 4 on 70x70 crops. The dataset's real pipeline shape
# (mmseg's random multi-scale resize 0.5-2.0, random crop with cat_max_ratio, flip, photometric
# distortion; shorter side resized for testing; slide windows) at 98 px instead of 896 px.
# A CPU check of a set-up on real files, not a result to compare with the paper.
_base_ = [
    '_base_/models/upernet_da.py', '_base_/datasets/cityscapes.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_tiny_real.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
embed_dim = 32
num_classes = 19
crop_size = (70, 70)
short_side = 98
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DabenchLoadAnnotations', num_classes=num_classes),
    dict(type='RandomChoiceResize', scales=[int(short_side * x * 0.1) for x in range(5, 21)],
         resize_type='ResizeShortestEdge', max_size=short_side * 4),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(short_side * 4, short_side), keep_ratio=True),
    dict(type='DabenchLoadAnnotations', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=crop_size),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(42, 42)),
    backbone=dict(arch='da2_test'),
    neck=dict(embed_dim=embed_dim, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=embed_dim, channels=32, num_classes=num_classes, norm_cfg=norm_cfg))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
