"""Launch and autograd of the selective scan's Triton kernels.

The kernels, their algorithm (tiles of ``BLOCK_L`` steps, an associative
scan inside a tile, the reverse adjoint scan of the backward) and the
import of ``triton`` live in :mod:`.selective_scan_triton_kernels`; this
module picks the tile sizes, launches them, reduces the per-program
partial sums and wraps both in an autograd Function. Without a GPU, the
kernels run on CPU tensors under ``TRITON_INTERPRET=1`` (set before
``triton`` is first imported).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .scan_common import compute_dtype
from .selective_scan_triton_kernels import (TRITON_IMPORT_ERROR, tl, triton,
                                            triton_interpreted)
from .tracing import opaque_to_tracer

if triton is not None:
    from .selective_scan_triton_kernels import _bwd_kernel, _fwd_kernel

__all__ = [
    'TRITON_IMPORT_ERROR', 'SelectiveScanTritonFn', 'selective_scan_triton',
    'triton_interpreted'
]


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def _config(channels_per_group: int, d_state: int,
            length: int) -> Tuple[int, int, int, int]:
    """(BLOCK_D, BLOCK_N, BLOCK_L, num_warps).

    BLOCK_D is the largest power of two dividing the channels per group (a
    program never straddles two groups), up to 16 and less for large N:
    tiles hold at most 1024 elements with at least 16 steps, and get 8
    warps above 512 elements, which keeps the backward kernel free of
    register spills on sm_90 (checked with ptxas).
    """
    block_n = _next_pow2(d_state)
    cap = max(1, min(16, 1024 // (16 * block_n)))
    block_d = 1
    while block_d < cap and channels_per_group % (block_d * 2) == 0:
        block_d *= 2
    block_l = max(16, min(64, 1024 // (block_d * block_n)))
    block_l = min(block_l, max(16, _next_pow2(length)))
    num_warps = 8 if block_d * block_n * block_l > 512 else 4
    return block_d, block_n, block_l, num_warps


def _acc_dtype(ct: torch.dtype):
    return tl.float64 if ct == torch.float64 else tl.float32


def _check_device(*tensors: Tensor) -> None:
    if triton is None:
        raise RuntimeError('The triton backend needs the `triton` package, '
                           f'which failed to import: {TRITON_IMPORT_ERROR}')
    if tensors[0].is_cuda:
        return
    if not triton_interpreted():
        raise RuntimeError(
            'The triton backend runs CUDA tensors; CPU tensors only work in '
            'the Triton interpreter, which needs TRITON_INTERPRET=1 in the '
            'environment before `triton` is first imported. Got tensors on '
            f'{tensors[0].device}.')


def _forward(u, delta, A, B, C, D, bias, softplus, out_dtype, save_states):
    batch, channels, length = u.shape
    groups, d_state = B.shape[1], A.shape[1]
    per_group = channels // groups
    ct = compute_dtype(u, delta, B, C)
    block_d, block_n, block_l, num_warps = _config(per_group, d_state, length)
    n_tiles = triton.cdiv(length, block_l)
    y = torch.empty((batch, channels, length),
                    dtype=out_dtype,
                    device=u.device)
    states = torch.empty(
        (batch, channels, d_state, n_tiles) if save_states else (1, ),
        dtype=ct,
        device=u.device)
    last = torch.empty((batch, channels, d_state), dtype=ct, device=u.device)
    grid = (batch, triton.cdiv(channels, block_d))
    _fwd_kernel[grid](
        u,
        delta,
        A,
        B,
        C,
        D if D is not None else A,
        bias if bias is not None else A,
        y,
        states,
        last,
        length,
        channels,
        per_group,
        n_tiles,
        *u.stride(),
        *delta.stride(),
        *A.stride(),
        *B.stride(),
        *C.stride(),
        *y.stride(),
        N=d_state,
        BLOCK_D=block_d,
        BLOCK_N=block_n,
        BLOCK_L=block_l,
        HAS_D=D is not None,
        HAS_BIAS=bias is not None,
        SOFTPLUS=softplus,
        SAVE_STATES=save_states,
        ACC=_acc_dtype(ct),
        num_warps=num_warps)
    return y, last, states


def _backward(u, delta, A, B, C, D, bias, softplus, states, gy, glast):
    batch, channels, length = u.shape
    groups, d_state = B.shape[1], A.shape[1]
    per_group = channels // groups
    ct = states.dtype
    block_d, block_n, block_l, num_warps = _config(per_group, d_state, length)
    n_tiles = triton.cdiv(length, block_l)
    n_dblocks = triton.cdiv(channels, block_d)
    dev = u.device
    du = torch.empty((batch, channels, length), dtype=ct, device=dev)
    ddelta = torch.empty_like(du)
    dA = torch.empty((batch, channels, d_state), dtype=ct, device=dev)
    dD = torch.empty((batch, channels), dtype=ct, device=dev)
    dB = torch.empty((batch, n_dblocks, d_state, length), dtype=ct, device=dev)
    dC = torch.empty_like(dB)
    grid = (batch, n_dblocks)
    _bwd_kernel[grid](
        u,
        delta,
        A,
        B,
        C,
        D if D is not None else A,
        bias if bias is not None else A,
        gy,
        glast if glast is not None else A,
        states,
        du,
        ddelta,
        dA,
        dD,
        dB,
        dC,
        length,
        channels,
        per_group,
        n_tiles,
        n_dblocks,
        *u.stride(),
        *delta.stride(),
        *A.stride(),
        *B.stride(),
        *C.stride(),
        *gy.stride(),
        N=d_state,
        BLOCK_D=block_d,
        BLOCK_N=block_n,
        BLOCK_L=block_l,
        HAS_D=D is not None,
        HAS_BIAS=bias is not None,
        SOFTPLUS=softplus,
        HAS_GLAST=glast is not None,
        ACC=_acc_dtype(ct),
        num_warps=num_warps)
    # Each d-block lies in one group: sum the blocks of every group.
    dB = dB.view(batch, groups, n_dblocks // groups, d_state, length).sum(2)
    dC = dC.view(batch, groups, n_dblocks // groups, d_state, length).sum(2)
    dbias = ddelta.sum((0, 2)) if bias is not None else None
    return (du.to(u.dtype), ddelta.to(delta.dtype), dA.sum(0).to(A.dtype),
            dB.to(B.dtype), dC.to(C.dtype),
            dD.sum(0).to(D.dtype) if D is not None else None,
            dbias.to(bias.dtype) if bias is not None else None)


class SelectiveScanTritonFn(torch.autograd.Function):
    """Autograd wrapper of the Triton kernels (z-free)."""

    @staticmethod
    @opaque_to_tracer
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus,
                return_last_state, out_dtype):
        save = any(ctx.needs_input_grad)
        y, last, states = _forward(u, delta, A, B, C, D, delta_bias,
                                   delta_softplus, out_dtype, save)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, states)
        ctx.delta_softplus = delta_softplus
        if return_last_state:
            return y, last
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, glast=None):
        u, delta, A, B, C, D, bias, states = ctx.saved_tensors
        grads = _backward(u, delta, A, B, C, D, bias, ctx.delta_softplus,
                          states, gy, glast)
        return grads + (None, None, None)


def selective_scan_triton(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False,
                          return_last_state: bool = False,
                          out_dtype: Optional[torch.dtype] = None):
    """Selective scan with the Triton kernels (no gate ``z``).

    Same contract as :func:`selective_scan_torch`: B/C (batch, G, N, L),
    inputs validated by :func:`zeromamba_mm.ops.selective_scan`.

    Raises:
        RuntimeError: If triton is missing, or the tensors are on CPU while
            the Triton interpreter is off.
    """
    _check_device(u)
    return SelectiveScanTritonFn.apply(u, delta, A, B, C, D, delta_bias,
                                       delta_softplus, return_last_state,
                                       out_dtype or u.dtype)
