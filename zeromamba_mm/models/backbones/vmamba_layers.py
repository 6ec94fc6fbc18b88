"""Building blocks of VMamba v2 (channel-first layout).

VMamba: Visual State Space Model, Liu et al., NeurIPS 2024
(https://arxiv.org/abs/2401.10166). Everything here works on NCHW tensors:
the released v2 models use ``LayerNorm2d`` everywhere (mmpretrain's: a
LayerNorm over the channels of an NCHW map, eps 1e-5, parameters ``weight``
and ``bias`` as the release's ``ln2d``), so no permutation to channel-last
is ever needed. Parameter names follow the official release
so that its checkpoints load after a light renaming
(:func:`zeromamba_mm.models.utils.convert_official_vmamba`).
"""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmpretrain.models.utils import LayerNorm2d
from torch import Tensor

from zeromamba_mm.ops import selective_scan
from .ssm_init import init_mamba_ssm_

#: Number of scan directions of SS2D (row-major, column-major, and both
#: reversed).
NUM_DIRECTIONS = 4


class Linear2d(nn.Linear):
    """A per-pixel linear layer on NCHW tensors (a 1x1 convolution).

    It keeps the 2-D ``(out, in)`` weight of :class:`torch.nn.Linear` (the
    layout of the release files) and is an ``nn.Linear`` subclass so that
    ``TruncNormal(layer='Linear')`` initialisers treat it like the official
    code does.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class ConvMlp(nn.Module):
    """The feed-forward network of a VSS block: fc1 -> GELU -> fc2.

    Args:
        in_channels (int): Input and output channels.
        hidden_channels (int): Hidden channels.
    """

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.fc1 = Linear2d(in_channels, hidden_channels)
        # Exact (erf) GELU, as in the release.
        self.act = nn.GELU()
        self.fc2 = Linear2d(hidden_channels, in_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def cross_scan(x: Tensor) -> Tensor:
    """Unfold a feature map into the 4 scan sequences of SS2D.

    Args:
        x (Tensor): Feature map of shape (B, C, H, W).

    Returns:
        Tensor: Shape (B, 4, C, H*W): row-major, column-major, reversed
        row-major, reversed column-major.
    """
    rows = x.flatten(2)
    cols = x.transpose(2, 3).flatten(2)
    forward = torch.stack([rows, cols], dim=1)
    return torch.cat([forward, forward.flip(-1)], dim=1)


def cross_merge(ys: Tensor, height: int, width: int) -> Tensor:
    """Fold the 4 scan outputs back onto the grid and sum them.

    Inverse bookkeeping of :func:`cross_scan`: each direction is mapped back
    to its pixel before the directions are added.

    Args:
        ys (Tensor): Scan outputs of shape (B, 4, C, H*W).
        height (int): H of the feature map.
        width (int): W of the feature map.

    Returns:
        Tensor: Shape (B, C, H, W).
    """
    batch, _, channels, _ = ys.shape
    ys = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    rows = ys[:, 0].reshape(batch, channels, height, width)
    cols = ys[:, 1].reshape(batch, channels, width, height).transpose(2, 3)
    return rows + cols


class SS2D(nn.Module):
    """2D selective scan (the token mixer of VMamba, forward type
    ``v05_noz``: no gate branch).

    ``in_proj`` (C -> E) -> depthwise 3x3 conv (no bias) -> SiLU -> cross
    scan into 4 sequences -> per-direction projections to (dt, B, C) and dt
    (R -> E) -> selective scan (``delta_softplus=True``,
    ``A = -exp(A_logs)``, ``D = Ds``) -> cross merge -> ``out_norm`` (over E)
    -> ``out_proj`` (E -> C).

    Args:
        channels (int): C, channels of the input/output.
        d_state (int): N, state size of the SSM.
        ssm_ratio (float): E = int(ssm_ratio * C).
        dt_rank (int | str): R; ``'auto'`` means ``ceil(C / 16)``.
        d_conv (int): Kernel size of the depthwise conv.
        dt_min (float): Lower bound of the initial step size.
        dt_max (float): Upper bound of the initial step size.
        dt_init_floor (float): Floor of the initial step size.
        scan_backend (str): Passed to
            :func:`zeromamba_mm.ops.selective_scan` as ``backend`` unless it
            is ``'auto'`` (then the op picks).
    """

    def __init__(self,
                 channels: int,
                 d_state: int = 1,
                 ssm_ratio: float = 2.0,
                 dt_rank='auto',
                 d_conv: int = 3,
                 dt_min: float = 1e-3,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4,
                 scan_backend: str = 'auto') -> None:
        super().__init__()
        self.d_model = int(channels)
        self.d_state = int(d_state)
        self.d_inner = int(ssm_ratio * channels)
        self.dt_rank = (
            math.ceil(channels / 16) if dt_rank == 'auto' else int(dt_rank))
        self.scan_backend = scan_backend
        k, e, r, n = NUM_DIRECTIONS, self.d_inner, self.dt_rank, self.d_state

        self.in_proj = Linear2d(self.d_model, e, bias=False)
        self.conv2d = nn.Conv2d(
            e, e, d_conv, padding=(d_conv - 1) // 2, groups=e, bias=False)
        self.act = nn.SiLU()
        # Per-direction projections, stored stacked as in the release:
        # x_proj_weight (K, R + 2N, E), dt_projs_weight (K, E, R).
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * n, e))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, e, r))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, e))
        self.A_logs = nn.Parameter(torch.empty(k * e, n))
        self.Ds = nn.Parameter(torch.empty(k * e))
        self.out_norm = LayerNorm2d(e)
        self.out_proj = Linear2d(e, self.d_model, bias=False)

        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Initialise the SSM parameters like Mamba (S4D-real A, unit D,
        step sizes log-uniform in [dt_min, dt_max]).

        ``x_proj_weight`` gets the default ``nn.Linear`` init of each of its
        K slices; ``dt_projs_weight`` is uniform in +-R^-0.5.
        """
        e = self.d_inner
        bound = 1.0 / math.sqrt(e)  # nn.Linear default (kaiming, a=sqrt(5))
        self.x_proj_weight.uniform_(-bound, bound)
        init_mamba_ssm_(self.dt_projs_weight, self.dt_projs_bias, self.A_logs,
                        self.Ds, *self._dt_range)

    def _scan_kwargs(self) -> Dict[str, str]:
        # Only pass `backend` when forced, so the call also works with an
        # op that does not take the argument.
        if self.scan_backend == 'auto':
            return {}
        return {'backend': self.scan_backend}

    def scan_directions(self, xs: Tensor) -> Tensor:
        """Project and selective-scan the K direction sequences.

        Args:
            xs (Tensor): (B, K·E, L), the K serialised sequences stacked.

        Returns:
            Tensor: (B, K, E, L) float32 scan outputs.
        """
        batch, ke, length = xs.shape
        k, r, n = NUM_DIRECTIONS, self.dt_rank, self.d_state
        e = ke // k
        # Grouped 1x1 convolutions apply each direction's own projection.
        x_dbl = F.conv1d(xs, self.x_proj_weight.reshape(-1, e, 1), groups=k)
        dts, bs, cs = torch.split(
            x_dbl.view(batch, k, r + 2 * n, length), [r, n, n], dim=2)
        dts = F.conv1d(
            dts.reshape(batch, k * r, length),
            self.dt_projs_weight.reshape(k * e, r, 1),
            groups=k)
        ys = selective_scan(
            xs,
            dts,
            -torch.exp(self.A_logs.float()),
            bs.contiguous(),
            cs.contiguous(),
            D=self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True,
            **self._scan_kwargs())
        return ys.view(batch, k, e, length)

    def forward_core(self, x: Tensor) -> Tensor:
        """Cross scan -> selective scan -> cross merge -> out_norm.

        Args:
            x (Tensor): (B, E, H, W), after in_proj, conv and SiLU.

        Returns:
            Tensor: (B, E, H, W) in ``x``'s dtype.
        """
        batch, e, height, width = x.shape
        length = height * width
        ys = self.scan_directions(
            cross_scan(x).reshape(batch, NUM_DIRECTIONS * e, length))
        y = cross_merge(ys, height, width)
        return self.out_norm(y).to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv2d(self.in_proj(x)))
        return self.out_proj(self.forward_core(x))


