"""Compiled CPU selective scan: the recurrence in C++, the rest in torch.

The whole z-free scan (``dt = softplus(delta + delta_bias)``,
``a_t = exp(dt_t A)``, ``h_t = a_t h_{t-1} + dt_t u_t B_t``,
``y_t = C_t . h_t + D u_t``) runs in ``selective_scan_cpu_kernel.cpp``: one
pass over time per (batch, channel) row, the state as the inner vectorised
loop, rows spread over torch's intra-op threads; the gate is applied by the
dispatch, as for the other backends. Its backward derives the gradients of
:func:`.selective_scan_torch._backward` (see its docstring for the adjoint
recurrence). Float32 inputs scan in float32 (half/bf16 are upcast), with
the exp and softplus evaluated by polynomials accurate to float32's
rounding; float64 inputs in float64 with the library's functions.

Autograd saves only the inputs; the backward recomputes the states of one
row at a time (2 (L + 1) N values per thread), so training memory is that of
the pure-PyTorch scan. Built and switched by :mod:`.selective_scan_cpu_build`
(``ZEROMAMBA_CPU_SCAN``); :func:`zeromamba_mm.ops.selective_scan` picks it
for CPU tensors under ``backend='auto'`` or ``'compiled'``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .scan_common import compute_dtype
from .scan_function import make_scan_function
from .selective_scan_cpu_build import cpu_kernel_error, load_cpu_kernel


def _kernel():
    """The built kernel module (RuntimeError naming the cause if it cannot
    be built; the dispatch checks first, so this is a direct call)."""
    module = load_cpu_kernel()
    if module is None:
        raise RuntimeError('the compiled CPU selective scan is unavailable: '
                           f'{cpu_kernel_error()}')
    return module


def _cast(x: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    """``x`` in ``dtype``, contiguous (None stays None)."""
    return None if x is None else x.to(dtype).contiguous()


def _state_last(x: Tensor, dtype: torch.dtype) -> Tensor:
    """B or C (batch, G, N, L) as a (batch, G, L, N) view with the state
    contiguous; broadcast (stride-0) dims stay broadcast."""
    x = x.to(dtype).transpose(2, 3)
    if x.shape[3] == 1 or x.stride(3) == 1:
        return x
    base = x
    for dim in range(3):
        if base.stride(dim) == 0:
            base = base.narrow(dim, 0, 1)
    return base.contiguous().expand(x.shape)


def _forward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
             out_dtype: torch.dtype,
             want_last: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """``y = C . h + D u`` and the last state (no gate)."""
    ct = compute_dtype(u, delta, B, C)
    out = _kernel().scan_forward(
        _cast(u, ct), _cast(delta, ct), _cast(A, ct), _state_last(B, ct),
        _state_last(C, ct), _cast(D, ct), _cast(bias, ct), softplus, want_last)
    return out[0].to(out_dtype), (out[1] if want_last else None)


def _backward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
              D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
              gy: Tensor, glast: Optional[Tensor],
              needs: Tuple[bool, ...]) -> Tuple[Optional[Tensor], ...]:
    """Gradients of u, delta, A, B, C, D, delta_bias (dB, dC only where
    ``needs``, autograd's ``needs_input_grad``, asks)."""
    ct = compute_dtype(u, delta, B, C)
    # One partial dB/dC per thread partition (summed below): B and C are
    # shared by the channels of a group, which different threads scan.
    parts = max(1, min(torch.get_num_threads(), u.shape[1]))
    du, ddelta, dA, dB, dC, dD, dbias = _kernel().scan_backward(
        _cast(u, ct), _cast(delta, ct), _cast(A, ct), _state_last(B, ct),
        _state_last(C, ct), _cast(D, ct), _cast(bias, ct), softplus,
        _cast(gy, ct), _cast(glast, ct), parts, needs[3], needs[4])
    grads_bc = []
    for grad, like, needed in ((dB, B, needs[3]), (dC, C, needs[4])):
        if not needed:
            grads_bc.append(None)
            continue
        grad = grad[0] if parts == 1 else grad.sum(0)
        grads_bc.append(grad.transpose(2, 3).to(like.dtype))
    dD = None if D is None else dD.to(D.dtype)
    dbias = None if bias is None else dbias.to(bias.dtype)
    return (du.to(u.dtype), ddelta.to(delta.dtype), dA.to(A.dtype),
            grads_bc[0], grads_bc[1], dD, dbias)


SelectiveScanCpuFn = make_scan_function(
    'SelectiveScanCpuFn', _forward, _backward,
    'Autograd wrapper of the compiled CPU scan (z-free; see '
    ':func:`selective_scan_cpu`). B and C are (batch, G, N, L).')


def selective_scan_cpu(u: Tensor,
                       delta: Tensor,
                       A: Tensor,
                       B: Tensor,
                       C: Tensor,
                       D: Optional[Tensor] = None,
                       delta_bias: Optional[Tensor] = None,
                       delta_softplus: bool = False,
                       return_last_state: bool = False,
                       out_dtype: Optional[torch.dtype] = None):
    """Selective scan by the compiled CPU kernel (no gate ``z``).

    Inputs are validated by :func:`zeromamba_mm.ops.selective_scan`; here
    B/C must already be (batch, G, N, L) and the tensors on the CPU.

    Args:
        u (Tensor): (batch, D, L).
        delta (Tensor): (batch, D, L).
        A (Tensor): (D, N).
        B (Tensor): (batch, G, N, L).
        C (Tensor): (batch, G, N, L).
        D (Tensor, optional): (D,).
        delta_bias (Tensor, optional): (D,).
        delta_softplus (bool): Apply softplus to ``delta + delta_bias``.
        return_last_state (bool): Also return the state after step L - 1.
        out_dtype (torch.dtype, optional): dtype of ``y``; ``u.dtype`` if
            None.

    Returns:
        Tensor | tuple: ``y`` (batch, D, L), and the last state
        (batch, D, N) in the compute dtype when asked for.

    Raises:
        ValueError: For tensors on another device than the CPU.
        RuntimeError: If the kernel cannot be built here.
    """
    if u.device.type != 'cpu':
        raise ValueError('selective_scan_cpu: the compiled kernel takes CPU '
                         f'tensors, got {u.device}; use '
                         'zeromamba_mm.ops.selective_scan, which picks a '
                         'backend for the device')
    return SelectiveScanCpuFn.apply(u, delta, A, B, C, D, delta_bias,
                                    delta_softplus, return_last_state,
                                    out_dtype or u.dtype)
