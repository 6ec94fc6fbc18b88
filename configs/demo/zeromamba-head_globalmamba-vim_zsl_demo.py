# ZeroMamba's neck and heads on a small GlobalMamba-M*-style Vim (DCT
# frequency serialization, middle class token, causal forward scan,
# arXiv:2410.10316),
# trained from scratch on the embedded demo data on CPU (64x64 images, patch 8:
# an 8x8 token map; the ZSL heads read it as (B, C, 8, 8)). The schedule and
# evaluation are those of configs/zeromamba_demo.py.
#   python tools/make_demo_data.py --out data/zsl_demo --seed 0
#   python tools/train.py \
#       configs/demo/zeromamba-head_globalmamba-vim_zsl_demo.py
_base_ = ['../zeromamba_demo.py']

dims = 96
model = dict(
    backbone=dict(
        _delete_=True,
        type='zeromamba_mm.Vim',
        arch=dict(
            embed_dims=dims, depth=4, d_state=4, mixer='forward',
            tokenizer='dct', cls_token='middle', pooling='cls'),
        img_size=64,
        patch_size=8,
        out_type='featmap',
        # x_pre for the ZeroMamba neck: the last block before the final norm.
        final_norm=False,
        drop_path_rate=0.0),
    neck=dict(in_channels=dims),
    head=dict(in_channels=dims))
