# Shared pipeline of ZeroMamba's xlsa17 configs: 448x448 inputs,
# horizontal flip for training, ImageNet mean/std (arXiv:2408.14868).
# The dataset configs (cub.py, sun.py, awa2.py) fill in `_zsl_dataset`.
img_size = 448

data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]
