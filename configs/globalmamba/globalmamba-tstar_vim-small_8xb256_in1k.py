# GlobalMamba-T* (Vim-S based, arXiv:2410.10316): as GlobalMamba-M* with width
# 384. Reported 80.8 top-1 (Vim-S† 80.3). No released weights.
# Recipe of the official small script: 8 x 256, lr 2e-3 per 512 (8e-3 at
# 2048, as the script computes it), wd 0.05, drop path 0.05.
_base_ = ['./_base_vim_deit_in1k.py']

model = dict(
    backbone=dict(arch='globalmamba-t*', drop_path_rate=0.05),
    head=dict(in_channels=384))
optim_wrapper = dict(optimizer=dict(lr=2e-3 * 2048 / 512, weight_decay=0.05))
