# ZeroMamba demo + IDML (arXiv:2309.09982): an uncertainty branch on the
# pooled stage-4 feature, training on the introspective scores over the
# seen classes (plain scores at test), and the Mixup twin pass.
#   python tools/train.py configs/demo/zeromamba_demo_idml.py
_base_ = ['../zeromamba_demo.py']

model = dict(
    head=dict(
        _delete_=True,
        type='zeromamba_mm.IntrospectiveHead',
        head={{_base_.model.head}},
        in_channels=192,
        uncertainty_dim=64,
        activation='relu',
        similarity=dict(form='classification', gamma=5.0, eps=1e-6),
        test_introspective=False),
    train_signals=[
        dict(type='zeromamba_mm.MixupTwinSignal', alpha=1.0, mode='mixup')
    ])
