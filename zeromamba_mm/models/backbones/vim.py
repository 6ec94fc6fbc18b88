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
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.drop import DropPath
from mmengine.logging import print_log
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from zeromamba_mm.ops import BACKENDS, selective_scan, selective_scan_2d
from zeromamba_mm.ops.selective_scan_2d import (LEGACY_V2M_DIRECTIONS,
                                                parse_directions)
from zeromamba_mm.registry import MODELS
from ..utils.arch import resolve_arch
from ..utils.checkpoint import load_checkpoint_file, strict_load_state_dict
from .frequency_serialization import FrequencySerialization

MIXERS = ('bidirectional', 'forward', '2d')
TOKENIZERS = ('patch', 'dct')
CLS_TOKENS = ('middle', 'none')
POOLINGS = ('cls', 'mean')
OUT_TYPES = ('featmap', 'pooled')


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'Unknown Vim {name} {value!r}; choose one of '
                         f'{tuple(choices)}')


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last axis, ``x / rms(x) * weight``.

    Args:
        dims (int): Size of the last axis.
        eps (float): Added to the mean square. Defaults to 1e-5 (Vim).
    """

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dims))

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).to(x.dtype) * self.weight


class _SSMBranch(nn.Module):
    """The per-direction part of a Mamba mixer: causal depthwise conv1d,
    x_proj (-> dt, B, C or dt plus one of them), dt_proj, A_log and D.

    Args:
        inner (int): E, the expanded channels.
        d_state (int): N.
        dt_rank (int): R.
        d_conv (int): Kernel of the causal conv; 0 for none.
        num_select (int): 2 for (B, C) from x_proj, 1 for a 2-D pass.
        dt_min, dt_max, dt_init_floor (float): Mamba's step-size init.
    """

    def __init__(self,
                 inner: int,
                 d_state: int,
                 dt_rank: int,
                 d_conv: int = 4,
                 num_select: int = 2,
                 dt_min: float = 1e-3,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4) -> None:
        super().__init__()
        self.d_conv = d_conv
        if d_conv:
            self.conv1d = nn.Conv1d(
                inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(
            inner, dt_rank + num_select * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, inner, bias=True)
        self.A_log = nn.Parameter(
            torch.log(torch.arange(1, d_state + 1,
                                   dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_dt()

    @torch.no_grad()
    def reset_dt(self) -> None:
        """Mamba's init: dt_proj weight uniform in +-R^-0.5, bias the
        inverse softplus of steps log-uniform in [dt_min, dt_max]."""
        dt_min, dt_max, floor = self._dt_range
        std = self.dt_proj.in_features**-0.5
        self.dt_proj.weight.uniform_(-std, std)
        dt = torch.exp(
            torch.rand(self.dt_proj.out_features) *
            (math.log(dt_max) - math.log(dt_min)) +
            math.log(dt_min)).clamp(min=floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def conv(self, x: Tensor) -> Tensor:
        """Causal depthwise conv + SiLU over (B, E, L)."""
        if not self.d_conv:
            return x
        return F.silu(self.conv1d(x)[..., :x.shape[-1]])

    def scan(self, x: Tensor, z: Optional[Tensor], backend: str) -> Tensor:
        """Mamba's selective scan of (B, E, L) with gate ``z``."""
        u = self.conv(x)
        rank = self.dt_proj.in_features
        n = self.A_log.shape[1]
        x_dbl = F.linear(u.transpose(1, 2), self.x_proj.weight)  # (B, L, .)
        dt, b, c = torch.split(x_dbl, [rank, n, n], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight).transpose(1, 2)
        return selective_scan(
            u,
            delta.contiguous(),
            -torch.exp(self.A_log.float()),
            b.transpose(1, 2).contiguous(),
            c.transpose(1, 2).contiguous(),
            D=self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            backend=backend)


