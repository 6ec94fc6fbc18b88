# mmdet RetinaNet with zeromamba_mm.VMamba-T, over mmdet's own RetinaNet
# R-50 FPN 1x COCO config (installed with mmdet: pip install -e '.[det]').
# Train with mmdet's tools/train.py; see docs/mixing.md for what it needs
# (full mmcv: NMS in validation and inference).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='zeromamba_mm.VMamba',
        arch='tiny',
        out_indices=(1, 2, 3),
        final_norm=False,
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth')),
    neck=dict(in_channels=[192, 384, 768], start_level=0))
