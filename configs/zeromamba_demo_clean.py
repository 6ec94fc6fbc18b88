# ZeroMamba on the demo data under the clean protocol: the epoch and the
# calibration factor γ are chosen on held-out *seen* classes, and the test
# sets are evaluated once, with that γ (docs/evaluation.md).
#   python tools/train.py configs/zeromamba_demo_clean.py
#   python tools/test.py configs/zeromamba_demo_clean.py \
#       work_dirs/zeromamba_demo_clean/best_gzsl_H_epoch_N.pth
# Splits of trainval (ZSLDataset, clean_unseen_ratio=0.2, clean_val_ratio=0.2,
# clean_seed=0): clean_train = 80% of the images of 80% of the seen classes;
# clean_val = the other 20% of their images (pseudo test-seen) and all images
# of the remaining 20% of the seen classes (pseudo-unseen). The unseen test
# classes are never looked at before the final test.
_base_ = ['./zeromamba_demo.py']

train_dataloader = dict(dataset=dict(split='clean_train'))
val_dataloader = dict(dataset=dict(split='clean_val'))
# test_dataloader stays on the standard 'test' split (seen + unseen).

# Validation sweeps γ and reports the best-H γ as gzsl/gamma; the checkpoint
# hook keeps the best gzsl/H epoch, and SelectedGammaHook (default_runtime's
# custom_hooks) stores that epoch's γ in the checkpoint's meta and hands it to
# the test metric (gamma='selected').
val_evaluator = dict(
    _delete_=True,
    type='zeromamba_mm.GZSLMetric',
    protocol='clean',
    gamma='sweep',
    score_space='softmax')
test_evaluator = dict(
    _delete_=True,
    type='zeromamba_mm.GZSLMetric',
    protocol='clean',
    gamma='selected',
    score_space='softmax')
