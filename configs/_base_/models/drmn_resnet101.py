# DRMN (arXiv:2405.03613): mmpretrain's ResNet-101 (ImageNet-1K weights,
# fine-tuned end to end) -> MFF neck (layer3 into layer4) -> DRMN head.
# The weights are mmpretrain's released ResNet-101 checkpoint, read from a
# local file (only its backbone.* keys).
resnet101_checkpoint = 'checkpoints/resnet101_8xb32_in1k_20210831-539c63f8.pth'

model = dict(
    type='zeromamba_mm.ZeroShotClassifier',
    backbone=dict(
        type='ResNet',
        depth=101,
        # layer3 (28x28x1024 at 448) and layer4 (14x14x2048) for MFF.
        out_indices=(2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint=resnet101_checkpoint,
            prefix='backbone.')),
    neck=dict(
        type='zeromamba_mm.MFFNeck', in_channels=(1024, 2048), fuse='add'),
    head=dict(
        type='zeromamba_mm.DRMNHead',
        num_attributes=312,
        in_channels=2048,
        num_seen_classes=150,
        proto_init='w2v',
        word_vectors=None,
        use_aca=True,
        score='bilinear',
        use_sit=True,
        sit_axis='batch',
        sit_layers=1,
        sit_heads=4,
        sit_ffn_ratio=1.0,
        sit_dropout=0.5,
        scale=20.0,
        use_global=True,
        lambda_gc=1.0,
        beta=0.1,
        fusion_space='prob',
        lambda_cal=0.1,
        cal_detach_backbone=True,
        ce_over='all',
        loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
)
