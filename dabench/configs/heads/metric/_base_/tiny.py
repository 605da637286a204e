# `--preset tiny`: merged over `{head}_{dataset}.py` for CPU smoke runs and the "must really learn"
# check (minutes on one CPU core): the synthetic worlds' native 98x126 input, a narrow bins head,
# 256 training images kept in memory, 600 steps of batch 4. The relative model is fine-tuned at a
# higher rate than in the paper (tiny models start far from good features) and the whole --init
# checkpoint (ViT + DPT) is loaded for both heads.
model = dict(n_bins=16, bin_embedding_dim=32, seed_mlp_dim=64, mlp_dim=32, init_parts=["pretrained", "depth_head"])
data = dict(input_size=[98, 126], train_limit=256, eval_limit=32, cache=True)
optimizer = dict(lr=2e-3, lr_mult=dict(encoder=0.1, decoder=0.5, head=1.0))
schedule = dict(type="onecycle", epochs=None, steps=600, pct_start=0.3)
train = dict(batch_size=4, grad_clip=1.0, checkpoint_every=100, log_every=20)
evaluation = dict(flip_tta=True, batch_size=8)
# the relative architecture `--random-init` builds (an --init checkpoint brings its own)
arch = "da2_test"
