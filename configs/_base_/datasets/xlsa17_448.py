# Shared data settings of ZeroMamba's xlsa17 configs: 448x448 inputs,
# horizontal flip for training, ImageNet mean/std (arXiv:2408.14868).
# Paper protocol: validate on both test sets (test_seen + test_unseen) every
# epoch, as the authors and their peers do; calibrated stacking in softmax
# space. The dataset configs (cub.py, sun.py, awa2.py) fill in the files of
# `train_dataloader.dataset` / `val_dataloader.dataset` and the evaluator's
# gamma.
img_size = 448

data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]

_zsl_dataset = dict(type='zeromamba_mm.ZSLDataset', data_root='data/')

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    # DefaultSampler's order and sharding; each index also carries a seed of
    # (seed, epoch, index) for its augmentations, so --resume is exact with
    # any number of (persistent) workers.
    sampler=dict(type='zeromamba_mm.EpochAwareSampler', shuffle=True),
    dataset=dict(_zsl_dataset, split='trainval', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_zsl_dataset, split='test', pipeline=test_pipeline),
)
test_dataloader = val_dataloader

val_evaluator = dict(
    type='zeromamba_mm.GZSLMetric', protocol='paper', score_space='softmax')
test_evaluator = val_evaluator
