# VMamba-B [s2l15]: 89M params, 83.9 top-1
# official release: vssm_base_0229_ckpt_epoch_237.pth.
# Official weights: convert the release file with
#   python tools/model_converters/vmamba_to_mmpretrain.py SRC DST
# then test with `tools/test.py THIS_CONFIG DST` or load it through
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST).
_base_ = ['./_base_vmamba_in1k.py']

model = dict(
    backbone=dict(arch='base'),
    head=dict(in_channels=1024),
)
