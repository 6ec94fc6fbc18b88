# V2M-S (Vim-S based, arXiv:2410.10382): as V2M-T with width 384. Reported
# 80.5 top-1 (Vim-S† 80.3). No released weights.
# Recipe of the official small script: 8 x 64, lr 1e-3, wd 0.05, drop path
# 0.05.
_base_ = ['../globalmamba/_base_vim_deit_in1k.py']

model = dict(
    backbone=dict(arch='v2m-s', drop_path_rate=0.05),
    head=dict(in_channels=384))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05))
