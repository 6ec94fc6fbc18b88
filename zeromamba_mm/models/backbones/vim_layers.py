"""Building blocks of Vim and its GlobalMamba / V2M variants.

The Mamba token mixers (one causal scan, a bidirectional pair, or V2M's 2-D
scan over the token grid) and the pre-norm residual block that holds one.
Norms are :class:`torch.nn.RMSNorm` (``weight`` only, eps 1e-5 as Vim), so
the parameter names of released files are unchanged. The backbone is
:class:`zeromamba_mm.models.backbones.Vim`.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor

from zeromamba_mm.ops import (causal_depthwise_conv1d, selective_scan,
                              selective_scan_2d)
from zeromamba_mm.ops.selective_scan_2d import (LEGACY_V2M_DIRECTIONS,
                                                parse_directions)
from .ssm_init import init_mamba_ssm_

__all__ = [
    'MIXERS', 'check_choice', 'rms_norm', 'channel_linear', 'MambaMixer',
    'Mamba2DMixer', 'VimBlock'
]

MIXERS = ('bidirectional', 'forward', '2d')
#: Vim's RMSNorm epsilon.
RMS_EPS = 1e-5


def check_choice(name: str, value, choices) -> None:
    """Raise a ValueError naming ``choices`` unless ``value`` is one."""
    if value not in choices:
        raise ValueError(f'Unknown Vim {name} {value!r}; choose one of '
                         f'{tuple(choices)}')


def rms_norm(dims: int) -> nn.RMSNorm:
    """Vim's norm: ``x / rms(x) * weight`` over the last axis."""
    return nn.RMSNorm(dims, eps=RMS_EPS)


def channel_linear(weight: Tensor, x: Tensor) -> Tensor:
    """``weight @ x``: a bias-free linear layer over the channels of a
    channel-major (B, C_in, L) tensor, written as (B, C_out, L).

    One batched GEMM that writes this layout directly: ``torch.matmul``
    would fold the batch into a (B L, C_in) GEMM and then copy its
    transposed result, and that strided copy costs about as much as the
    GEMM. ``x`` may be a transposed or sliced view.
    """
    return torch.bmm(weight.expand(x.shape[0], -1, -1), x)


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
        self.A_log = nn.Parameter(torch.empty(inner, d_state))
        self.D = nn.Parameter(torch.empty(inner))
        init_mamba_ssm_(self.dt_proj.weight, self.dt_proj.bias, self.A_log,
                        self.D, dt_min, dt_max, dt_init_floor)

    def conv(self, x: Tensor) -> Tensor:
        """Causal depthwise conv + SiLU over (B, E, L) (``conv1d``'s
        parameters, computed by :func:`causal_depthwise_conv1d`)."""
        if not self.d_conv:
            return x
        u = causal_depthwise_conv1d(x, self.conv1d.weight, self.conv1d.bias)
        # In place where autograd records nothing: one (B, E, L) buffer
        # fewer to allocate and fault in (a fresh buffer costs on CPU about
        # as much as the pass over it).
        return F.silu(u, inplace=not torch.is_grad_enabled())

    def scan(self, x: Tensor, z: Optional[Tensor], backend: str) -> Tensor:
        """Mamba's selective scan of (B, E, L) with gate ``z`` (None: no
        gate)."""
        u = self.conv(x)
        rank = self.dt_proj.in_features
        n = self.A_log.shape[1]
        # Channel-major GEMMs: delta comes out (B, E, L) as the scan takes
        # it, with no transpose copy.
        x_dbl = channel_linear(self.x_proj.weight, u)  # (B, R + 2N, L)
        dt, b, c = torch.split(x_dbl, [rank, n, n], dim=1)
        delta = channel_linear(self.dt_proj.weight, dt)
        return selective_scan(
            u,
            delta,
            -torch.exp(self.A_log.float()),
            b,
            c,
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
        # in_proj channel-major: (B, 2E, L) straight from the GEMM, so x
        # and z need no transpose copies before the conv and the scan.
        xz = channel_linear(self.in_proj.weight, x.transpose(1, 2))
        x, z = xz.chunk(2, dim=1)
        if self.direction == 'forward':
            y = self.fwd.scan(x, z, self.scan_backend)
        else:
            # The gate is per token, so it commutes with the mean of the
            # directions: (y * g + flip(y_b * flip(g))) / 2 = mean(y,
            # flip(y_b)) * g with g = silu(z): one gate, z never flipped.
            y = self.fwd.scan(x, None, self.scan_backend)
            y_b = self.bwd.scan(x.flip(-1), None, self.scan_backend).flip(-1)
            if torch.is_grad_enabled():
                y = torch.lerp(y, y_b, 0.5) * F.silu(z)
            else:  # the same in place (x and z are not read again)
                y = y.lerp_(y_b, 0.5).mul_(F.silu(z, inplace=True))
        # y^T W^T: the GEMM reads y transposed in place, writes (B, L, dims).
        weight = self.out_proj.weight.t()
        return torch.bmm(y.transpose(1, 2), weight.expand(y.shape[0], -1, -1))


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
        self.inter_norm = rms_norm(inner) if inter_norm else None
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
        check_choice('mixer', mixer, MIXERS)
        self.norm = rms_norm(dims)
        cfg = dict(mixer_cfg or {})
        if mixer == '2d':
            self.mixer = Mamba2DMixer(dims, **cfg)
        else:
            self.mixer = MambaMixer(dims, direction=mixer, **cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()

    def forward(self, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        return x + self.drop_path(self.mixer(self.norm(x), grid))
