"""2-D selective scan of V2M, built on the plugin's 1-D selective scan.

V2M: "Visual 2-Dimensional Mamba for Image Representation Learning", Wang,
Zheng et al. (https://arxiv.org/abs/2410.10382). Each state of a 2-D SSM
depends on its row and its column neighbour; the released code makes that
hardware-efficient by two 1-D Mamba passes over the token grid, one along
each axis, and processes the grid from its corners.

For one *direction* (a corner plus an axis order) on a grid ``x`` seen from
that corner (flipped so that the corner is the top-left one), with the
row-first order::

    pass 1, along each row i (t = j):
        u1 = act(causal_conv1(x))                    # optional conv
        [dt1 | B1] = x_proj1 u1                      # input-dependent dt, B
        h1[t] = exp(Δ1[t] A1) h1[t-1] + Δ1[t] u1[t] B1[t]
        y1[t] = (Σ_n h1[t, n] + D1 u1[t]) * silu(z)  # C fixed to ones
    (optional norm of y1 over the channels)
    pass 2, along each column j (t = i):
        u2 = act(causal_conv2(y1))
        [dt2 | C2] = x_proj2 u2                      # input-dependent dt, C
        h2[t] = exp(Δ2[t] A2) h2[t-1] + Δ2[t] u2[t]  # B fixed to ones
        y2[t] = (C2[t] . h2[t] + D2 u2[t]) * silu(z)

(``Δ = softplus(dt_proj dt + dt_bias)``). The column-first order swaps the
roles of the axes. Every direction's output is flipped back onto its own
tokens and the directions are summed; ``out_scale`` multiplies the sum (the
released code halves it). The official recombination, which leaves the
contributions transposed or rotated and never scans the bottom-right
corner, is available as ``legacy_v2m_mapping=True`` for comparisons only.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .causal_conv1d import causal_depthwise_conv1d
from .selective_scan_dispatch import BACKENDS, selective_scan

#: Corner names and their flips (flip H, flip W) that bring the corner to
#: the top-left.
CORNER_FLIPS = {
    'tl': (False, False),
    'tr': (False, True),
    'bl': (True, False),
    'br': (True, True),
}
#: Axis orders: 'row' (row pass first), 'col' (column pass first).
AXIS_ORDERS = ('row', 'col')
#: Directions of the released V2M code (recombined by the legacy mapping).
LEGACY_V2M_DIRECTIONS = (('tl', 'row'), ('tl', 'col'), ('tr', 'row'), ('bl',
                                                                       'col'))


def parse_directions(corners: Sequence[str] = ('tl', 'tr', 'bl', 'br'),
                     axis_order: str = 'row') -> Tuple[Tuple[str, str], ...]:
    """The (corner, order) pairs scanned for ``corners`` and ``axis_order``.

    Args:
        corners (Sequence[str]): Subset of ``'tl'``, ``'tr'``, ``'bl'``,
            ``'br'``.
        axis_order (str): ``'row'`` (row pass first), ``'col'`` (column pass
            first) or ``'both'`` (each corner twice, 2x the directions).

    Returns:
        tuple: (corner, order) pairs, corners outer, orders inner.
    """
    orders = {'row': ('row', ), 'col': ('col', ), 'both': ('row', 'col')}
    if axis_order not in orders:
        raise ValueError(f'Unknown axis_order {axis_order!r}; choose one of '
                         f'{sorted(orders)}')
    if not corners:
        raise ValueError('corners must name at least one corner of '
                         f'{sorted(CORNER_FLIPS)}')
    bad = [c for c in corners if c not in CORNER_FLIPS]
    if bad:
        raise ValueError(f'Unknown corner(s) {bad}; choose from '
                         f'{sorted(CORNER_FLIPS)}')
    if len(set(corners)) != len(corners):
        raise ValueError(f'corners {list(corners)} repeat a corner')
    return tuple((c, o) for c in corners for o in orders[axis_order])


def _flip(x: Tensor, corner: str) -> Tensor:
    """Flip the last two axes so that ``corner`` becomes the top-left."""
    flip_h, flip_w = CORNER_FLIPS[corner]
    dims = [d for d, f in ((-2, flip_h), (-1, flip_w)) if f]
    return x.flip(dims) if dims else x


def _expand(param: Optional[Tensor], groups: int,
            name: str) -> Optional[Tensor]:
    """Expand a per-direction parameter with a leading dim of 1 to G."""
    if param is None:
        return None
    if param.shape[0] == groups:
        return param
    if param.shape[0] == 1:
        return param.expand(groups, *param.shape[1:])
    raise ValueError(f'selective_scan_2d: {name} must have a leading dim of '
                     f'1 (shared) or {groups} (one per direction), got shape '
                     f'{tuple(param.shape)}')


def _causal_conv(u: Tensor, weight: Optional[Tensor],
                 bias: Optional[Tensor]) -> Tensor:
    """Depthwise causal conv1d + SiLU over (batch, G*E, L); identity when
    ``weight`` is None."""
    if weight is None:
        return u
    k = weight.shape[-1]
    channels = u.shape[1]
    w = weight.reshape(channels, 1, k)
    b = None if bias is None else bias.reshape(channels)
    return F.silu(causal_depthwise_conv1d(u, w, b))


def _line_pass(u: Tensor, z: Optional[Tensor], x_proj: Tensor, dt_proj: Tensor,
               dt_bias: Tensor, A: Tensor, D: Tensor,
               conv_weight: Optional[Tensor], conv_bias: Optional[Tensor],
               select: str, backend: str) -> Tensor:
    """One 1-D pass along the last axis of ``u``, (G, E, B', L).

    The directions' sequences lie side by side in memory, so that each
    direction's projections are one GEMM over all its B' * L tokens (as
    in SS2D, whose batch is 1); the scan reads the same memory as a
    (B', G*E, L) view. ``select='B'`` makes B input-dependent (C = ones),
    ``'C'`` the reverse.

    Returns:
        Tensor: (B', G*E, L), contiguous.
    """
    groups, e, batch, length = u.shape
    rank, n = dt_proj.shape[-1], A.shape[-1]
    u = u.contiguous()
    seq = u.view(groups * e, batch, length).transpose(0, 1)
    seq = _causal_conv(seq, conv_weight, conv_bias)
    # A view for the convolution-free pass (and for the conv's output,
    # which keeps its input's layout).
    tokens = seq.transpose(0, 1).reshape(groups, e, batch * length)
    x_dbl = torch.bmm(x_proj, tokens)  # (G, R + N, B' * L)
    dts, sel = torch.split(x_dbl, [rank, n], dim=1)
    delta = torch.bmm(dt_proj, dts).view(groups * e, batch,
                                         length).transpose(0, 1)
    # The fixed projection as a per-step (batch, G, N, L) tensor: the layout
    # every backend takes for B and C.
    sel = sel.reshape(groups, n, batch, length).permute(2, 0, 1,
                                                        3).contiguous()
    ones = torch.ones_like(sel)
    b_arg, c_arg = (sel, ones) if select == 'B' else (ones, sel)
    if z is not None:
        z = z.contiguous().view(groups * e, batch, length).transpose(0, 1)
    # The SSM parameters in float32 (float64 for float64 inputs).
    pdt = torch.float64 if u.dtype == torch.float64 else torch.float32
    y = selective_scan(
        seq,
        delta,
        A.reshape(groups * e, n).to(pdt),
        b_arg,
        c_arg,
        D=D.reshape(-1).to(pdt),
        z=z,
        delta_bias=dt_bias.reshape(-1).to(pdt),
        delta_softplus=True,
        backend=backend)
    return y.contiguous()  # a no-op unless the gate left it strided


def selective_scan_2d(x: Tensor,
                      x_proj1: Tensor,
                      dt_proj1: Tensor,
                      dt_bias1: Tensor,
                      A1: Tensor,
                      D1: Tensor,
                      x_proj2: Tensor,
                      dt_proj2: Tensor,
                      dt_bias2: Tensor,
                      A2: Tensor,
                      D2: Tensor,
                      z: Optional[Tensor] = None,
                      conv1_weight: Optional[Tensor] = None,
                      conv1_bias: Optional[Tensor] = None,
                      conv2_weight: Optional[Tensor] = None,
                      conv2_bias: Optional[Tensor] = None,
                      corners: Sequence[str] = ('tl', 'tr', 'bl', 'br'),
                      axis_order: str = 'row',
                      inter_norm: Optional[Callable[[Tensor], Tensor]] = None,
                      out_scale: float = 1.0,
                      legacy_v2m_mapping: bool = False,
                      return_directions: bool = False,
                      backend: str = 'auto') -> Tensor:
    """V2M's 2-D selective scan over the four corners of a feature map.

    G is the number of directions, ``len(corners)`` times 2 for
    ``axis_order='both'``. Every per-direction parameter takes a leading dim
    of G (one set per direction, VMamba style) or 1 (shared, as in the
    released V2M code). R is the dt rank, N the state size, E the channels.

    Args:
        x (Tensor): Input map, (B, E, H, W).
        x_proj1 (Tensor): Pass-1 projection to [dt | B], (G, R + N, E).
        dt_proj1 (Tensor): Pass-1 dt projection, (G, E, R).
        dt_bias1 (Tensor): Pass-1 dt bias, (G, E).
        A1 (Tensor): Pass-1 state matrix (negative), (G, E, N).
        D1 (Tensor): Pass-1 skip, (G, E).
        x_proj2 (Tensor): Pass-2 projection to [dt | C], (G, R + N, E).
        dt_proj2, dt_bias2, A2, D2 (Tensor): Pass-2 counterparts.
        z (Tensor, optional): Gate, (B, E, H, W): both passes' outputs are
            multiplied by ``silu(z)`` (seen from the direction's corner).
        conv1_weight (Tensor, optional): Depthwise causal conv before pass
            1, (G, E, K); followed by SiLU. None: no conv.
        conv1_bias (Tensor, optional): Its bias, (G, E).
        conv2_weight, conv2_bias (Tensor, optional): The same before pass 2.
        corners (Sequence[str]): Corners scanned, of ``'tl'``, ``'tr'``,
            ``'bl'``, ``'br'``.
        axis_order (str): ``'row'``, ``'col'`` or ``'both'``.
        inter_norm (callable, optional): Applied to pass 1's output, a
            (B, G, E, H, W) tensor, before pass 2 (e.g. a LayerNorm over E).
        out_scale (float): Factor on the sum over the directions.
        legacy_v2m_mapping (bool): Reproduce the released code instead: the
            directions (TL row, TL col, TR row, BL col) recombined as
            ``((Z_a + Z_b)^T + rot90_cw(Z_c) + rot90_ccw(Z_d)) * out_scale``
            (needs H == W, ignores ``corners``/``axis_order``). For
            comparisons with that code only: it misaligns the outputs.
        return_directions (bool): Return the aligned per-direction outputs
            (B, G, E, H, W) instead of their scaled sum.
        backend (str): Backend of :func:`zeromamba_mm.ops.selective_scan`.

    Returns:
        Tensor: (B, E, H, W) in ``x``'s dtype (or (B, G, E, H, W)).
    """
    if x.dim() != 4:
        raise ValueError('selective_scan_2d: x must be (B, E, H, W), got '
                         f'shape {tuple(x.shape)}')
    if backend not in BACKENDS:
        raise ValueError(f'Unknown selective-scan backend {backend!r}; '
                         f'choose one of {BACKENDS}')
    batch, e, height, width = x.shape
    if legacy_v2m_mapping:
        if height != width:
            raise ValueError('legacy_v2m_mapping reproduces code that only '
                             'handles square grids; got H, W = '
                             f'{height}, {width}')
        directions = LEGACY_V2M_DIRECTIONS
    else:
        directions = parse_directions(corners, axis_order)
    groups = len(directions)
    names = ('x_proj1', 'dt_proj1', 'dt_bias1', 'A1', 'D1', 'x_proj2',
             'dt_proj2', 'dt_bias2', 'A2', 'D2', 'conv1_weight', 'conv1_bias',
             'conv2_weight', 'conv2_bias')
    params = dict(
        zip(names,
            (x_proj1, dt_proj1, dt_bias1, A1, D1, x_proj2, dt_proj2, dt_bias2,
             A2, D2, conv1_weight, conv1_bias, conv2_weight, conv2_bias)))
    params = {k: _expand(v, groups, k) for k, v in params.items()}
    for key, shape in (('x_proj1', (None, e)), ('x_proj2',
                                                (None, e)), ('A1', (e, None)),
                       ('A2', (e, None)), ('D1', (e, )), ('D2', (e, ))):
        got = tuple(params[key].shape[1:])
        if len(got) != len(shape) or any(s is not None and s != g
                                         for s, g in zip(shape, got)):
            raise ValueError(f'selective_scan_2d: {key} has shape '
                             f'{tuple(params[key].shape)}, which does not fit '
                             f'E = {e} (expected (G, ' +
                             ', '.join('*' if s is None else str(s)
                                       for s in shape) + '))')

    # Every direction is brought to the top-left corner; a column-first
    # direction is a row-first one on the transposed grid. Directions that
    # share an orientation are batched along the channels (G*E), as the
    # cross scan batches its four.
    outputs = [None] * groups
    for order in AXIS_ORDERS:
        idx = [g for g, (_, o) in enumerate(directions) if o == order]
        if not idx:
            continue
        # The orientation's directions are every step-th (see
        # parse_directions, LEGACY_V2M_DIRECTIONS): a strided view of the
        # parameters, whose backward is cheaper than an index's.
        take = slice(idx[0], idx[-1] + 1,
                     idx[1] - idx[0] if len(idx) > 1 else 1)
        if list(range(groups)[take]) != idx:
            take = idx
        sel = {k: (None if v is None else v[take]) for k, v in params.items()}
        ys = _row_first(x, z, [directions[g][0] for g in idx], order == 'col',
                        sel, inter_norm, backend)
        for g, y in zip(idx, ys):
            outputs[g] = y
    if legacy_v2m_mapping:
        z_a, z_b, z_c, z_d = outputs
        y = ((z_a + z_b).transpose(-1, -2) + torch.rot90(z_c, -1, (-2, -1)) +
             torch.rot90(z_d, 1, (-2, -1)))
        return (y * out_scale).to(x.dtype)
    if return_directions:
        return torch.stack(outputs, dim=1).to(x.dtype)
    # A running sum of the (flipped) views: no stacked copy.
    total = outputs[0] * out_scale
    for out in outputs[1:]:
        total = total.add_(out, alpha=out_scale)
    return total.to(x.dtype)


def _stack_rows(x: Tensor, corners: Sequence[str], transpose: bool) -> Tensor:
    """(B, E, H, W) seen from each corner (then transposed if
    ``transpose``) as (G, E, B*H', W'): pass 1's sequences, the rows of
    every direction, in the layout of :func:`_line_pass`."""
    xs = torch.stack([_flip(x, c) for c in corners])  # (G, B, E, H, W)
    if transpose:
        xs = xs.transpose(-1, -2)
    groups, batch, e, height, width = xs.shape
    # A view for B = 1 (row-first order).
    return xs.transpose(1, 2).reshape(groups, e, batch * height, width)


def _row_first(x: Tensor, z: Optional[Tensor], corners: Sequence[str],
               transpose: bool, p: dict,
               inter_norm: Optional[Callable[[Tensor], Tensor]],
               backend: str) -> Tuple[Tensor, ...]:
    """Row pass then column pass of the directions (corner, row-first), or
    of the directions (corner, column-first) with ``transpose``: those
    are row-first on the transposed grid of the corner's view.

    Args:
        x (Tensor): (B, E, H, W), not flipped.
        z (Tensor, optional): The gate, like ``x``.
        corners (Sequence[str]): The G corners, in the order of ``p``.
        transpose (bool): Scan the transposed grid (column-first order).
        p (dict): The parameters of the G directions.
        inter_norm (callable, optional): See :func:`selective_scan_2d`.
        backend (str): The selective-scan backend.

    Returns:
        tuple[Tensor]: The G outputs, (B, E, H, W) each, flipped back onto
        the tokens of ``x``.
    """
    batch, e = x.shape[:2]
    height, width = x.shape[-1:-3:-1] if transpose else x.shape[-2:]
    groups = len(corners)
    # Pass 1: B*H sequences of length W.
    xs = _stack_rows(x, corners, transpose)
    zs = None if z is None else _stack_rows(z, corners, transpose)
    y1 = _line_pass(xs, zs, p['x_proj1'], p['dt_proj1'], p['dt_bias1'],
                    p['A1'], p['D1'], p['conv1_weight'], p['conv1_bias'], 'B',
                    backend)
    y1 = y1.view(batch, height, groups, e, width).permute(2, 3, 0, 1, 4)
    if inter_norm is not None:  # it takes (B, G, E, H, W)
        y1 = inter_norm(y1.permute(2, 0, 1, 3, 4)).permute(1, 2, 0, 3, 4)
    # Pass 2: B*W sequences of length H, (G, E, B, W, H): the one
    # transposing copy between the passes.
    u2 = y1.transpose(-1, -2).reshape(groups, e, batch * width, height)
    if zs is not None:
        zs = zs.view(groups, e, batch, height, width).transpose(-1, -2)
        zs = zs.reshape(groups, e, batch * width, height)
    y2 = _line_pass(u2, zs, p['x_proj2'], p['dt_proj2'], p['dt_bias2'],
                    p['A2'], p['D2'], p['conv2_weight'], p['conv2_bias'], 'C',
                    backend)
    # unbind, not indexing per direction: the backward of G selects would
    # zero-fill G full-size gradients; unbind's stacks them once.
    ys = y2.view(batch, width, groups, e, height).unbind(2)
    dims = (0, 2, 1, 3) if transpose else (0, 2, 3, 1)
    return tuple(_flip(y.permute(dims), c) for y, c in zip(ys, corners))
