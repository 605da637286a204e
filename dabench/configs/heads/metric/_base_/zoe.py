# Metric-depth fine-tuning: shared defaults (the ZoeDepth recipe Depth Anything V1 used,
# metric_depth/zoedepth/models/zoedepth/config_zoedepth.json in the V1 repo).
# Files in this folder override these keys through `_base_`; `dabench finetune metric` picks
# `{head}_{dataset}.py` and merges `tiny.py` on top for `--preset tiny`.

# Head (dabench.finetune.metric_heads). min/max depth: None = the dataset card's range (metres).
model = dict(
    head="zoe",
    min_depth=None,
    max_depth=None,
    n_bins=64,
    bin_embedding_dim=128,
    n_attractors=[16, 8, 4, 1],
    attractor_alpha=1000.0,
    attractor_gamma=2,
    attractor_kind="mean",
    attractor_type="inv",
    bin_centers_type="softplus",  # "normed" (bounded to [min, max]) for KITTI
    min_temp=0.0212,
    max_temp=50.0,
    seed_mlp_dim=256,
    mlp_dim=128,
    # which parts of the --init relative checkpoint are loaded ("pretrained" = ViT, "depth_head" = DPT)
    init_parts=["pretrained", "depth_head"],
)

data = dict(
    train_split="train",
    eval_split="test",
    input_size=[392, 518],  # network input H x W (multiples of 14)
    hflip=True,  # random horizontal flip of training images
    train_crop=None,  # None = the card's train-time crop ("kb" for KITTI), or "none"
    train_limit=None,  # use only the first N training samples
    eval_limit=None,
    cache=False,  # keep preprocessed training samples in memory (small sets only)
    num_workers=0,
)

# AdamW; learning rate per parameter group = lr * lr_mult[group]. ZoeDepth/DA: the whole relative
# model (ViT and DPT) at lr / 50, the new metric layers at lr.
optimizer = dict(lr=1.61e-4, weight_decay=0.01, betas=[0.9, 0.999],
                 lr_mult=dict(encoder=1 / 50, decoder=1 / 50, head=1.0))

# OneCycle as ZoeDepth: pct_start 0.7, div_factor 1, final_div_factor 1e4. `steps` None = epochs x
# (training images / global batch).
schedule = dict(type="onecycle", epochs=5, steps=None, pct_start=0.7, div_factor=1.0, final_div_factor=1e4,
                warmup_steps=0, poly_power=0.9)

# SILog as ZoeDepth: 10 * sqrt(mean(g^2) - lambd * mean(g)^2), g = log(pred) - log(gt); beta 0.15 -> lambd 0.85
loss = dict(type="silog", lambd=0.85, scale=10.0)

train = dict(batch_size=16, grad_clip=0.1, amp="auto", seed=0, log_every=10, checkpoint_every=500,
             keep_checkpoints=2)

# Evaluation after training (dabench.eval protocol): clamp to [min, max], crop from the card,
# flip TTA on, per-image metrics averaged.
evaluation = dict(flip_tta=True, crop=None, batch_size=1)
