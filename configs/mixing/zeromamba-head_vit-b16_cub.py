# ZeroMamba's SLP/GRL/SeF head on mmpretrain's ViT-B/16 at 448 (28x28 patch
# tokens as the region map). The neck pools the patch tokens and applies the
# ViT's ImageNet classifier (head.layers.head) for GRL; that classifier was
# trained on the class token, so GRL starts from a shifted input and adapts in
# fine-tuning. Weights: an mmpretrain ImageNet ViT-B/16 checkpoint in
# checkpoints/ (position embeddings are resized from 224 by mmpretrain).
_base_ = ['../zeromamba_cub.py']

vit_checkpoint = 'checkpoints/vit-base-p16_in21k-pre-3rdparty_ft-in1k-384_20210928-98e8652b.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='b',
        img_size=448,
        patch_size=16,
        out_type='featmap',
        final_norm=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=vit_checkpoint, prefix='backbone.')),
    neck=dict(
        in_channels=768,
        norm=None,
        init_cfg=dict(type='Pretrained', checkpoint=vit_checkpoint)),
    head=dict(in_channels=768))
