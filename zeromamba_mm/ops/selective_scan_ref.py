"""Sequential reference of the selective scan (for tests and as ground truth).

Same signature and semantics as mamba-ssm's ``selective_scan_ref``:
``delta = softplus(delta + delta_bias)``;
``h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t``;
``y_t = C_t . h_t + D * u_t``.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def compute_dtype(*tensors: Optional[Tensor]) -> torch.dtype:
    """The dtype every backend scans in: float64 if any input is float64,
    else float32 (half/bf16 inputs are upcast)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def expand_groups(BC: Tensor, channels: int) -> Tensor:
    """Expand grouped B/C of shape (B, G, N, L) to (B, D, N, L).

    Channel ``d`` reads group ``d // (D / G)``, as in mamba-ssm.
    """
    if BC.dim() == 3:  # (B, N, L): one group shared by every channel
        BC = BC.unsqueeze(1)
    groups = BC.shape[1]
    if channels % groups != 0:
        raise ValueError(f'B/C have {groups} groups, which does not divide '
                         f'the {channels} channels of u')
    return BC.repeat_interleave(channels // groups, dim=1)


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
        B (Tensor): Input projection, (batch, G, N, L) or (batch, N, L).
        C (Tensor): Output projection, (batch, G, N, L) or (batch, N, L).
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
        delta = F.softplus(delta)
    channels = u.shape[1]
    Bx = expand_groups(B.to(ct), channels)
    Cx = expand_groups(C.to(ct), channels)
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
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.to(ct)[..., None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y
