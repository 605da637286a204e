# CPU minutes on the synthetic world: da2_test, 70x70 crops, 500 steps per stage.
# (Encoder LR 3e-4 instead of the paper's 5e-6: the tiny encoder starts from random weights.)
# Without real DINOv2 weights the encoder starts from a seeded random init and L_feat aligns the
# student to that random frozen encoder (logged, and recorded in the checkpoint metadata).
_base_ = './_base_/default.py'
preset = 'tiny'
model = dict(arch='da2_test')
data = dict(
    labelled=[
        dict(name='synthetic-indoor', split='train', kwargs=dict(num_samples=192, size=(84, 112), seed=0)),
        dict(name='synthetic-outdoor', split='train', kwargs=dict(num_samples=192, size=(84, 112), seed=0)),
    ],
    unlabelled=[
        dict(name='synthetic-indoor', split='train', kwargs=dict(num_samples=384, size=(84, 112), seed=1)),
        dict(name='synthetic-outdoor', split='train', kwargs=dict(num_samples=384, size=(84, 112), seed=1)),
    ],
    crop_size=70,
    cache=True,
)
teacher = dict(steps=500, batch_size=8, lr=3e-4, head_lr_mult=10.0, warmup_steps=10, grad_clip=1.0)
pseudo_label = dict(batch_size=32, shard_size=256)
student = dict(steps=500, batch_size=8, lr=3e-4, head_lr_mult=10.0, warmup_steps=10, grad_clip=1.0)
runtime = dict(checkpoint_every=100, log_every=20)
evaluation = dict(
    datasets=[
        dict(name='synthetic-indoor', split='test', kwargs=dict(num_samples=64, size=(84, 112), seed=0)),
        dict(name='synthetic-outdoor', split='test', kwargs=dict(num_samples=64, size=(84, 112), seed=0)),
    ],
    batch_size=16,
)
