# Seconds-long smoke run (tests, CI): every stage and switch at 42x42, a handful of steps.
_base_ = './tiny.py'
preset = 'smoke'
data = dict(
    labelled=[
        dict(name='synthetic-indoor', split='train', kwargs=dict(num_samples=6, size=(42, 56), seed=0)),
        dict(name='synthetic-outdoor', split='train', kwargs=dict(num_samples=6, size=(42, 56), seed=0)),
    ],
    unlabelled=[
        dict(name='synthetic-indoor', split='train', kwargs=dict(num_samples=8, size=(42, 56), seed=1)),
        dict(name='synthetic-outdoor', split='train', kwargs=dict(num_samples=8, size=(42, 56), seed=1)),
    ],
    crop_size=42,
)
teacher = dict(steps=6, batch_size=2, warmup_steps=0)
pseudo_label = dict(batch_size=8, shard_size=6)
student = dict(steps=6, batch_size=2, warmup_steps=0)
runtime = dict(checkpoint_every=3, log_every=2, progress=False)
evaluation = dict(
    datasets=[
        dict(name='synthetic-indoor', split='test', kwargs=dict(num_samples=3, size=(42, 56), seed=0)),
        dict(name='synthetic-outdoor', split='test', kwargs=dict(num_samples=3, size=(42, 56), seed=0)),
    ],
    batch_size=4,
)
