# V2M-T (Vim-T based, arXiv:2410.10382): 2-D selective scan from the four
# corners (row pass: input-dependent dt, B; column pass: input-dependent dt,
# C; causal conv before each pass, z gating), shared parameters, no class
# token, mean pooling, 24 blocks of width 192. Reported 76.2 top-1 (Vim-T†
# 75.8). No released weights. Corners aligned to their tokens (the paper's
# intent); mixer_cfg=dict(legacy_v2m_mapping=True) reproduces the released
# code's recombination instead (docs/mamba_family.md).
# Recipe of the official tiny script: 8 x 64, lr 5e-4, wd 0.1, drop path 0.
_base_ = ['../globalmamba/_base_vim_deit_in1k.py']

model = dict(
    backbone=dict(arch='v2m-t', drop_path_rate=0.0),
    head=dict(in_channels=192))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.1))