class MambaMixer(nn.Module):
    """Mamba token mixer of Vim: in_proj -> (x, z) -> per-direction SSM
    branch with gate ``silu(z)`` -> out_proj.

    ``'forward'`` is one causal scan (GlobalMamba's released code);
    ``'bidirectional'`` adds a backward branch with its own parameters on
    the reversed sequence and averages the two (Vim's "v2" with
    ``if_devide_out``).

    Args:
        dims (int): Token channels.
        d_state (int): N. Defaults to 16.
        expand (float): E = expand * dims. Defaults to 2.
        d_conv (int): Causal conv kernel. Defaults to 4.
        dt_rank (int | str): R; ``'auto'`` = ceil(dims / 16).
        direction (str): ``'forward'`` or ``'bidirectional'``.
        scan_backend (str): Backend of the selective scan.
    """

    def __init__(self,
                 dims: int,
                 d_state: int = 16,
                 expand: float = 2,
                 d_conv: int = 4,
                 dt_rank: Union[int, str] = 'auto',
                 direction: str = 'bidirectional',
                 scan_backend: str = 'auto') -> None:
        super().__init__()
        if direction not in ('forward', 'bidirectional'):
            raise ValueError(f'Unknown MambaMixer direction {direction!r}; '
                             "choose one of ('forward', 'bidirectional')")
        inner = int(expand * dims)
        rank = math.ceil(dims / 16) if dt_rank == 'auto' else int(dt_rank)
        self.direction = direction
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(dims, 2 * inner, bias=False)
        self.fwd = _SSMBranch(inner, d_state, rank, d_conv)
        if direction == 'bidirectional':
            self.bwd = _SSMBranch(inner, d_state, rank, d_conv)
        self.out_proj = nn.Linear(inner, dims, bias=False)

    def forward(self, x: Tensor, grid: Tuple[int, int] = None) -> Tensor:
        """(B, L, dims) -> (B, L, dims); ``grid`` is unused."""
        x, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)
        y = self.fwd.scan(x.contiguous(), z.contiguous(), self.scan_backend)
        if self.direction == 'bidirectional':
            y_b = self.bwd.scan(
                x.flip(-1).contiguous(),
                z.flip(-1).contiguous(), self.scan_backend)
            y = (y + y_b.flip(-1)) / 2
        return self.out_proj(y.transpose(1, 2))


