# GlobalMamba-S (VMamba-S based, arXiv:2410.10316). The paper's VMamba
# variant is unreleased: this is OUR design (docs/mamba_family.md) - every
# SS2D scan direction first reads K - 1 = 3 DCT low-pass versions of its
# input resized to ceil(H / 2^(3-k)) grids (low to high), then the grid; the
# prefix outputs are dropped. No new weights: the official VMamba-S release
# file loads unchanged (init_cfg=dict(type='Pretrained', checkpoint=...)).
# Reported for the paper's variant: 83.9 top-1 (VMamba-S 83.6).
# Recipe: VMamba's (../vmamba/_base_vmamba_in1k.py).
_base_ = ['../vmamba/vmamba-small_8xb128_in1k.py']

model = dict(
    backbone=dict(
        serialization='dct',
        serialization_cfg=dict(
            num_levels=4, mask_shape='triangle', mode='lowpass')))
