# DRMN on SUN (arXiv:2405.03613; reported, from a secondary source: T1 66.9,
# H 45.8): ResNet-101 at 448, MFF + DAB/ACA + SIT + hyperspherical
# classifier (s = 25) + global branch (beta = 0.3), self-calibration
# lambda_cal = 1e-4, Adam, 20 epochs. Unpublished details: docs/drmn.md.
#   python tools/train.py configs/drmn_sun.py
# Needs data/xlsa17/data/SUN (docs/data_preparation.md), mmpretrain's
# ResNet-101 checkpoint in checkpoints/ and the word vectors in data/w2v/.
_base_ = [
    '_base_/datasets/sun.py',
    '_base_/models/drmn_resnet101.py',
    '_base_/schedules/drmn_adam_step.py',
    '_base_/default_runtime.py',
]

model = dict(
    data_preprocessor=dict(num_classes=717),
    head=dict(
        num_attributes=102,
        num_seen_classes=645,
        word_vectors='data/w2v/SUN_attribute.pkl',
        scale=25.0,
        beta=0.3,
        lambda_gc=1.0,
        lambda_cal=1e-4))

# DRMN emits log-probabilities; calibrated stacking subtracts gamma from
# them ('raw' space), at beta = 0 exactly GEM-ZSL's gamma on s*cos logits.
val_evaluator = dict(gamma=0.7, score_space='raw')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=20)
