"""VMamba token-mixer variants: V2M's 2-D scan and a frequency prefix.

Both papers report VMamba-based models (V2M-S*/B*, GlobalMamba-T/S/B) whose
code is unreleased, so both SS2D subclasses here are **our design**:

- :class:`SS2DCorner2D` (``VMamba(scan='2d')``), after V2M
  (https://arxiv.org/abs/2410.10382): the cross scan is replaced by
  :func:`~zeromamba_mm.ops.selective_scan_2d` from the four corners, one
  parameter set per corner. Pass 1 (row, input-dependent dt and B) reuses
  SS2D's per-direction parameters, so official VMamba weights load for
  them (the C rows of ``x_proj_weight`` are loaded and unused); pass 2
  (column, input-dependent dt and C) has new weights ``x_proj2_weight``,
  ``dt_projs2_weight``, ``dt_projs2_bias``, ``A2_logs``, ``D2s`` (and
  ``inter_norm.*`` when enabled).
- :class:`SS2DFrequency` (``VMamba(serialization='dct')``), after
  GlobalMamba (https://arxiv.org/abs/2410.10316): every scan direction
  first reads K-1 low-pass versions of the SS2D input (DCT levels resized
  to ``ceil(H / 2^(K-1-k))`` grids, low to high, each flattened in the
  direction's order), then the grid tokens; only the grid outputs are kept.
  Every position thus starts from the global, low-frequency content; the
  map keeps its H x W shape for dense heads. No new weights: official
  checkpoints load unchanged.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils import LayerNorm2d
from torch import Tensor

from zeromamba_mm.ops import selective_scan_2d
from ..utils.dct import dct_matrix, lowpass_masks, lowpass_support
from .ssm_init import init_mamba_ssm_
from .vmamba_layers import NUM_DIRECTIONS, SS2D, cross_merge

SCANS = ('cross', '2d')
SERIALIZATIONS = ('none', 'dct')
_CORNERS = ('tl', 'tr', 'bl', 'br')


class SS2DCorner2D(SS2D):
    """SS2D with V2M's 2-D selective scan from the four corners.

    Args:
        channels (int): See :class:`SS2D`.
        axis_order (str): ``'row'``, ``'col'`` or ``'both'`` (each corner
            row-first and column-first, sharing the corner's parameters).
        inter_norm (bool): LayerNorm over E between the passes (new
            weights). Defaults to False.
        out_scale (float): Factor on the sum over the directions (out_norm
            follows, so it only matters for eps). Defaults to 1.
        legacy_v2m_mapping (bool): The released V2M code's directions and
            recombination (comparisons only; square maps).
        **kwargs: The other arguments of :class:`SS2D`.
    """

    def __init__(self,
                 channels: int,
                 axis_order: str = 'row',
                 inter_norm: bool = False,
                 out_scale: float = 1.0,
                 legacy_v2m_mapping: bool = False,
                 **kwargs) -> None:
        super().__init__(channels, **kwargs)
        if axis_order not in ('row', 'col', 'both'):
            raise ValueError(f'Unknown axis_order {axis_order!r}; choose one '
                             "of ('row', 'col', 'both')")
        self.axis_order = axis_order
        self.out_scale = out_scale
        self.legacy_v2m_mapping = legacy_v2m_mapping
        k, e, r, n = NUM_DIRECTIONS, self.d_inner, self.dt_rank, self.d_state
        self.x_proj2_weight = torch.nn.Parameter(torch.empty(k, r + n, e))
        self.dt_projs2_weight = torch.nn.Parameter(torch.empty(k, e, r))
        self.dt_projs2_bias = torch.nn.Parameter(torch.empty(k, e))
        self.A2_logs = torch.nn.Parameter(torch.empty(k * e, n))
        self.D2s = torch.nn.Parameter(torch.empty(k * e))
        self.inter_norm = LayerNorm2d(e) if inter_norm else None
        self.reset_pass2_parameters()

    #: Parameter names that official VMamba checkpoints do not have.
    @property
    def new_weight_names(self) -> Tuple[str, ...]:
        names = ('x_proj2_weight', 'dt_projs2_weight', 'dt_projs2_bias',
                 'A2_logs', 'D2s')
        if self.inter_norm is not None:
            names += ('inter_norm.weight', 'inter_norm.bias')
        return names

    @torch.no_grad()
    def reset_pass2_parameters(self) -> None:
        """The pass-2 weights get SS2D's SSM init (the pass-1 ones keep
        :meth:`reset_ssm_parameters`')."""
        e = self.d_inner
        self.x_proj2_weight.uniform_(-1 / math.sqrt(e), 1 / math.sqrt(e))
        init_mamba_ssm_(self.dt_projs2_weight, self.dt_projs2_bias,
                        self.A2_logs, self.D2s, *self._dt_range)

    def _norm(self, y: Tensor) -> Tensor:
        b, g, e, h, w = y.shape
        return self.inter_norm(y.reshape(b * g, e, h, w)).view(b, g, e, h, w)

    def forward_core(self, x: Tensor) -> Tensor:
        k, e, r, n = NUM_DIRECTIONS, self.d_inner, self.dt_rank, self.d_state
        # Corner c of pass 1 takes SS2D's direction-c parameters (dt, B rows
        # of x_proj_weight).
        p = dict(
            x_proj1=self.x_proj_weight[:, :r + n],
            dt_proj1=self.dt_projs_weight,
            dt_bias1=self.dt_projs_bias,
            A1=-torch.exp(self.A_logs.float()).view(k, e, n),
            D1=self.Ds.view(k, e),
            x_proj2=self.x_proj2_weight,
            dt_proj2=self.dt_projs2_weight,
            dt_bias2=self.dt_projs2_bias,
            A2=-torch.exp(self.A2_logs.float()).view(k, e, n),
            D2=self.D2s.view(k, e))
        if self.axis_order == 'both' and not self.legacy_v2m_mapping:
            index = torch.arange(k, device=x.device).repeat_interleave(2)
            p = {name: v[index] for name, v in p.items()}
        kwargs = self._scan_kwargs()
        y = selective_scan_2d(
            x,
            corners=_CORNERS,
            axis_order=self.axis_order,
            inter_norm=None if self.inter_norm is None else self._norm,
            out_scale=self.out_scale,
            legacy_v2m_mapping=self.legacy_v2m_mapping,
            backend=kwargs.get('backend', 'auto'),
            **p)
        return self.out_norm(y).to(x.dtype)


class SS2DFrequency(SS2D):
    """SS2D whose four scans start with low-pass prefix tokens.

    Args:
        channels (int): See :class:`SS2D`.
        num_levels (int): K; K-1 prefix levels. Defaults to 4.
        mask_shape (str): ``'triangle'`` (GlobalMamba's code), ``'square'``
            or ``'radial'``.
        mode (str): ``'lowpass'`` (nested) or ``'band'``.
        **kwargs: The other arguments of :class:`SS2D`.
    """

    new_weight_names: Tuple[str, ...] = ()

    def __init__(self,
                 channels: int,
                 num_levels: int = 4,
                 mask_shape: str = 'triangle',
                 mode: str = 'lowpass',
                 **kwargs) -> None:
        super().__init__(channels, **kwargs)
        if mode not in ('lowpass', 'band'):
            raise ValueError(f'Unknown DCT level mode {mode!r}; choose one '
                             "of ('lowpass', 'band')")
        lowpass_masks(2, 2, num_levels, mask_shape)  # validates
        self.num_levels = int(num_levels)
        self.mask_shape = mask_shape
        self.mode = mode
        self._ops: Dict[tuple, tuple] = {}

    def prefix_grids(self, height: int, width: int) -> List[Tuple[int, int]]:
        """Grids of the K-1 prefix levels, low to high."""
        return [(max(1, math.ceil(height / 2**(self.num_levels - 1 - k))),
                 max(1, math.ceil(width / 2**(self.num_levels - 1 - k))))
                for k in range(self.num_levels - 1)]

    def _level_ops(self, height: int, width: int, dtype,
                   device) -> Tuple[Tensor, Tensor, List[Tuple[Tensor, ...]]]:
        """The DCT rows and columns that any prefix level keeps, and per
        level (left, mask, right) with ``P_k = left (mask * X) right``, X
        the DCT coefficients: the inverse DCT and the bilinear resize
        folded into two small matrices.

        Each level is low-pass, so only the coefficients inside its mask's
        support (a top-left block) are computed and used: the others are
        multiplied by zero (``'lowpass'`` and ``'band'`` alike).
        """
        key = (height, width, dtype, str(device))
        if key not in self._ops:
            mh = dct_matrix(height, torch.float64)
            mw = dct_matrix(width, torch.float64)
            masks = lowpass_masks(height, width, self.num_levels,
                                  self.mask_shape).double()
            if self.mode == 'band':
                masks = torch.cat([masks[:1], masks[1:] - masks[:-1]])
            ops = []
            for k, (gh, gw) in enumerate(self.prefix_grids(height, width)):
                rh = _resize_matrix(height, gh)
                rw = _resize_matrix(width, gw)
                # Constants from the mask rule (not from the mask tensor):
                # exportable, and the band masks lie inside these blocks.
                hk, wk = lowpass_support(height, width, k, self.num_levels,
                                         self.mask_shape)
                ops.append(
                    (rh @ mh.T[:, :hk], masks[k][:hk, :wk], mw[:wk] @ rw.T))
            hmax = max((o[1].shape[0] for o in ops), default=0)
            wmax = max((o[1].shape[1] for o in ops), default=0)

            def cast(t):
                return t.to(dtype=dtype, device=device)

            self._ops[key] = (cast(mh[:hmax]), cast(mw[:wmax]),
                              [tuple(cast(t) for t in o) for o in ops])
        return self._ops[key]

    def prefix_maps(self, x: Tensor) -> List[Tensor]:
        """Low-pass prefix maps of (B, E, H, W), resized to their grids."""
        height, width = x.shape[-2:]
        mh, mw, ops = self._level_ops(height, width, x.dtype, x.device)
        if not ops:
            return []
        coeffs = mh @ x @ mw.T  # the kept (top-left) DCT coefficients
        return [
            left @ (coeffs[..., :mask.shape[0], :mask.shape[1]] * mask) @ right
            for left, mask, right in ops
        ]

    def serialize(self, x: Tensor) -> Tensor:
        """(B, E, H, W) -> (B, 4, E, Lp + H*W): prefix tokens then grid
        tokens, per direction (rows, columns, and both reversed).

        Written segment by segment into one tensor (no concatenated or
        stacked copies).
        """
        maps = self.prefix_maps(x) + [x]
        length = sum(m.shape[-1] * m.shape[-2] for m in maps)
        out = x.new_empty(x.shape[:1] + (NUM_DIRECTIONS, ) + x.shape[1:2] +
                          (length, ))
        start = 0
        for m in maps:
            seg = slice(start, start + m.shape[-1] * m.shape[-2])
            rows = out[:, 0, :, seg].view_as(m)
            rows.copy_(m)
            out[:, 1, :,
                seg].view(m.shape[:2] + m.shape[-1:] + m.shape[-2:-1]).copy_(
                    m.transpose(2, 3))
            # Reversed directions read every segment reversed.
            out[:, 2:, :, seg] = out[:, :2, :, seg].flip(-1)
            start = seg.stop
        return out

    def forward_core(self, x: Tensor) -> Tensor:
        batch, e, height, width = x.shape
        k = NUM_DIRECTIONS
        xs = self.serialize(x)
        length = xs.shape[-1]
        ys = self.scan_directions(xs.reshape(batch, k * e, length))
        grid = height * width
        ys = ys[..., length - grid:]
        # Grid segments are in cross_scan's layout: merge as SS2D does.
        y = cross_merge(ys.contiguous(), height, width)
        return self.out_norm(y).to(x.dtype)


def _resize_matrix(size: int, out: int) -> Tensor:
    """(out, size) matrix of 1-D linear resizing with align_corners=False
    (bilinear resizing is separable into two of them)."""
    eye = torch.eye(size, dtype=torch.float64)[None]  # (1, size, size)
    res = F.interpolate(eye, size=out, mode='linear', align_corners=False)
    return res[0].T.contiguous()


def variant_ssm_cfgs(ssm_cfg: dict,
                     num_stages: int,
                     scan: str = 'cross',
                     scan_cfg: Optional[dict] = None,
                     serialization: str = 'none',
                     serialization_cfg: Optional[dict] = None) -> List[dict]:
    """Per-stage SS2D keyword arguments of a VMamba variant.

    Args:
        ssm_cfg (dict): SS2D arguments of the plain model.
        num_stages (int): Number of stages.
        scan (str): ``'cross'`` (VMamba) or ``'2d'`` (:class:`SS2DCorner2D`).
        scan_cfg (dict, optional): Arguments of :class:`SS2DCorner2D`.
        serialization (str): ``'none'`` or ``'dct'`` (:class:`SS2DFrequency`).
        serialization_cfg (dict, optional): Arguments of
            :class:`SS2DFrequency`, plus ``stages`` (the stage indices that
            use it; default all).

    Returns:
        list[dict]: One SS2D config per stage (with ``op_class`` for a
        variant).
    """
    if scan not in SCANS:
        raise ValueError(f'Unknown VMamba scan {scan!r}; choose one of '
                         f'{SCANS}')
    if serialization not in SERIALIZATIONS:
        raise ValueError(f'Unknown VMamba serialization {serialization!r}; '
                         f'choose one of {SERIALIZATIONS}')
    if scan == '2d' and serialization != 'none':
        raise ValueError("VMamba: scan='2d' and serialization='dct' cannot "
                         'be combined (the prefix tokens form no grid)')
    if scan_cfg and scan != '2d':
        raise ValueError("VMamba: scan_cfg is only used with scan='2d'")
    if serialization_cfg and serialization != 'dct':
        raise ValueError("VMamba: serialization_cfg is only used with "
                         "serialization='dct'")
    cfgs = [dict(ssm_cfg) for _ in range(num_stages)]
    if scan == '2d':
        for cfg in cfgs:
            cfg.update(scan_cfg or {}, op_class=SS2DCorner2D)
    if serialization == 'dct':
        extra = dict(serialization_cfg or {})
        stages: Sequence[int] = extra.pop('stages', range(num_stages))
        bad = [s for s in stages if not 0 <= s < num_stages]
        if bad:
            raise ValueError(f'VMamba serialization_cfg stages {bad} are out '
                             f'of range for {num_stages} stages')
        for s in stages:
            cfgs[s].update(extra, op_class=SS2DFrequency)
    return cfgs


def new_weight_keys(model: torch.nn.Module) -> List[str]:
    """State-dict keys of ``model`` that official VMamba files lack."""
    keys = []
    for name, module in model.named_modules():
        for param in getattr(module, 'new_weight_names', ()):
            keys.append(f'{name}.{param}' if name else param)
    return keys
