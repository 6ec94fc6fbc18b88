# ZeroMamba on AWA2 (AAAI 2025, arXiv:2408.14868), the paper recipe:
# VMamba-S at 448, SGD (lr 1e-3, MLP_ls 1e-4), MultiStep [10,20,30,40] x 0.5,
# 100 epochs, batch 32, lambda=0.0. Reported T1 | U / S / H: 71.9 | 67.9 / 87.6 / 76.5.
#   python tools/train.py configs/zeromamba_awa2.py
#   bash tools/dist_train.sh configs/zeromamba_awa2.py 8  (lr: see README)
# Needs data/xlsa17/data/AWA2 (docs/data_preparation.md), the official VMamba-S
# release file in checkpoints/ and the attribute word vectors in data/w2v/.
_base_ = [
    '_base_/datasets/awa2.py',
    '_base_/models/zeromamba_vmamba_small.py',
    '_base_/schedules/zeromamba_sgd_100e.py',
    '_base_/default_runtime.py',
]

model = dict(
    # All classes, seen and unseen (ClassNumCheckHook, Mixup/CutMix labels).
    data_preprocessor=dict(num_classes=50),
    head=dict(
        num_attributes=85,
        word_vectors='data/w2v/AWA2_attribute.pkl',
        # lambda = 0: no attribute regression term.
        attr_loss=None))
