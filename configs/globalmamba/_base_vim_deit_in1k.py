# Shared ImageNet-1k settings of the Vim-based models (GlobalMamba-M*/T*,
# V2M-T/S; not meant to be run by itself). Both official repositories train
# with Vim's DeiT recipe: 300 epochs, AdamW, 5 warm-up epochs then cosine to
# 1e-5, label smoothing 0.1, Mixup 0.8 / CutMix 1.0, RandAugment m9-mstd0.5,
# random erasing 0.25, repeated augmentation, EMA, fp32 (--no_amp). The
# learning rate, weight decay, drop path and batch size are set per model.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='zeromamba_mm.Vim',
        arch='vim-tiny',
        img_size=224,
        patch_size=16,
        # (B, C) vectors by the arch's pooling (class token or mean).
        out_type='pooled',
        final_norm=True,
        drop_path_rate=0.0),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=192,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]),
)

train_dataloader = dict(
    batch_size=256, sampler=dict(type='RepeatAugSampler', shuffle=True))
val_dataloader = dict(batch_size=256)
test_dataloader = dict(batch_size=256)

# DeiT: no weight decay on norms, biases, position embedding, class token.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.pos_embed': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.A_log': dict(decay_mult=0.0),
            '.D': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

custom_hooks = [dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]
# The official scripts scale lr by total batch / 512.
auto_scale_lr = dict(base_batch_size=512)
