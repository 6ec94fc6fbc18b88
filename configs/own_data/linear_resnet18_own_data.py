# The linear baseline on your own classes: mmpretrain's ResNet-18 (ImageNet-1k
# weights) + a linear attribute head (ALE/DeViSE-style compatibility), on the
# data, protocol and schedule of zeromamba_own_data.py. Copy both files into
# one folder and edit the data there (this file names no data of its own), so
# that both models are trained and tested on the same splits:
#   python tools/train.py linear_resnet18_own_data.py
_base_ = ['./zeromamba_own_data.py']

# mmpretrain's ResNet-18, the release file of its model zoo; None trains
# from scratch.  <-- CHANGE
resnet_checkpoint = 'checkpoints/resnet18_8xb32_in1k_20210831-fbbb1da6.pth'

model = dict(
    _delete_=True,
    type='zeromamba_mm.ZeroShotClassifier',
    backbone=dict(
        type='ResNet',
        depth=18,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained', checkpoint=resnet_checkpoint,
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='zeromamba_mm.LinearAttributeHead',
        in_channels=512,
        num_attributes={{_base_.num_attributes}},
        attr_loss=dict(
            type='zeromamba_mm.AttributeRegressionLoss',
            criterion='l1',
            loss_weight=1.0)),
    data_preprocessor={{_base_.data_preprocessor}},
)
# A uniform learning rate (ResNet has no MLP_ls).
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True))
