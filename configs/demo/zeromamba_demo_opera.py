# ZeroMamba demo + OPERA's omni-supervised branch (arXiv:2210.05557):
# projector -> predictor (MoCo v3 contrastive against a momentum copy of
# backbone + projector) -> attribute projector (CE over seen classes), on two
# augmented views; the head trains on the clean view; dropped at test.
#   python tools/train.py configs/demo/zeromamba_demo_opera.py
_base_ = ['../zeromamba_demo.py']

img_size = 64
# The self-supervised views at half the resolution (cheaper; the head's
# losses keep the clean 64x64 image), as the note suggests for 448 / 224.
view_size = 32
# Weak colour augmentation: colour is an attribute of the demo classes (as of
# CUB/SUN/AWA2), so the views must not teach invariance to it. No flip
# ('position: left/right' are attributes).
view_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=view_size,
        crop_ratio_range=(0.6, 1.0),
        backend='pillow'),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.2,
                contrast=0.2,
                saturation=0.1,
                hue=0.0)
        ],
        prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    # View 1: the clean image (head loss); views 2-3: OPERA's two views.
    dict(type='MultiView', num_views=[1, 2], transforms=[[], view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    data_preprocessor=dict(type='zeromamba_mm.MultiViewClsDataPreprocessor'),
    train_signals=[
        dict(
            type='zeromamba_mm.OPERASignal',
            in_channels=192,
            num_attributes=20,
            hid_channels=256,
            proj_channels=64,
            temperature=0.2,
            momentum=0.01,
            loss_weight=1.0)
    ])
