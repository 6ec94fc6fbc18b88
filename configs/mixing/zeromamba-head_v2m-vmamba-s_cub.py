# ZeroMamba's neck and heads (SLP/GRL/SeF) on a V2M-style VMamba-S backbone
# (V2M-B*, arXiv:2410.10382; the paper's VMamba variant is unreleased, so
# scan='2d' is OUR design, docs/mamba_family.md). The rest is the paper's
# CUB recipe (configs/zeromamba_cub.py). The official VMamba-S release file
# loads for every unchanged weight (stem, norms, MLPs, in/out projections,
# pass-1 SSM parameters); the pass-2 weights (x_proj2_weight, dt_projs2_*,
# A2_logs, D2s) start from their init, as logged at load time.
#   python tools/train.py configs/mixing/zeromamba-head_v2m-vmamba-s_cub.py
_base_ = ['../zeromamba_cub.py']

model = dict(
    backbone=dict(
        scan='2d', scan_cfg=dict(axis_order='row', inter_norm=False)))
