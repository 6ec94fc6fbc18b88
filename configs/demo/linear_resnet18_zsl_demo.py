# Foundation baseline on the demo data: mmpretrain's ResNet-18 (from scratch)
# + a linear attribute head (ALE/DeViSE-style compatibility). It shows that
# any mmpretrain backbone mixes with the zero-shot parts; ZeroMamba's own demo
# is configs/zeromamba_demo.py.
_base_ = [
    '../_base_/datasets/zsl_demo.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='zeromamba_mm.ZeroShotClassifier',
    backbone=dict(
        type='ResNet', depth=18, base_channels=32, stem_channels=32,
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='zeromamba_mm.LinearAttributeHead',
        in_channels=256,
        num_attributes=20,
        attr_loss=dict(
            type='zeromamba_mm.AttributeRegressionLoss',
            criterion='l1',
            loss_weight=1.0)),
    data_preprocessor={{_base_.data_preprocessor}},
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[6], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=2)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=10))