class VSSBlock(nn.Module):
    """A VMamba block: ``x + dp(ss2d(norm(x)))`` then
    ``x + dp(mlp(norm2(x)))``.

    Args:
        channels (int): Channels of the stage.
        drop_path (float): Stochastic depth rate of both residual branches.
        mlp_ratio (float): Hidden channels of the MLP / channels.
        ssm_cfg (dict, optional): Keyword arguments of :class:`SS2D` (or of
            the SS2D subclass given as ``op_class``).
    """

    def __init__(self,
                 channels: int,
                 drop_path: float = 0.,
                 mlp_ratio: float = 4.0,
                 ssm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        ssm_cfg = dict(ssm_cfg or {})
        # VMamba variants (scan='2d', serialization='dct') pass their SS2D
        # subclass as `op_class` (see vmamba_variants.py).
        op_class = ssm_cfg.pop('op_class', SS2D)
        self.op = op_class(channels, **ssm_cfg)
        self.drop_path = (
            DropPath(drop_path) if drop_path > 0 else nn.Identity())
        self.norm2 = LayerNorm2d(channels)
        self.mlp = ConvMlp(channels, int(channels * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def make_stem(in_channels: int, channels: int) -> nn.Sequential:
    """Stem "v2": conv3x3/s2 (C/2) -> LN2d -> GELU -> conv3x3/s2 (C) -> LN2d.

    Identity placeholders keep the release's indices (``patch_embed.0``,
    ``.2``, ``.5``, ``.7``).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1),
        nn.Identity(),
        LayerNorm2d(channels // 2),
        nn.Identity(),
        nn.GELU(),
        nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1),
        nn.Identity(),
        LayerNorm2d(channels),
    )


def make_downsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """Downsample "v3": conv3x3/s2 -> LN2d (indices ``.1`` and ``.3`` as in
    the release)."""
    return nn.Sequential(
        nn.Identity(),
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
        nn.Identity(),
        LayerNorm2d(out_channels),
    )
