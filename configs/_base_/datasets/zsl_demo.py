# The embedded demo dataset (xlsa17 layout, 24 classes: 18 seen / 6 unseen,
# 20 visual attributes, 64x64 JPEGs). Create it with:
#   python tools/make_demo_data.py --out data/zsl_demo --seed 0
dataset_type = 'zeromamba_mm.ZSLDataset'
data_root = 'data/zsl_demo'
img_size = 64

data_preprocessor = dict(
    # All 24 classes (seen and unseen): mmpretrain's ClassNumCheckHook and
    # the soft labels of batch augments (Mixup/CutMix) count them.
    num_classes=24,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

# No horizontal flip: 'position: left' / 'position: right' are attributes of
# the demo classes, and a flip would swap them.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]

# The one place that names the data: every loader (train, val and test)
# reads this dict and only picks its split. A config that brings other data
# overrides the three loaders from one dict of its own (as
# configs/own_data/zeromamba_own_data.py does); changing only some loaders
# would leave the others on the demo data, which `python tools/check_data.py
# CONFIG` reports as an error.
_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    path_preset='DEMO',
    img_prefix='images')

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    # DefaultSampler's order and sharding; each index also carries a seed of
    # (seed, epoch, index) for its augmentations, so --resume is exact with
    # any number of (persistent) workers.
    sampler=dict(type='zeromamba_mm.EpochAwareSampler', shuffle=True),
    dataset=dict(_dataset, split='trainval', pipeline=train_pipeline),
)
# Paper protocol: evaluate on both test sets (seen + unseen) every epoch.
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, split='test', pipeline=test_pipeline),
)
# Testing reads the same data and split as validation (built from _dataset,
# not copied from val_dataloader, so that both visibly come from one place).
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, split='test', pipeline=test_pipeline),
)

val_evaluator = dict(
    type='zeromamba_mm.GZSLMetric',
    protocol='paper',
    gamma=0.3,
    score_space='softmax')
test_evaluator = val_evaluator
