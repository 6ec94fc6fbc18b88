# SUN in the xlsa17 proposed split (102 attributes). Layout: see
# docs/data_preparation.md. Loaders and the paper protocol come from
# xlsa17_448.py; gamma=0.35 in softmax space is the authors' value.
_base_ = ['./xlsa17_448.py']

_sun_files = dict(
    split_file='xlsa17/data/SUN/att_splits.mat',
    image_list_file='xlsa17/data/SUN/res101.mat',
    img_prefix='SUN/images',
    path_preset='SUN')

train_dataloader = dict(dataset=_sun_files)
val_dataloader = dict(dataset=_sun_files)
test_dataloader = val_dataloader

val_evaluator = dict(gamma=0.35)
test_evaluator = val_evaluator
