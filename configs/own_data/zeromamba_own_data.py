# ZeroMamba on your own classes: a template (docs/own_data.md walks through
# it). Copy this file anywhere, change every line marked `# <-- CHANGE`, then
#   python tools/check_data.py my_config.py          # before any training
#   python tools/train.py my_config.py
#   python tools/test.py my_config.py \
#       work_dirs/my_config/best_gzsl_H_epoch_N.pth
# The plugin's configs are inherited through the installed package
# (`zeromamba_mm::`), so the copy works from any folder.
_base_ = [
    # VMamba-S from its ImageNet-1k release file + the ZeroMamba neck/head.
    'zeromamba_mm::_base_/models/zeromamba_vmamba_small.py',
    # The paper's SGD recipe (lr 1e-3, MLP_ls 1e-4, total batch 32).
    'zeromamba_mm::_base_/schedules/zeromamba_sgd_100e.py',
    # Hooks (class semantics per phase, best checkpoint, selected gamma).
    'zeromamba_mm::_base_/default_runtime.py',
]

# --------------------------------------------------------------------------
# 1. Your data, named once: every loader below is built from `dataset`, so
#    training, validation and testing cannot read different data.
# --------------------------------------------------------------------------
data_root = 'data/my_dataset'  # <-- CHANGE: folder of your files
num_classes = 10  # <-- CHANGE: all classes, seen + unseen
num_attributes = 16  # <-- CHANGE: columns of your class-attribute matrix
img_size = 224  # <-- CHANGE: input side (the paper: 448)

dataset = dict(
    type='zeromamba_mm.ZSLDataset',
    data_root=data_root,
    # (a) xlsa17 layout (docs/data_preparation.md): att_splits.mat holds the
    #     class-attribute matrix and the split indices, res101.mat the image
    #     list and labels (its features are never read).
    split_file='att_splits.mat',  # <-- CHANGE (relative to data_root)
    image_list_file='res101.mat',  # <-- CHANGE
    img_prefix='images',  # <-- CHANGE: image folder below data_root
    # The stored paths are mapped to your folder by a rule. No preset (those
    # are for CUB/SUN/AWA2/the demo); give either a prefix to replace or the
    # number of trailing path parts to keep (dict(keep_last=2)).
    path_preset=None,
    # <-- CHANGE: the prefix of the paths stored in your image list
    path_rule=dict(old_prefix='/old/prefix/of/images/', new_prefix=''),
    # (b) tables instead of .mat files (docs/data_preparation.md, section 4):
    #     delete the split_file, image_list_file and path_rule lines (a table
    #     lists image paths relative to img_prefix: there is nothing to map;
    #     path_preset=None may stay) and add
    #     data_format='table', class_list_file='classes.csv',
    #     attribute_file='attributes.csv', image_list_file='images.csv',
    # Clean protocol: clean_train / clean_val are carved from trainval; 20%
    # of the seen classes act as unseen during validation.
    clean_unseen_ratio=0.2,
    clean_val_ratio=0.2,
    clean_seed=0,
)

data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',  # see the note at the end
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    # Drop the flip if left/right matters to an attribute of yours.
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs'),
]

# --------------------------------------------------------------------------
# 2. Protocol: select on held-out seen classes, test once (the default for
#    your data). Choosing the epoch and gamma on the test sets (the paper
#    protocol, kept for reproducing published tables) hides overfitting: on a
#    small dataset the best test epoch can be far above the last one.
# --------------------------------------------------------------------------
train_dataloader = dict(
    batch_size=32,  # per GPU; the schedule's lr is for a total batch of 32
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='zeromamba_mm.EpochAwareSampler', shuffle=True),
    dataset=dict(dataset, split='clean_train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, split='clean_val', pipeline=test_pipeline),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, split='test', pipeline=test_pipeline),
)
# Validation sweeps gamma (calibrated stacking) and keeps the best-H one; the
# checkpoint of the best validation H keeps that gamma, and the test uses it.
val_evaluator = dict(
    type='zeromamba_mm.GZSLMetric',
    protocol='clean',
    gamma='sweep',
    score_space='softmax')
test_evaluator = dict(
    type='zeromamba_mm.GZSLMetric',
    protocol='clean',
    gamma='selected',
    score_space='softmax')

# --------------------------------------------------------------------------
# 3. Model: VMamba-S fine-tuned from ImageNet (the release file must be at
#    checkpoints/vssm_small_0229_ckpt_epoch_222.pth, see docs/own_data.md).
# --------------------------------------------------------------------------
model = dict(
    head=dict(
        num_attributes=num_attributes,
        # Attribute word vectors (SLP's V0), an (A, 300) .npy in the order of
        # your attributes, e.g. written by
        #   python tools/dataset_converters/make_word_vectors.py ...
        # None learns V from a random init: it trains, but needs more data
        # to reach what word vectors give from the start.
        word_vectors=None,  # <-- CHANGE: 'data/my_dataset/attribute_w2v.npy'
        # lambda of the L1 attribute regression (paper: 1.0 CUB, 0.2 SUN).
        attr_loss=dict(loss_weight=1.0)),
    data_preprocessor=data_preprocessor,
)

# --------------------------------------------------------------------------
# 4. Schedule: the paper's 100 epochs with lr halved at 10/20/30/40. A small
#    dataset often peaks early; the clean validation picks the epoch.
# --------------------------------------------------------------------------
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)  # <-- CHANGE

# mmengine builds what a `zeromamba_mm::` base defines in the zeromamba_mm
# scope; the data preprocessor above is mmpretrain's model part, so it is
# named with its scope.
