# ZeroMamba on CUB (AAAI 2025, arXiv:2408.14868), the paper recipe:
# VMamba-S at 448, SGD (lr 1e-3, MLP_ls 1e-4), MultiStep [10,20,30,40] x 0.5,
# 100 epochs, batch 32, lambda=1.0. Reported T1 | U / S / H: 80.0 | 72.1 / 76.4 / 74.2.
#   python tools/train.py configs/zeromamba_cub.py
#   bash tools/dist_train.sh configs/zeromamba_cub.py 8  (lr: see README)
# Needs data/xlsa17/data/CUB (docs/data_preparation.md), the official VMamba-S
# release file in checkpoints/ and the attribute word vectors in data/w2v/.
_base_ = [
    '_base_/datasets/cub.py',
    '_base_/models/zeromamba_vmamba_small.py',
    '_base_/schedules/zeromamba_sgd_100e.py',
    '_base_/default_runtime.py',
]

model = dict(
    # All classes, seen and unseen (ClassNumCheckHook, Mixup/CutMix labels).
    data_preprocessor=dict(num_classes=200),
    head=dict(
        num_attributes=312,
        word_vectors='data/w2v/CUB_attribute.pkl',
        attr_loss=dict(loss_weight=1.0)))
