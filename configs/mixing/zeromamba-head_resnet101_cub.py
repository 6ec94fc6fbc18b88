# ZeroMamba's SLP/GRL/SeF head on mmpretrain's ResNet-101 (the classic ZSL
# backbone) — everything else as configs/zeromamba_cub.py. The neck keeps the
# ResNet's ImageNet classifier (avg-pool -> fc 2048->1000, no norm) for GRL.
# Weights: an mmpretrain ImageNet ResNet-101 checkpoint, e.g.
# resnet101_8xb32_in1k_20210831-539c63f8.pth, put in checkpoints/.
_base_ = ['../zeromamba_cub.py']

resnet_checkpoint = 'checkpoints/resnet101_8xb32_in1k_20210831-539c63f8.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=101,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained', checkpoint=resnet_checkpoint,
            prefix='backbone.')),
    neck=dict(
        in_channels=2048,
        norm=None,
        init_cfg=dict(type='Pretrained', checkpoint=resnet_checkpoint)),
    head=dict(in_channels=2048))
