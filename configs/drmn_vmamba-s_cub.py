# Beyond the paper: DRMN's neck and head on VMamba-S (ImageNet-1K, the
# backbone of ZeroMamba) for CUB. MFF fuses stage 3 (28x28x384 at 448) into
# stage 4 (14x14x768); everything else is configs/drmn_cub.py.
#   python tools/train.py configs/drmn_vmamba-s_cub.py
# Needs the official VMamba-S release file in checkpoints/ (as ZeroMamba).
_base_ = ['./drmn_cub.py']

vmamba_checkpoint = 'checkpoints/vssm_small_0229_ckpt_epoch_222.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='zeromamba_mm.VMamba',
        arch='small',
        out_indices=(2, 3),
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=vmamba_checkpoint)),
    neck=dict(in_channels=(384, 768)),
    head=dict(in_channels=768))
