# ADE20K (mmseg's ADE20KDataset, 150 classes, label 0 = "other" -> ignored via reduce_zero_label).
# Layout under data_root (= <data>/ade/ADEChallengeData2016):
#   images/{training,validation}/*.jpg
#   annotations/{training,validation}/*.png
# Paper protocol: 896x896 crops, slide windows with stride 426.
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (896, 896)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DabenchLoadAnnotations', num_classes=150),
    dict(type='RandomChoiceResize', scales=[int(896 * x * 0.1) for x in range(5, 21)],
         resize_type='ResizeShortestEdge', max_size=896 * 4),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(896 * 4, 896), keep_ratio=True),
    dict(type='DabenchLoadAnnotations', num_classes=150),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(896 * 4, 896), keep_ratio=True)],
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='DabenchLoadAnnotations', num_classes=150)],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, reduce_zero_label=True,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, reduce_zero_label=True,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='DabenchIoUMetric')
test_evaluator = val_evaluator
# the dataset's sliding-window protocol; configs copy it into model.test_cfg and
# `dabench run --suite` applies it when evaluating on this dataset
slide_test_cfg = dict(mode='slide', crop_size=crop_size, stride=(426, 426))
