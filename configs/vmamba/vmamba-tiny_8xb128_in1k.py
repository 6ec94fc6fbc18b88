# VMamba-T [s1l8]: 30M params, 82.6 top-1
# official release: vssm1_tiny_0230s_ckpt_epoch_264.pth.
# Official weights: convert the release file with
#   python tools/model_converters/vmamba_to_mmpretrain.py SRC DST
# then test with `tools/test.py THIS_CONFIG DST` or load it through
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST).
_base_ = ['./_base_vmamba_in1k.py']

model = dict(
    backbone=dict(arch='tiny'),
    head=dict(in_channels=768),
)
