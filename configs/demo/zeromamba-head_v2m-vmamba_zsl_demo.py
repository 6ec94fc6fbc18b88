# ZeroMamba's neck and heads on a V2M-style VMamba (our design of the
# unreleased VMamba variant, arXiv:2410.10382): SS2D's cross scan becomes the
# 2-D selective scan from the four corners (row pass with input-dependent
# dt/B, column pass with input-dependent dt/C). The rest is
# configs/zeromamba_demo.py (small VMamba from scratch on the demo data, CPU).
#   python tools/make_demo_data.py --out data/zsl_demo --seed 0
#   python tools/train.py configs/demo/zeromamba-head_v2m-vmamba_zsl_demo.py
_base_ = ['../zeromamba_demo.py']

model = dict(
    backbone=dict(
        scan='2d', scan_cfg=dict(axis_order='row', inter_norm=False)))
