"""Vision Mamba (Vim) and its GlobalMamba / V2M variants for MMPretrain.

- Vim: "Vision Mamba: Efficient Visual Representation Learning with
  Bidirectional State Space Model", Zhu et al.
  (https://arxiv.org/abs/2401.09417): patch tokens, a middle class token and
  bidirectional Mamba blocks.
- GlobalMamba: "Global Image Serialization for Vision Mamba", Wang, Zheng et
  al. (https://arxiv.org/abs/2410.10316): DCT frequency serialization of the
  image (:mod:`.frequency_serialization`) and a causal forward scan.
- V2M: "Visual 2-Dimensional Mamba for Image Representation Learning", Wang,
  Zheng et al. (https://arxiv.org/abs/2410.10382): the 2-D selective scan of
  :func:`zeromamba_mm.ops.selective_scan_2d` over the token grid.

The model is isotropic: pre-norm residual blocks ``x + dp(mixer(norm(x)))``
with RMSNorm, a final RMSNorm, then class-token or mean pooling. Maps of the
blocks in ``out_indices`` come out as (B, C, H, W) patch grids so that the
ZSL heads and dense necks of this package take them like VMamba's stages.

The mixers and the block live in :mod:`.vim_layers`; pretrained files are
loaded strictly by :func:`zeromamba_mm.checkpoint.init_weights_strictly`.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from zeromamba_mm.checkpoint import init_weights_strictly
from zeromamba_mm.ops import BACKENDS
from zeromamba_mm.registry import MODELS
from ..utils.arch import parse_out_indices, resolve_arch
from .frequency_serialization import FrequencySerialization
from .vim_layers import MIXERS, VimBlock, check_choice, rms_norm

TOKENIZERS = ('patch', 'dct')
CLS_TOKENS = ('middle', 'none')
POOLINGS = ('cls', 'mean')
OUT_TYPES = ('featmap', 'pooled')


@MODELS.register_module()
class Vim(BaseBackbone):
    """Isotropic Vision Mamba backbone (Vim, GlobalMamba-M*/T*, V2M-T/S).

    Patch embedding (a ``p x p`` stride-``p`` conv) or GlobalMamba's DCT
    serialization, a learned absolute position embedding, an optional class
    token in the middle of the sequence, ``depth`` :class:`VimBlock` s and a
    final RMSNorm.

    Args:
        arch (str | dict): A name of :attr:`arch_zoo` (``'vim-tiny'``,
            ``'vim-small'``, ``'globalmamba-m*'``, ``'globalmamba-t*'``,
            ``'v2m-t'``, ``'v2m-s'``) or a dict with ``embed_dims``,
            ``depth`` and optionally ``d_state`` (16), ``expand`` (2),
            ``d_conv`` (4), ``dt_rank`` ('auto'), ``mixer``, ``tokenizer``,
            ``cls_token``, ``pooling``.
        img_size (int | tuple): Size the position embedding is made for;
            other sizes interpolate it (bicubic, per frequency level).
            Defaults to 224.
        patch_size (int): p. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        mixer (str, optional): Overrides the arch's: ``'bidirectional'``
            (Vim), ``'forward'`` (GlobalMamba's causal scan) or ``'2d'``
            (V2M).
        tokenizer (str, optional): Overrides the arch's: ``'patch'`` or
            ``'dct'`` (GlobalMamba).
        cls_token (str, optional): ``'middle'`` (Vim, GlobalMamba: index
            ``L // 2``) or ``'none'``.
        pooling (str, optional): ``'cls'`` or ``'mean'`` (over all tokens
            but the class token).
        out_indices (Sequence[int] | int): Blocks whose output is returned.
            Defaults to -1 (the last).
        out_type (str): ``'featmap'``: (B, C, H/p, W/p) maps of the patch
            tokens (for the DCT tokenizer, the full-resolution level, the
            last 196 tokens at 224/16); ``'pooled'``: (B, C) by ``pooling``.
        final_norm (bool): Apply the final RMSNorm to the last block's
            output. False gives the pre-norm map (ZeroMamba's ``x_pre``).
        drop_rate (float): Dropout after the position embedding.
        drop_path_rate (float): Stochastic depth, linear over the blocks.
        mixer_cfg (dict, optional): Extra keyword arguments of the mixer,
            e.g. ``corners``, ``axis_order``, ``share_params``,
            ``inter_norm``, ``legacy_v2m_mapping`` for ``'2d'``.
        tokenizer_cfg (dict, optional): Keyword arguments of
            :class:`FrequencySerialization` (``num_levels``, ``mask_shape``,
            ``mode``, ``resize_mode``) for ``'dct'``.
        with_cp (bool): Gradient checkpointing per block.
        scan_backend (str): Backend of the selective scan.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=PATH, prefix='backbone.')`` loads strictly.
    """

    _common = dict(d_state=16, expand=2, d_conv=4, dt_rank='auto')
    arch_zoo = {
        'vim-tiny':
        dict(
            embed_dims=192,
            depth=24,
            mixer='bidirectional',
            tokenizer='patch',
            cls_token='middle',
            pooling='cls'),
        'vim-small':
        dict(
            embed_dims=384,
            depth=24,
            mixer='bidirectional',
            tokenizer='patch',
            cls_token='middle',
            pooling='cls'),
        'globalmamba-m*':
        dict(
            embed_dims=192,
            depth=24,
            mixer='forward',
            tokenizer='dct',
            cls_token='middle',
            pooling='cls'),
        'globalmamba-t*':
        dict(
            embed_dims=384,
            depth=24,
            mixer='forward',
            tokenizer='dct',
            cls_token='middle',
            pooling='cls'),
        'v2m-t':
        dict(
            embed_dims=192,
            depth=24,
            mixer='2d',
            tokenizer='patch',
            cls_token='none',
            pooling='mean'),
        'v2m-s':
        dict(
            embed_dims=384,
            depth=24,
            mixer='2d',
            tokenizer='patch',
            cls_token='none',
            pooling='mean'),
    }
    required_arch_keys = ('embed_dims', 'depth')
    optional_arch_keys = ('d_state', 'expand', 'd_conv', 'dt_rank', 'mixer',
                          'tokenizer', 'cls_token', 'pooling')

    def __init__(self,
                 arch: Union[str, dict] = 'vim-tiny',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 mixer: Optional[str] = None,
                 tokenizer: Optional[str] = None,
                 cls_token: Optional[str] = None,
                 pooling: Optional[str] = None,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'featmap',
                 final_norm: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 mixer_cfg: Optional[dict] = None,
                 tokenizer_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 scan_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        s = self._parse_arch(arch)
        for key, value in (('mixer', mixer), ('tokenizer', tokenizer),
                           ('cls_token', cls_token), ('pooling', pooling)):
            if value is not None:
                s[key] = value
        check_choice('mixer', s['mixer'], MIXERS)
        check_choice('tokenizer', s['tokenizer'], TOKENIZERS)
        check_choice('cls_token', s['cls_token'], CLS_TOKENS)
        check_choice('pooling', s['pooling'], POOLINGS)
        check_choice('out_type', out_type, OUT_TYPES)
        if scan_backend not in BACKENDS:
            raise ValueError(f'Unknown scan_backend {scan_backend!r}; '
                             f'choose one of {BACKENDS}')
        if s['pooling'] == 'cls' and s['cls_token'] == 'none':
            raise ValueError("Vim: pooling='cls' needs a class token "
                             "(cls_token='middle'); use pooling='mean'")
        if s['mixer'] == '2d' and s['cls_token'] != 'none':
            raise ValueError("Vim: the '2d' mixer scans the token grid, which "
                             "has no place for a class token; use "
                             "cls_token='none' (as V2M's code)")
        if s['mixer'] == '2d' and s['tokenizer'] == 'dct':
            raise ValueError("Vim: the '2d' mixer needs one token grid; the "
                             "'dct' tokenizer makes a sequence of K grids. "
                             "Use tokenizer='patch' with mixer='2d'.")
        if tokenizer_cfg and s['tokenizer'] != 'dct':
            raise ValueError("Vim: tokenizer_cfg is only used by "
                             "tokenizer='dct'")
        self.arch_settings = s
        self.embed_dims = dims = int(s['embed_dims'])
        self.num_layers = int(s['depth'])
        self.mixer, self.tokenizer = s['mixer'], s['tokenizer']
        self.cls_position, self.pooling = s['cls_token'], s['pooling']
        self.out_type = out_type
        self.final_norm = final_norm
        self.with_cp = with_cp
        self.patch_size = int(patch_size)
        self.img_size = ((img_size,
                          img_size) if isinstance(img_size, int) else tuple(
                              int(v) for v in img_size))
        self.out_indices = parse_out_indices(out_indices, self.num_layers,
                                             'blocks')

        self.patch_embed = nn.Conv2d(
            in_channels, dims, patch_size, stride=patch_size)
        self.serializer = None
        if self.tokenizer == 'dct':
            self.serializer = FrequencySerialization(patch_size,
                                                     **(tokenizer_cfg or {}))
        self.pos_grids = self._grids(*self.img_size)
        self.num_tokens = sum(h * w for h, w in self.pos_grids)
        self.num_extra = 1 if self.cls_position == 'middle' else 0
        if self.num_extra:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dims))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_tokens + self.num_extra, dims))
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        cfg = dict(
            d_state=s['d_state'],
            expand=s['expand'],
            d_conv=s['d_conv'],
            dt_rank=s['dt_rank'],
            scan_backend=scan_backend)
        cfg.update(mixer_cfg or {})
        dpr = torch.linspace(
            0, drop_path_rate, self.num_layers, device='cpu').tolist()
        self.layers = nn.ModuleList(
            VimBlock(dims, self.mixer, dpr[i], cfg)
            for i in range(self.num_layers))
        if final_norm:
            self.norm_f = rms_norm(dims)
        self._init_vim()

    # ------------------------------------------------------------ arch ---
    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        resolved = resolve_arch(arch, cls.arch_zoo, cls.required_arch_keys,
                                cls.optional_arch_keys, 'Vim')
        if isinstance(arch, str):
            return dict(cls._common, **resolved)
        settings = dict(
            cls._common,
            mixer='bidirectional',
            tokenizer='patch',
            cls_token='middle',
            pooling='cls')
        settings.update(resolved)
        return settings

    def _grids(self, height: int, width: int) -> List[Tuple[int, int]]:
        if self.serializer is not None:
            return self.serializer.level_grids(height, width)
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f'Vim: image size {height}x{width} is not divisible by the '
                f'patch size {p}; resize or pad the input to a multiple of '
                f'{p}.')
        return [(height // p, width // p)]

    # ------------------------------------------------------------ init ---
    def _init_vim(self) -> None:
        # Vim's init: truncated normal (0.02) for the linear layers but the
        # SSM step projections, zero biases, and the GPT-2 style rescale of
        # each block's output projection by 1/sqrt(depth).
        trunc_normal_(self.pos_embed, std=.02)
        if self.num_extra:
            trunc_normal_(self.cls_token, std=.02)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.endswith('dt_proj'):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                if name.endswith('out_proj'):
                    with torch.no_grad():
                        m.weight /= math.sqrt(self.num_layers)

    def init_weights(self) -> None:
        """Keep the constructor's init, or load ``init_cfg``'s Pretrained
        file strictly (keys under ``prefix``, default ``'backbone.'``; a
        mismatch names the first differing keys and shapes)."""
        if not init_weights_strictly(self, hint=self._variant_hint()):
            super().init_weights()

    def _variant_hint(self) -> str:
        return (f'The model is Vim(mixer={self.mixer!r}, tokenizer='
                f'{self.tokenizer!r}, embed_dims={self.embed_dims}, depth='
                f'{self.num_layers}, cls_token={self.cls_position!r}); a '
                'checkpoint of another variant does not fit.')

    def train(self, mode: bool = True) -> 'Vim':
        # mmpretrain's BaseBackbone.train returns None; nn.Module's contract
        # (and ``model.eval()`` chains) want the module back.
        super().train(mode)
        return self

    # -------------------------------------------------------- forward ---
    def _pos_embed(self, grids: List[Tuple[int, int]]) -> Tensor:
        """Position embedding for ``grids``, resized per level if needed."""
        pos = self.pos_embed
        if grids == self.pos_grids:
            return pos
        cls_index = self.num_tokens // 2
        if self.num_extra:
            cls_pos = pos[:, cls_index:cls_index + 1]
            pos = torch.cat([pos[:, :cls_index], pos[:, cls_index + 1:]], 1)
        parts, start = [], 0
        for src, dst in zip(self.pos_grids, grids):
            n = src[0] * src[1]
            seg = pos[:, start:start + n]
            start += n
            if src != dst:
                seg = resize_pos_embed(
                    seg, src, dst, mode='bicubic', num_extra_tokens=0)
            parts.append(seg)
        pos = torch.cat(parts, dim=1)
        if self.num_extra:
            index = pos.shape[1] // 2
            pos = torch.cat([pos[:, :index], cls_pos, pos[:, index:]], 1)
        return pos

    def tokenize(self, x: Tensor) -> Tuple[Tensor, List[Tuple[int, int]]]:
        """Images (B, C, H, W) -> tokens (B, L, D) and their level grids."""
        if self.serializer is not None:
            return self.serializer(x, self.patch_embed)
        grids = self._grids(*x.shape[-2:])
        return self.patch_embed(x).flatten(2).transpose(1, 2), grids

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Return one output per ``out_indices`` entry (see ``out_type``).
        """
        tokens, grids = self.tokenize(x)
        batch, length, _ = tokens.shape
        cls_index = length // 2
        if self.num_extra:
            cls = self.cls_token.expand(batch, -1, -1)
            tokens = torch.cat(
                [tokens[:, :cls_index], cls, tokens[:, cls_index:]], dim=1)
        x = self.drop_after_pos(tokens + self._pos_embed(grids))
        # The 2-D mixer reads the (only) grid; the others ignore it.
        grid = grids[-1]
        outs = []
        for i, layer in enumerate(self.layers):
            if self.with_cp and torch.is_grad_enabled():
                x = cp.checkpoint(layer, x, grid, use_reentrant=False)
            else:
                x = layer(x, grid)
            if i in self.out_indices:
                out = x
                if self.final_norm and i == self.num_layers - 1:
                    out = self.norm_f(out)
                outs.append(self._format(out, grid, cls_index))
        return tuple(outs)

    def _format(self, x: Tensor, grid: Tuple[int, int],
                cls_index: int) -> Tensor:
        if self.num_extra:
            cls = x[:, cls_index]
            x = torch.cat([x[:, :cls_index], x[:, cls_index + 1:]], dim=1)
        if self.out_type == 'pooled':
            return cls if self.pooling == 'cls' else x.mean(dim=1)
        height, width = grid
        patch = x[:, x.shape[1] - height * width:]
        return patch.transpose(1, 2).reshape(x.shape[0], -1, height, width)
