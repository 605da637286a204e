# The synthetic world's semantic labels (dabench.data.synthetic.SEMANTIC_CLASSES: 13 classes over
# indoor rooms and outdoor streets; 255 = ignore). Scenes are rendered once into the dabench cache
# in mmseg's img_dir/ann_dir layout. Training, validation and the held-out `test` split (disjoint
# scene seeds) all mix both families: indoor-only classes (floor, wall, ceiling, box, sphere) never
# appear in outdoor scenes, so a test split of one family would score them nothing.
# `dabench run --suite seg-synthetic` scores the same `test` scenes per family.
synthetic_num_classes = 13
crop_size = (70, 70)
scene_size = (84, 84)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DabenchLoadAnnotations', num_classes=synthetic_num_classes),
    dict(type='RandomResize', scale=scene_size, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DabenchLoadAnnotations', num_classes=synthetic_num_classes),
    dict(type='PackSegInputs'),
]
img_ratios = [0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='DabenchLoadAnnotations', num_classes=synthetic_num_classes)],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='DabenchSyntheticSegDataset', family='outdoor', split='train', num_samples=192,
             size=scene_size, pipeline=train_pipeline),
        dict(type='DabenchSyntheticSegDataset', family='indoor', split='train', num_samples=192,
             size=scene_size, pipeline=train_pipeline),
    ]))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='DabenchSyntheticSegDataset', family='outdoor', split='val', num_samples=24,
             size=scene_size, pipeline=test_pipeline),
        dict(type='DabenchSyntheticSegDataset', family='indoor', split='val', num_samples=24,
             size=scene_size, pipeline=test_pipeline),
    ]))
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='DabenchSyntheticSegDataset', family='outdoor', split='test', num_samples=32,
             size=scene_size, pipeline=test_pipeline),
        dict(type='DabenchSyntheticSegDataset', family='indoor', split='test', num_samples=32,
             size=scene_size, pipeline=test_pipeline),
    ]))
val_evaluator = dict(type='DabenchIoUMetric')
test_evaluator = val_evaluator
# the dataset's sliding-window protocol; configs copy it into model.test_cfg and
# `dabench run --suite` applies it when evaluating on this dataset
slide_test_cfg = dict(mode='slide', crop_size=crop_size, stride=(42, 42))
