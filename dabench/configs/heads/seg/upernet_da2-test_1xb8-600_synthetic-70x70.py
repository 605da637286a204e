# Tiny preset: the tiny V2-style test encoder (width 32, 6 blocks) + Feature2Pyramid + a narrow
# UPerNet, 600 iterations of batch 8 on 70x70 synthetic crops. About one CPU-minute of training.
_base_ = [
    '_base_/models/upernet_da.py', '_base_/datasets/synthetic.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_tiny.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
embed_dim = 32
model = dict(
    data_preprocessor=dict(size=(70, 70)),
    test_cfg=dict(mode='slide', crop_size=(70, 70), stride=(42, 42)),
    backbone=dict(arch='da2_test'),
    neck=dict(embed_dim=embed_dim, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=64, num_classes=13, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=embed_dim, channels=32, num_classes=13, norm_cfg=norm_cfg))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
