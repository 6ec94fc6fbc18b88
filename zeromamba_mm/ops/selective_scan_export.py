"""Selective scan for ONNX export: static shapes, standard operators only.

The other backends loop over time steps in Python (chunked torch scan) or
call kernels (Triton, mamba-ssm), neither of which an exporter can record
as a graph of standard ONNX operators. This scan computes the same
recurrence ``h_t = a_t * h_{t-1} + b_t`` (``a_t = exp(delta_t * A)``,
``b_t = delta_t * B_t * u_t``) in closed form, two levels deep, with
cumulative sums, exponentials, masks and matrix products (``CumSum``,
``Exp``, ``Mul``, ``MatMul`` in ONNX), so the graph has a fixed number of
nodes whatever the sequence length:

1. The L steps are cut into ``nc`` chunks of ``T`` steps (zero-padded at
   the end; padding never reaches an earlier step). Inside a chunk,
   ``h_t = sum_{s <= t} exp(S[t, s]) b_s`` with the segment sums
   ``S[t, s] = sum_{k = s+1..t} log a_k``, built by one cumulative sum of a
   masked (T, T) matrix, so no difference of large cumulative sums is taken
   and no positive number is exponentiated (``S <= 0``; above the diagonal
   a 0/1 mask zeroes the decays).
2. The chunk end states are carried across chunks by the same construction
   on the (nc, nc) segment sums of the chunks' total log decays.
3. ``h_t`` = its in-chunk part + ``exp(sum of log a since the chunk
   start)`` times the state entering the chunk; ``y_t = C_t . h_t + D u_t``,
   gated by ``silu(z)``.

The work is ``O(L T)`` per channel and state instead of ``O(L)``, which is
the price of a graph without loops; ``T`` is small (16). Shapes are read as
Python integers, so an exported graph is specific to its input size.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .scan_common import compute_dtype, expand_groups

#: Steps per chunk of the closed-form scan.
CHUNK = 16


def segment_decays(log_decay: Tensor) -> Tensor:
    """``exp(S[..., t, s])`` with ``S[t, s] = sum_{k=s+1..t} x_k`` for
    s <= t, and 0 above the diagonal.

    Args:
        log_decay (Tensor): (..., T) per-step log decays ``x`` (<= 0).

    Returns:
        Tensor: (..., T, T), ones on the diagonal.
    """
    steps = log_decay.shape[-1]
    rows = torch.arange(steps, device=log_decay.device)
    strictly_lower = (rows[:, None] > rows[None, :]).to(log_decay.dtype)
    lower = (rows[:, None] >= rows[None, :]).to(log_decay.dtype)
    # Column s holds x_t at rows t > s (a broadcast product, no copy of x
    # per column); the cumulative sum down the rows gives
    # sum_{k=s+1..t} x_k without subtracting two cumulative sums. Above
    # the diagonal the sums are 0 (exp 1), which the mask zeroes.
    sums = torch.cumsum(log_decay.unsqueeze(-1) * strictly_lower, dim=-2)
    return torch.exp(sums) * lower


def selective_scan_export(
        u: Tensor,
        delta: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        D: Optional[Tensor] = None,
        z: Optional[Tensor] = None,
        delta_bias: Optional[Tensor] = None,
        delta_softplus: bool = False,
        return_last_state: bool = False,
        chunk: int = CHUNK) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The selective scan as a loop-free graph (see the module docstring).

    Same arguments, layouts and results as
    :func:`zeromamba_mm.ops.selective_scan`, which calls this function
    while ``torch.onnx`` exports a model. Inputs are checked there.

    Args:
        u (Tensor): (batch, D, L).
        delta (Tensor): (batch, D, L).
        A (Tensor): (D, N).
        B (Tensor): (batch, G, N, L), (batch, N, L) or fixed (D, N).
        C (Tensor): Same layouts as B.
        D (Tensor, optional): (D,) skip weight.
        z (Tensor, optional): (batch, D, L) gate.
        delta_bias (Tensor, optional): (D,).
        delta_softplus (bool): Softplus on ``delta + delta_bias``.
        return_last_state (bool): Also return the last state (batch, D, N).
        chunk (int): Steps per chunk T.

    Returns:
        Tensor | tuple: ``y`` (batch, D, L) in ``u``'s dtype, and the last
        state if asked.
    """
    batch, channels, length = u.shape
    dtype = compute_dtype(u, delta, B, C)
    uc, dc = u.to(dtype), delta.to(dtype)
    if delta_bias is not None:
        dc = dc + delta_bias.to(dtype)[None, :, None]
    if delta_softplus:
        dc = F.softplus(dc)
    Bc = expand_groups(B.to(dtype), channels, length)
    Cc = expand_groups(C.to(dtype), channels, length)
    steps = min(chunk, length)
    num_chunks = -(-length // steps)
    pad = num_chunks * steps - length
    # (batch, D, N, L): per-step log decay and scanned input.
    log_decay = dc[:, :, None, :] * A.to(dtype)[None, :, :, None]
    inputs = (dc * uc)[:, :, None, :] * Bc
    if pad:
        log_decay = F.pad(log_decay, (0, pad))
        inputs = F.pad(inputs, (0, pad))
    shape = log_decay.shape[:3] + (num_chunks, steps)
    log_decay = log_decay.reshape(shape)
    inputs = inputs.reshape(shape)
    # 1. In-chunk states from a zero start.
    local = torch.matmul(
        segment_decays(log_decay), inputs.unsqueeze(-1)).squeeze(-1)
    # 2. States entering each chunk: G_c = sum_{c' <= c} decay * end_{c'}
    # is the state after chunk c; chunk c starts from G_{c-1}.
    totals = log_decay.sum(dim=-1)
    after = torch.matmul(
        segment_decays(totals), local[...,
                                               -1].unsqueeze(-1)).squeeze(-1)
    entering = F.pad(after[..., :-1], (1, 0))
    # 3. Full states: in-chunk part + decayed entering state.
    states = local + torch.exp(torch.cumsum(log_decay,
                                            dim=-1)) * entering[..., None]
    states = states.reshape(shape[:3] + (num_chunks * steps, ))
    states = states[..., :length]
    y = (states * Cc).sum(dim=2)
    if D is not None:
        y = y + uc * D.to(dtype)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    y = y.to(u.dtype)
    if return_last_state:
        # Padded steps neither decay (log 0) nor add: the state after the
        # last chunk is the state after the last real step.
        return y, after[..., -1]
    return y
