# AWA2 in the xlsa17 proposed split (85 attributes). Layout: see
# docs/data_preparation.md. Loaders and the paper protocol come from
# xlsa17_448.py; gamma=0.98 in softmax space is the authors' value.
_base_ = ['./xlsa17_448.py']

_awa2_files = dict(
    split_file='xlsa17/data/AWA2/att_splits.mat',
    image_list_file='xlsa17/data/AWA2/res101.mat',
    img_prefix='AWA2/Animals_with_Attributes2/JPEGImages',
    path_preset='AWA2')

train_dataloader = dict(dataset=_awa2_files)
val_dataloader = dict(dataset=_awa2_files)
test_dataloader = val_dataloader

val_evaluator = dict(gamma=0.98)
test_evaluator = val_evaluator
