# ZeroMamba's neck and heads on a GlobalMamba-style VMamba (our design of the
# unreleased VMamba variant, arXiv:2410.10316): every SS2D scan first reads
# K - 1 = 3 DCT low-pass versions of its input (low to high frequency), then
# the grid. The rest is configs/zeromamba_demo.py (small VMamba from scratch
# on the embedded demo data, CPU, a few minutes).
#   python tools/make_demo_data.py --out data/zsl_demo --seed 0
#   python tools/train.py \
#       configs/demo/zeromamba-head_globalmamba-vmamba_zsl_demo.py
_base_ = ['../zeromamba_demo.py']

model = dict(
    backbone=dict(
        serialization='dct',
        serialization_cfg=dict(
            num_levels=4, mask_shape='triangle', mode='lowpass')))
