# DRMN on CUB (arXiv:2405.03613; reported, from a secondary source: T1 82.5,
# H 76.8): ResNet-101 at 448, MFF + DAB/ACA + SIT + hyperspherical
# classifier (s = 20) + global branch (beta = 0.1), self-calibration
# lambda_cal = 0.1, Adam, 20 epochs. Unpublished details: docs/drmn.md.
#   python tools/train.py configs/drmn_cub.py
# Needs data/xlsa17/data/CUB (docs/data_preparation.md), mmpretrain's
# ResNet-101 checkpoint in checkpoints/ and the word vectors in data/w2v/.
_base_ = [
    '_base_/datasets/cub.py',
    '_base_/models/drmn_resnet101.py',
    '_base_/schedules/drmn_adam_step.py',
    '_base_/default_runtime.py',
]

model = dict(
    data_preprocessor=dict(num_classes=200),
    head=dict(
        num_attributes=312,
        num_seen_classes=150,
        word_vectors='data/w2v/CUB_attribute.pkl',
        scale=20.0,
        beta=0.1,
        lambda_gc=1.0,
        lambda_cal=0.1))

# DRMN emits log-probabilities; calibrated stacking subtracts gamma from
# them ('raw' space), at beta = 0 exactly GEM-ZSL's gamma on s*cos logits.
val_evaluator = dict(gamma=0.7, score_space='raw')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=20)
