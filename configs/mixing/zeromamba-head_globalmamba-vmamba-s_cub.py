# ZeroMamba's neck and heads (SLP/GRL/SeF) on a GlobalMamba-style VMamba-S
# backbone (GlobalMamba-S, arXiv:2410.10316; the paper's VMamba variant is
# unreleased, so serialization='dct' is OUR design, docs/mamba_family.md):
# every SS2D scan starts with K - 1 = 3 DCT low-pass prefix levels of its
# input. No new weights: the official VMamba-S release file loads unchanged.
# The rest is the paper's CUB recipe (configs/zeromamba_cub.py).
#   python tools/train.py \
#       configs/mixing/zeromamba-head_globalmamba-vmamba-s_cub.py
_base_ = ['../zeromamba_cub.py']

model = dict(
    backbone=dict(
        serialization='dct',
        serialization_cfg=dict(
            num_levels=4, mask_shape='triangle', mode='lowpass')))