class Mamba2DMixer(nn.Module):
    """V2M's 2-D Mamba mixer on a token grid.

    in_proj -> (x, z) -> :func:`~zeromamba_mm.ops.selective_scan_2d` (per
    corner a row pass with input-dependent dt, B and a column pass with
    input-dependent dt, C; causal conv before each pass; both gated by
    ``silu(z)``) -> sum of the corners aligned to their tokens, times
    ``out_scale`` -> out_proj. ``in_proj`` runs once, not once per corner as
    in the released code: it is per token, so the result is the same.

    Args:
        dims (int): Token channels.
        d_state (int): N. Defaults to 16.
        expand (float): E = expand * dims. Defaults to 2.
        d_conv (int): Causal conv kernel of each pass (0: none).
        dt_rank (int | str): R; ``'auto'`` = ceil(dims / 16).
        corners (Sequence[str]): Corners scanned. Defaults to all four (the
            paper; the released code scans TL twice and never BR).
        axis_order (str): ``'row'``, ``'col'`` or ``'both'``.
        share_params (bool): One parameter set for all directions (the
            released code) or one per direction.
        inter_norm (bool): RMSNorm over E between the passes (the paper's
            figure; the code has none). Defaults to False.
        out_scale (float): Factor on the sum of the directions; 0.5 is the
            code's ``if_devide_out``.
        legacy_v2m_mapping (bool): The released code's directions and
            misaligned recombination (square grids only; comparisons only).
        scan_backend (str): Backend of the selective scan.
    """

    def __init__(self,
                 dims: int,
                 d_state: int = 16,
                 expand: float = 2,
                 d_conv: int = 4,
                 dt_rank: Union[int, str] = 'auto',
                 corners: Sequence[str] = ('tl', 'tr', 'bl', 'br'),
                 axis_order: str = 'row',
                 share_params: bool = True,
                 inter_norm: bool = False,
                 out_scale: float = 0.5,
                 legacy_v2m_mapping: bool = False,
                 scan_backend: str = 'auto') -> None:
        super().__init__()
        directions = (
            LEGACY_V2M_DIRECTIONS if legacy_v2m_mapping else parse_directions(
                corners, axis_order))
        inner = int(expand * dims)
        rank = math.ceil(dims / 16) if dt_rank == 'auto' else int(dt_rank)
        self.corners, self.axis_order = tuple(corners), axis_order
        self.legacy_v2m_mapping = legacy_v2m_mapping
        self.out_scale = out_scale
        self.scan_backend = scan_backend
        sets = 1 if share_params else len(directions)
        self.in_proj = nn.Linear(dims, 2 * inner, bias=False)
        self.pass1 = nn.ModuleList(
            _SSMBranch(inner, d_state, rank, d_conv, num_select=1)
            for _ in range(sets))
        self.pass2 = nn.ModuleList(
            _SSMBranch(inner, d_state, rank, d_conv, num_select=1)
            for _ in range(sets))
        self.inter_norm = RMSNorm(inner) if inter_norm else None
        self.out_proj = nn.Linear(inner, dims, bias=False)

    @staticmethod
    def _stack(branches: nn.ModuleList) -> Dict[str, Optional[Tensor]]:

        def st(fn):
            return torch.stack([fn(b) for b in branches])

        conv = branches[0].d_conv
        return dict(
            x_proj=st(lambda b: b.x_proj.weight),
            dt_proj=st(lambda b: b.dt_proj.weight),
            dt_bias=st(lambda b: b.dt_proj.bias),
            A=st(lambda b: -torch.exp(b.A_log.float())),
            D=st(lambda b: b.D),
            conv_weight=st(lambda b: b.conv1d.weight[:, 0]) if conv else None,
            conv_bias=st(lambda b: b.conv1d.bias) if conv else None)

    def _norm(self, y: Tensor) -> Tensor:
        return self.inter_norm(y.movedim(2, -1)).movedim(-1, 2)

    def forward(self, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """(B, H*W, dims) -> (B, H*W, dims) for a row-major H x W grid."""
        batch, length, _ = x.shape
        height, width = grid
        if height * width != length:
            raise ValueError(f'Mamba2DMixer: {length} tokens do not form the '
                             f'{height}x{width} grid')
        xz = self.in_proj(x).transpose(1, 2).reshape(batch, -1, height, width)
        u, z = xz.chunk(2, dim=1)
        p1, p2 = self._stack(self.pass1), self._stack(self.pass2)
        y = selective_scan_2d(
            u,
            p1['x_proj'],
            p1['dt_proj'],
            p1['dt_bias'],
            p1['A'],
            p1['D'],
            p2['x_proj'],
            p2['dt_proj'],
            p2['dt_bias'],
            p2['A'],
            p2['D'],
            z=z,
            conv1_weight=p1['conv_weight'],
            conv1_bias=p1['conv_bias'],
            conv2_weight=p2['conv_weight'],
            conv2_bias=p2['conv_bias'],
            corners=self.corners,
            axis_order=self.axis_order,
            inter_norm=None if self.inter_norm is None else self._norm,
            out_scale=self.out_scale,
            legacy_v2m_mapping=self.legacy_v2m_mapping,
            backend=self.scan_backend)
        return self.out_proj(y.flatten(2).transpose(1, 2))


class VimBlock(nn.Module):
    """Pre-norm residual block ``x + dp(mixer(RMSNorm(x)))``.

    Args:
        dims (int): Token channels.
        mixer (str): One of :data:`MIXERS`.
        drop_path (float): Stochastic depth rate.
        mixer_cfg (dict, optional): Keyword arguments of the mixer.
    """

    def __init__(self,
                 dims: int,
                 mixer: str = 'bidirectional',
                 drop_path: float = 0.,
                 mixer_cfg: Optional[dict] = None) -> None:
        super().__init__()
        _check_choice('mixer', mixer, MIXERS)
        self.norm = RMSNorm(dims)
        cfg = dict(mixer_cfg or {})
        if mixer == '2d':
            self.mixer = Mamba2DMixer(dims, **cfg)
        else:
            self.mixer = MambaMixer(dims, direction=mixer, **cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()

    def forward(self, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        return x + self.drop_path(self.mixer(self.norm(x), grid))


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
        _check_choice('mixer', s['mixer'], MIXERS)
        _check_choice('tokenizer', s['tokenizer'], TOKENIZERS)
        _check_choice('cls_token', s['cls_token'], CLS_TOKENS)
        _check_choice('pooling', s['pooling'], POOLINGS)
        _check_choice('out_type', out_type, OUT_TYPES)
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
        self.out_indices = self._parse_out_indices(out_indices)

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
        dpr = torch.linspace(0, drop_path_rate, self.num_layers).tolist()
        self.layers = nn.ModuleList(
            VimBlock(dims, self.mixer, dpr[i], cfg)
            for i in range(self.num_layers))
        if final_norm:
            self.norm_f = RMSNorm(dims)
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

    def _parse_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            real = index + self.num_layers if index < 0 else index
            if not 0 <= real < self.num_layers:
                raise IndexError(f'out_indices entry {index} is out of range '
                                 f'for {self.num_layers} blocks')
            parsed.append(real)
        return tuple(sorted(set(parsed)))

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
        file strictly (``weights_only=True``; keys under ``prefix``,
        default ``'backbone.'``; a mismatch names the first differing keys
        and shapes)."""
        cfgs = self.init_cfg
        if isinstance(cfgs, dict):
            cfgs = [cfgs]
        pretrained = [c for c in (cfgs or []) if c.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError('Vim init_cfg: at most one Pretrained entry')
        cfg = pretrained[0]
        path = cfg.get('checkpoint')
        if not path:
            raise ValueError('Vim init_cfg Pretrained needs `checkpoint`')
        prefix = cfg.get('prefix') or 'backbone.'
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state = load_checkpoint_file(path)
        if any(k.startswith(prefix) for k in state):
            state = {
                k[len(prefix):]: v
                for k, v in state.items() if k.startswith(prefix)
            }
        strict_load_state_dict(
            self,
            state,
            source=path,
            hint=(f'The model is Vim(mixer={self.mixer!r}, tokenizer='
                  f'{self.tokenizer!r}, embed_dims={self.embed_dims}, depth='
                  f'{self.num_layers}, cls_token={self.cls_position!r}); a '
                  'checkpoint of another variant does not fit.'))
        print_log(
            f'Vim: loaded {len(state)} tensors from {path}', logger='current')
        self._is_init = True

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
