# Cityscapes (mmseg's CityscapesDataset): labelTrainIds made with cityscapesscripts
# (python -m cityscapesscripts.preparation.createTrainIdLabelImgs). Layout under data_root:
#   leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
#   gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png
# Paper protocol: 896x896 crops, test at 896 short side, slide windows with stride 518,
# multi-scale (0.5-2.0) + flip TTA.
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes/'
crop_size = (896, 896)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DabenchLoadAnnotations', num_classes=19),
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
    # annotations after Resize: metrics are computed at the original label resolution
    dict(type='DabenchLoadAnnotations', num_classes=19),
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
        [dict(type='DabenchLoadAnnotations', num_classes=19)],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='DabenchIoUMetric')
test_evaluator = val_evaluator
# the dataset's sliding-window protocol; configs copy it into model.test_cfg and
# `dabench run --suite` applies it when evaluating on this dataset
slide_test_cfg = dict(mode='slide', crop_size=crop_size, stride=(518, 518))
