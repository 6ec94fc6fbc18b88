# ZeroMamba recipe (arXiv:2408.14868 and the authors' code): SGD momentum 0.9,
# weight decay 1e-3, lr 1e-3 for backbone, ImageNet head, SLP and GRL, 1e-4 for
# MLP_ls; MultiStepLR [10, 20, 30, 40] x 0.5 per epoch; 100 epochs; batch 32.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=1e-3),
    paramwise_cfg=dict(custom_keys={'mlp_local': dict(lr_mult=0.1)}),
)
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[10, 20, 30, 40], gamma=0.5)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# The recipe's batch: 32 images on one GPU.
auto_scale_lr = dict(base_batch_size=32)
