# mmseg UPerNet with a zeromamba_mm.Vim-family backbone (one stride-16 map)
# through mmseg's MultiLevelNeck, over mmseg's own ViT-B/16 MLN UPerNet
# ADE20K config. arch='globalmamba-m*' or 'v2m-t' (192 channels too) swap in
# GlobalMamba or V2M. See docs/mixing.md.
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512.py']
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='zeromamba_mm.Vim',
        arch='vim-tiny',
        img_size=512,
        out_indices=(5, 11, 17, 23),
        final_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/vim_t_midclstok.pth')),
    neck=dict(in_channels=[192, 192, 192, 192], out_channels=192),
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))
