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
    """Sequential float32 selective scan, one time step at a time.

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
        last state when asked for.
    """
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    channels = u.shape[1]
    Bx = expand_groups(B.float(), channels)
    Cx = expand_groups(C.float(), channels)
    A = A.float()
    state = u.new_zeros(u.shape[0], channels, A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        decay = torch.exp(delta[:, :, t, None] * A)
        state = decay * state + (delta[:, :, t, None] * Bx[..., t]) * u[:, :, t, None]
        ys.append((state * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.float()[..., None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y
