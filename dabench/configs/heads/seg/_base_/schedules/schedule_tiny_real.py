# CPU-sized schedule for the real datasets' tiny presets (Cityscapes, ADE20K): the synthetic tiny
# schedule (the paper's optimiser shape: AdamW, backbone lr_mult 0.1, linear warm-up then poly to
# zero; its learning rate and clip) over 300 iterations. Validation (on the card's default split, the
# same images the held-out evaluation uses: the test labels of both sets are not public) every 100.
_base_ = ['./schedule_tiny.py']
max_iters = 300
warmup_iters = 20
param_scheduler = [  # restated: the base's entries were built from its own iteration counts
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=100))
