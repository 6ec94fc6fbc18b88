# ZeroMamba on CUB + OPERA's omni-supervised branch (arXiv:2210.05557) as an
# auxiliary loss during ZSL fine-tuning: projector (768-4096-256) ->
# predictor (256-4096-256) with MoCo v3's contrastive loss against a momentum
# copy of backbone + projector (m 0.99 -> 1, cosine), and a full-supervision
# projector (256-256-312) on the predictor trained with CE over the seen
# classes against the class attributes; 0.5 L_self + 0.5 CE1 + 0.5 CE2.
# ZeroMamba's losses use the clean 448 image; the two views are 224 crops
# with weak colour jitter (CUB has many colour attributes) and no grayscale.
# About 2.5x the training compute and a second backbone copy. No result yet.
#   python tools/train.py configs/zeromamba_cub_opera.py
_base_ = ['./zeromamba_cub.py']

view_size = 224
view_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=view_size,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
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
clean_pipeline = [
    dict(type='Resize', scale=(448, 448)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # View 1: the clean image of ZeroMamba's losses; views 2-3: OPERA's.
    dict(
        type='MultiView',
        num_views=[1, 2],
        transforms=[clean_pipeline, view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    data_preprocessor=dict(type='zeromamba_mm.MultiViewClsDataPreprocessor'),
    train_signals=[
        dict(
            type='zeromamba_mm.OPERASignal',
            in_channels=768,
            num_attributes=312,
            hid_channels=4096,
            proj_channels=256,
            # MoCo v3: 1.0 for CNNs, 0.2 for ViTs; VMamba is neither.
            temperature=0.2,
            momentum=0.01,
            loss_weight=1.0)
    ])
