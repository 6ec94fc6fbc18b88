# DRMN's optimiser is Adam (arXiv:2405.03613); the rest is not published and
# follows end-to-end ResNet-101 relatives (GEM-ZSL, DPPN): the heads (and
# the MFF neck) at lr 1e-4, the ImageNet backbone at 1e-5, weight decay
# 1e-4, lr x0.5 every 10 epochs, batch 32. See docs/drmn.md.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adam', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
)
param_scheduler = dict(type='StepLR', by_epoch=True, step_size=10, gamma=0.5)
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
