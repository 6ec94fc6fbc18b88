# GlobalMamba-M* (Vim-T based, arXiv:2410.10316): DCT frequency serialization
# (K = 4 nested triangle low-pass levels, 1 + 9 + 49 + 196 = 255 tokens at
# 224/16, low to high), middle class token, causal forward scan, 24 blocks of
# width 192. Reported 76.4 top-1 (Vim-T† 75.8). No released weights.
# Recipe of the official tiny script: 8 x 256, lr 5e-4 per 512 (2e-3 at
# 2048), wd 0.1, drop path 0.
_base_ = ['./_base_vim_deit_in1k.py']

model = dict(
    backbone=dict(arch='globalmamba-m*', drop_path_rate=0.0),
    head=dict(in_channels=192))
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 2048 / 512, weight_decay=0.1))
