# AWA2 in the xlsa17 proposed split (85 attributes). Layout: see
# docs/data_preparation.md. Paper protocol: validate on both test sets
# (test_seen + test_unseen) every epoch, as the authors and their peers do;
# calibrated stacking with gamma=0.98 in softmax space (the authors' value).
_base_ = ['./xlsa17_448.py']

_zsl_dataset = dict(
    type='zeromamba_mm.ZSLDataset',
    data_root='data/',
    split_file='xlsa17/data/AWA2/att_splits.mat',
    image_list_file='xlsa17/data/AWA2/res101.mat',
    img_prefix='AWA2/Animals_with_Attributes2/JPEGImages',
    path_preset='AWA2')

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        _zsl_dataset, split='trainval', pipeline={{_base_.train_pipeline}}),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_zsl_dataset, split='test', pipeline={{_base_.test_pipeline}}),
)
test_dataloader = val_dataloader

val_evaluator = dict(
    type='zeromamba_mm.GZSLMetric',
    protocol='paper',
    gamma=0.98,
    score_space='softmax')
test_evaluator = val_evaluator
