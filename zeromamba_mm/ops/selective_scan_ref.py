"""Sequential reference of the selective scan (for tests and as ground truth).

Same signature and semantics as mamba-ssm's ``selective_scan_ref`` for real
``A``: ``delta = softplus(delta + delta_bias)``;
``h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t``;
``y_t = C_t . h_t + D * u_t``; ``y = y * silu(z)``.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

# compute_dtype and expand_groups live in scan_common; they are re-exported
# here because they used to be defined in this module.
from .scan_common import compute_dtype, expand_groups, softplus

__all__ = ['compute_dtype', 'expand_groups', 'selective_scan_ref']


def selective_scan_ref(
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
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Sequential selective scan, one time step at a time.

    Runs in float32 (half/bf16 inputs are upcast), or in float64 when any
    of u, delta, B, C is float64 so that tests can compare tightly.

    Args:
        u (Tensor): Input, (batch, D, L).
        delta (Tensor): Step sizes before bias/softplus, (batch, D, L).
        A (Tensor): State matrix (diagonal), (D, N), float32.
        B (Tensor): Input projection, (batch, G, N, L) or (batch, N, L), or
            fixed (D, N).
        C (Tensor): Output projection, same layouts as B.
        D (Tensor, optional): Skip weight, (D,).
        z (Tensor, optional): Gate, (batch, D, L); ``y * silu(z)``.
        delta_bias (Tensor, optional): Added to delta, (D,).
        delta_softplus (bool): Apply softplus to delta.
        return_last_state (bool): Also return the final state (batch, D, N).

    Returns:
        Tensor | tuple: ``y`` of shape (batch, D, L) in ``u``'s dtype, and the
        last state (batch, D, N) in the compute dtype when asked for.
    """
    dtype_in = u.dtype
    ct = compute_dtype(u, delta, B, C)
    u, delta = u.to(ct), delta.to(ct)
    if delta_bias is not None:
        delta = delta + delta_bias.to(ct)[..., None]
    if delta_softplus:
        delta = softplus(delta)
    channels, length = u.shape[1], u.shape[2]
    Bx = expand_groups(B.to(ct), channels, length)
    Cx = expand_groups(C.to(ct), channels, length)
    A = A.to(ct)
    # Per-step factors, then the recurrence one step at a time. unbind()
    # rather than indexing per step: the backward of an index materialises
    # a full-size gradient per step (quadratic in L), unbind's does not.
    decays = torch.exp(delta[:, :, None] * A[..., None]).unbind(-1)
    inputs = ((delta * u)[:, :, None] * Bx).unbind(-1)
    outputs = Cx.unbind(-1)
    state = u.new_zeros(u.shape[0], channels, A.shape[1])
    ys = []
    for decay, inp, out in zip(decays, inputs, outputs):
        state = decay * state + inp
        ys.append((state * out).sum(-1))
    # L = 0: no step, y is empty and the state stays the zero start.
    y = torch.stack(ys, dim=2) if ys else u.new_zeros(u.shape)
    if D is not None:
        y = y + u * D.to(ct)[..., None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y
