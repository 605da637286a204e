# Every key of a dabench training config, with the paper's recipe as the default
# (Depth Anything §3-4 and appendix; values the paper leaves open are marked "inferred").
# Presets and user configs `_base_` on this file and override nested keys.
preset = None
run_name = None          # name the student's final weights are registered under (default: <arch>_student)
seed = 0

model = dict(
    arch='da2_vitl14',   # a registered dabench.models name (da2_vits14 / da2_vitb14 / da2_vitl14 / da2_test ...)
    encoder_weights=None,  # DINOv2 / timm ViT weights file for the encoder; None = random init (logged loudly)
    init_seed=0,         # seed of the random encoder init when no weights are given
)

data = dict(
    # Labelled sets: dict(name=<registered dataset>, split=..., limit=..., kwargs=dict(...build_dataset kwargs)).
    # The paper's 1.5M images (BlendedMVS, DIML, HRWSI, IRS, MegaDepth, TartanAir) are not shipped: list yours.
    labelled=[],
    # Unlabelled sets, same form; `folder:<dir>` names a folder of images.
    unlabelled=[],
    data_root=None,
    crop_size=518,       # shorter side resized to this, then a random square crop of this size
    flip=True,           # horizontal flip of labelled images (paper)
    flip_unlabelled=False,
    cache=False,         # keep decoded samples in memory (small sets only)
    num_workers=None,    # DataLoader workers per rank; None: the usable cores / ranks on this machine - 1 (max 8)
    prefetch_factor=2,   # batches in flight per worker
)

teacher = dict(
    steps=100000,        # inferred: the paper trains 20 epochs; set steps = 20 * len(labelled) / global batch
    batch_size=8,        # per rank (inferred)
    lr=5e-6,             # encoder LR (paper)
    head_lr_mult=10.0,   # decoder LR = 10x (paper)
    weight_decay=0.01,
    schedule='linear',   # linear decay (paper)
    warmup_steps=0,
    grad_clip=None,
)

pseudo_label = dict(
    batch_size=8,
    shard_size=1000,     # labels per shard file
    input_size=None,     # teacher inference size (shorter side, multiple of 14); None = data.crop_size
)

student = dict(
    steps=100000,
    batch_size=8,        # labelled images per step and rank; unlabelled = unlabelled_ratio x this
    unlabelled_ratio=2,  # labelled:unlabelled = 1:2 (paper)
    lr=5e-6,
    head_lr_mult=10.0,
    weight_decay=0.01,
    schedule='linear',
    warmup_steps=0,
    grad_clip=None,
    # Table 9 switches
    use_unlabelled=True,   # + L_u (pseudo-labelled images)
    strong_perturb=True,   # + colour jitter / blur / CutMix on unlabelled inputs
    feat_align=True,       # + L_feat to a frozen DINOv2
    feat_alpha=0.85,       # tolerance margin: pixels with cos > alpha are excluded (paper)
    frozen_encoder_weights=None,  # frozen DINOv2 for L_feat; None = model.encoder_weights (or its random init)
    perturb=dict(          # strengths inferred from UniMatch (the paper gives none)
        brightness=0.5, contrast=0.5, saturation=0.5, hue=0.25, jitter_p=0.8,
        grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0),
        cutmix_p=0.5, cutmix_area=(0.02, 0.4), cutmix_ratio=(0.3, 1 / 0.3),
    ),
)

runtime = dict(
    checkpoint_every=1000,
    keep_checkpoints=2,
    log_every=50,
    amp='auto',          # bf16 autocast on CUDA, fp32 on CPU
    device=None,         # None = cuda:LOCAL_RANK when available, else cpu
    progress=True,
    tensorboard=True,
)

evaluation = dict(
    datasets=[],         # held-out sets for `dabench train ablation` / pipeline figures
    input_size=None,     # None = data.crop_size
    batch_size=8,
)
