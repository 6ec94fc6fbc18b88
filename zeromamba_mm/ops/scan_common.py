"""Definitions shared by every selective-scan backend.

One rule for the dtype a scan runs in, one softplus and one expansion of
grouped (or fixed) B/C: the reference, the chunked PyTorch scan, the
Triton kernels and the dispatch all import them from here.

Softplus is ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` without a
threshold (``torch.nn.functional.softplus`` returns ``x`` above 20, an
absolute error of up to 2e-9). Its derivative is ``sigmoid(x)``. This module
evaluates it two ways, both of that formula: :func:`softplus` (differentiable,
for the reference) and :func:`softplus_` (in place, fast on CPU, for the
chunked scan). The Triton kernels evaluate the same formula in their own
``@triton.jit`` helper (``_softplus`` in
:mod:`.selective_scan_triton_kernels`);
the tests check all three against each other.
"""
import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

LOG2E = math.log2(math.e)

# A scratch allocator: (role, shape) -> uninitialised tensor.
Scratch = Callable[[str, Tuple[int, ...]], Tensor]


def compute_dtype(*tensors: Optional[Tensor]) -> torch.dtype:
    """The dtype every backend scans in: float64 if any input is float64,
    else float32 (half/bf16 inputs are upcast).

    Args:
        *tensors (Tensor | None): The inputs that decide (None is skipped).

    Returns:
        torch.dtype: ``torch.float64`` or ``torch.float32``.
    """
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def softplus(x: Tensor) -> Tensor:
    """``max(x, 0) + log1p(exp(-|x|))``, differentiable (gradient
    ``sigmoid(x)``, also at ``x == 0``).

    Args:
        x (Tensor): Any floating tensor.

    Returns:
        Tensor: ``softplus(x)``, same shape and dtype.
    """
    # logaddexp(x, 0) = log(1 + e^x) is that formula, evaluated stably, and
    # its autograd gradient is exactly sigmoid(x).
    return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))


def softplus_(x: Tensor, scratch: Optional[Scratch] = None) -> Tensor:
    """In-place ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` (no autograd).

    ``torch``'s softplus and ``log1p`` take a slow scalar path on CPU for
    these arguments (about 10x the rest of the scan), so ``log1p(e)`` is
    ``log(w) - ((w - 1) - e) / w`` with ``w = 1 + e`` (the rounding of ``w``
    corrected to first order: accurate to an ulp, exactly ``e`` when
    ``w == 1``), and ``exp`` is ``exp2(x * log2(e))``, 3x faster here; its
    relative error grows like ``|x| * eps`` (2e-6 at |x| = 30, where the
    term itself is below 1e-13 of x), the same order as the rounding of
    ``delta * A`` that the decay ``exp(delta * A)`` inherits anyway. Agrees
    with :func:`softplus` to about 1e-7 relative in float32.

    Args:
        x (Tensor): Overwritten with ``softplus(x)``.
        scratch (callable, optional): ``scratch(role, shape)`` returns an
            uninitialised tensor for the three temporaries (roles
            ``'softplus_exp'``, ``'softplus_w'``, ``'softplus_fix'``), e.g.
            a workspace that keeps buffers across calls. Default: fresh
            tensors.

    Returns:
        Tensor: ``x``.
    """
    if scratch is None:

        def scratch(role, shape):
            return torch.empty(shape, dtype=x.dtype, device=x.device)

    e = torch.abs(x, out=scratch('softplus_exp', x.shape))
    e.mul_(-LOG2E).exp2_()
    w = torch.add(e, 1, out=scratch('softplus_w', x.shape))
    fix = torch.sub(w, 1, out=scratch('softplus_fix', x.shape))
    fix.sub_(e).div_(w)
    return x.clamp_min_(0).add_(w.log_()).sub_(fix)


def expand_groups(BC: Tensor,
                  channels: int,
                  length: Optional[int] = None) -> Tensor:
    """Expand B/C to one row per channel, (batch, D, N, L).

    Args:
        BC (Tensor): Grouped and input-dependent, (batch, G, N, L) with
            channel ``d`` reading group ``d // (D / G)`` as in mamba-ssm;
            (batch, N, L) for G = 1; or fixed, (D, N), the same at every
            step and in every sequence (returned with a batch dim of 1).
        channels (int): D.
        length (int, optional): L; needed for fixed B/C only.

    Returns:
        Tensor: (batch, D, N, L) (a broadcasting view for fixed B/C).
    """
    if BC.dim() == 2:  # fixed (D, N)
        if length is None:
            raise ValueError('expand_groups: fixed (D, N) B/C need length')
        return BC[None, :, :, None].expand(1, channels, BC.shape[1], length)
    if BC.dim() == 3:  # (B, N, L): one group shared by every channel
        BC = BC.unsqueeze(1)
    groups = BC.shape[1]
    if channels % groups != 0:
        raise ValueError(f'B/C have {groups} groups, which does not divide '
                         f'the {channels} channels of u')
    return BC.repeat_interleave(channels // groups, dim=1)
