# Tiny Mask2Former on the synthetic world (a smoke test for installs with full mmcv + mmdet:
# pip install -e '.[mmcv-full]'). Same data and schedule as the tiny UPerNet preset.
_base_ = [
    '_base_/models/mask2former_da.py', '_base_/datasets/synthetic.py',
    '_base_/default_runtime.py', '_base_/schedules/schedule_tiny.py'
]
embed_dim = 32
num_classes = 13
model = dict(
    data_preprocessor=dict(size=(70, 70)),
    test_cfg=dict(mode='slide', crop_size=(70, 70), stride=(42, 42)),
    backbone=dict(arch='da2_test'),
    neck=dict(embed_dim=embed_dim, norm_cfg=dict(type='BN', requires_grad=True)),
    decode_head=dict(
        in_channels=[embed_dim] * 4,
        feat_channels=embed_dim,
        out_channels=embed_dim,
        num_classes=num_classes,
        num_queries=20,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=embed_dim, num_heads=4),
                    ffn_cfg=dict(embed_dims=embed_dim, feedforward_channels=4 * embed_dim))),
            positional_encoding=dict(num_feats=embed_dim // 2)),
        positional_encoding=dict(num_feats=embed_dim // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dim, num_heads=4),
                cross_attn_cfg=dict(embed_dims=embed_dim, num_heads=4),
                ffn_cfg=dict(embed_dims=embed_dim, feedforward_channels=4 * embed_dim))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=1024)))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
