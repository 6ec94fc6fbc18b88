# VMamba-S [s2l15]: 50M params, 83.6 top-1
# official release: vssm_small_0229_ckpt_epoch_222.pth.
# Official weights: convert the release file with
#   python tools/model_converters/vmamba_to_mmpretrain.py SRC DST
# then test with `tools/test.py THIS_CONFIG DST` or load it through
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST).
_base_ = ['./_base_vmamba_in1k.py']

model = dict(
    backbone=dict(arch='small'),
    head=dict(in_channels=768),
)
