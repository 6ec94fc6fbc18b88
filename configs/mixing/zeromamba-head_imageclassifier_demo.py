# ZeroMamba's neck and head inside mmpretrain's own ImageClassifier (no
# ZeroShotClassifier): the attribute head keeps the class semantics itself,
# ZSLSemanticsHook sets them per phase, and mmpretrain's ClassNumCheckHook
# passes (add dict(type='mmpretrain.ClassNumCheckHook') to custom_hooks)
# because no module calls the ImageNet classes `num_classes`.
#   python tools/train.py configs/mixing/zeromamba-head_imageclassifier_demo.py
_base_ = ['../zeromamba_demo.py']

model = dict(type='mmpretrain.ImageClassifier')
