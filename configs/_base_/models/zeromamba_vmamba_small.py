# ZeroMamba (arXiv:2408.14868): VMamba-S (ImageNet-1K, fully fine-tuned),
# the ImageNet classifier kept in the neck for GRL, and the SLP/GRL/SeF head.
# Convert nothing: the official release file is read as it is.
vmamba_checkpoint = 'checkpoints/vssm_small_0229_ckpt_epoch_222.pth'

model = dict(
    type='zeromamba_mm.ZeroShotClassifier',
    backbone=dict(
        type='zeromamba_mm.VMamba',
        arch='small',
        out_indices=(3, ),
        # x_pre: the last stage *before* the classifier norm.
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=vmamba_checkpoint)),
    neck=dict(
        type='zeromamba_mm.ZeroMambaNeck',
        in_channels=768,
        imagenet_classes=1000,
        init_cfg=dict(type='Pretrained', checkpoint=vmamba_checkpoint)),
    head=dict(
        type='zeromamba_mm.ZeroMambaHead',
        num_attributes=312,
        in_channels=768,
        imagenet_classes=1000,
        word_vectors=None,
        loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0),
        # lambda of the L1 attribute regression (1.0 CUB, 0.2 SUN, 0 AWA2).
        attr_loss=dict(
            type='zeromamba_mm.AttributeRegressionLoss',
            criterion='l1',
            loss_weight=1.0)),
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
)
