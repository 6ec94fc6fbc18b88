# ZeroMamba on CUB + IDML (arXiv:2309.09982): the paper recipe of
# zeromamba_cub.py with an uncertainty branch on the pooled VMamba-S stage-4
# feature (768 -> 512, ReLU, as IDML's classification code), training on the
# introspective scores over the seen classes (plain scores at test, so the
# GZSL calibration is unchanged) and IDML's Mixup twin pass (lambda ~
# Beta(1, 1)). Twice the training compute of zeromamba_cub.py. No result yet.
#   python tools/train.py configs/zeromamba_cub_idml.py
_base_ = ['./zeromamba_cub.py']

model = dict(
    head=dict(
        _delete_=True,
        type='zeromamba_mm.IntrospectiveHead',
        head={{_base_.model.head}},
        in_channels=768,
        uncertainty_dim=512,
        activation='relu',
        similarity=dict(form='classification', gamma=5.0, eps=1e-6),
        test_introspective=False),
    train_signals=[
        dict(type='zeromamba_mm.MixupTwinSignal', alpha=1.0, mode='mixup')
    ])
