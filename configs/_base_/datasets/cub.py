# CUB in the xlsa17 proposed split (312 attributes). Layout: see
# docs/data_preparation.md. Loaders and the paper protocol come from
# xlsa17_448.py; gamma=0.30 in softmax space is the authors' value.
_base_ = ['./xlsa17_448.py']

_cub_files = dict(
    split_file='xlsa17/data/CUB/att_splits.mat',
    image_list_file='xlsa17/data/CUB/res101.mat',
    img_prefix='CUB/CUB_200_2011/images',
    path_preset='CUB')

train_dataloader = dict(dataset=_cub_files)
val_dataloader = dict(dataset=_cub_files)
test_dataloader = val_dataloader

val_evaluator = dict(gamma=0.30)
test_evaluator = val_evaluator
