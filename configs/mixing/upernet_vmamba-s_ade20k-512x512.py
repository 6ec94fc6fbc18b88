# mmseg UPerNet with zeromamba_mm.VMamba-S, over mmseg's own Swin-T UPerNet
# ADE20K config (installed with mmseg: pip install -e '.[seg]'). Train with
# mmseg's tools/train.py; see docs/mixing.md for what it needs (full mmcv).
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py']  # noqa: E501
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='zeromamba_mm.VMamba',
        arch='small',
        out_indices=(0, 1, 2, 3),
        final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vssm_small_0229_ckpt_epoch_222.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
