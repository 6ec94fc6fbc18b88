# Shared ImageNet-1k settings of the VMamba v2 classifiers (not meant to be
# run by itself: the vmamba-{tiny,small,base}_8xb128_in1k.py configs pick the
# arch). Recipe of the official release (github.com/MzeroMiko/VMamba,
# classification/): AdamW lr 1e-3 at batch 1024 (8 GPUs x 128), weight decay
# 0.05 (none on norms/biases/1-D params), 20 warm-up epochs then cosine to
# 1e-5, 300 epochs, gradient clipping at 5, label smoothing 0.1, RandAugment
# m9-mstd0.5, random erasing 0.25, Mixup 0.8 / CutMix 1.0, EMA 0.9999;
# test: resize the short edge to 256 (bicubic), center crop 224.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='zeromamba_mm.VMamba',
        arch='small',
        out_indices=(3, ),
        drop_path_rate=None,  # the arch's default (T 0.2, S 0.3, B 0.6)
        # norm_out is the release's classifier LayerNorm2d: with the average
        # pooling neck and the linear head below this is the official
        # classifier (norm -> avgpool -> linear).
        final_norm=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        init_cfg=None,  # the model-level TruncNormal below covers it
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ],
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]),
)

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = dict(batch_size=128)

optim_wrapper = dict(clip_grad=dict(max_norm=5.0))

custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
