"""One autograd wrapper shape for the pure-PyTorch scans.

The chunked d_state-1 scan (:mod:`.selective_scan_torch`) and the
time-major d_state > 1 scan (:mod:`.selective_scan_states`) differ only in
their forward and backward kernels; both save the same tensors, run outside
autocast and trace as one opaque node (:func:`.tracing.opaque_to_tracer`,
which the FLOP handles of :mod:`zeromamba_mm.analysis.flops` rely on: they
look the node up by the class name given here).
"""
from typing import Callable, Type

import torch

from .tracing import opaque_to_tracer


def make_scan_function(name: str, scan_forward: Callable,
                       scan_backward: Callable,
                       doc: str) -> Type[torch.autograd.Function]:
    """An ``autograd.Function`` class around a forward/backward kernel pair.

    Args:
        name (str): The class name (what a traced graph calls the node).
        scan_forward (Callable): ``(u, delta, A, B, C, D, delta_bias,
            delta_softplus, out_dtype, return_last_state) -> (y, last)``.
        scan_backward (Callable): ``(u, delta, A, B, C, D, delta_bias,
            delta_softplus, gy, glast, needs_input_grad)`` -> the gradients
            of ``u, delta, A, B, C, D, delta_bias``.
        doc (str): The class docstring.

    Returns:
        type: A Function whose ``apply(u, delta, A, B, C, D, delta_bias,
        delta_softplus, return_last_state, out_dtype)`` returns ``y`` or
        ``(y, last)``.
    """

    @opaque_to_tracer
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus,
                return_last_state, out_dtype):
        with torch.autocast(u.device.type, enabled=False):
            y, last = scan_forward(u, delta, A, B, C, D, delta_bias,
                                   delta_softplus, out_dtype,
                                   return_last_state)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        return (y, last) if return_last_state else y

    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, glast=None):
        u, delta, A, B, C, D, bias = ctx.saved_tensors
        with torch.autocast(u.device.type, enabled=False):
            grads = scan_backward(u, delta, A, B, C, D, bias,
                                  ctx.delta_softplus, gy, glast,
                                  ctx.needs_input_grad)
        # No gradients for delta_softplus, return_last_state, out_dtype.
        return grads + (None, None, None)

    return type(
        name, (torch.autograd.Function, ),
        dict(
            __doc__=doc,
            __module__=scan_forward.__module__,
            forward=staticmethod(forward),
            backward=staticmethod(backward)))
