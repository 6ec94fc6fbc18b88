"""Mamba's initialisation of the SSM parameters, shared by every mixer.

"Mamba: Linear-Time Sequence Modeling with Selective State Spaces", Gu and
Dao (https://arxiv.org/abs/2312.00752): step projections uniform in
``+-R^-0.5``, step biases the inverse softplus of steps log-uniform in
``[dt_min, dt_max]``, S4D-real ``A = -[1..N]`` (stored as ``log``) and unit
skip ``D``. The random draws come in a fixed order (weight, then steps), so
a seeded model is the same whichever mixer builds it.
"""
import math

import torch
from torch import Tensor

__all__ = ['init_mamba_ssm_']


@torch.no_grad()
def init_mamba_ssm_(dt_proj_weight: Tensor,
                    dt_proj_bias: Tensor,
                    A_log: Tensor,
                    D: Tensor,
                    dt_min: float = 1e-3,
                    dt_max: float = 0.1,
                    dt_init_floor: float = 1e-4) -> None:
    """Initialise the SSM parameters of one or several scan directions.

    Args:
        dt_proj_weight (Tensor): (..., E, R) step projections.
        dt_proj_bias (Tensor): (..., E) step biases.
        A_log (Tensor): (rows, N) logarithms of ``-A``.
        D (Tensor): Skip weights.
        dt_min (float): Lower bound of the initial step size.
        dt_max (float): Upper bound of the initial step size.
        dt_init_floor (float): Floor of the initial step size.
    """
    std = dt_proj_weight.shape[-1]**-0.5
    dt_proj_weight.uniform_(-std, std)
    dt = torch.exp(
        torch.rand(tuple(dt_proj_bias.shape)) *
        (math.log(dt_max) - math.log(dt_min)) +
        math.log(dt_min)).clamp(min=dt_init_floor)
    # Inverse softplus, so that softplus(bias) == dt at init.
    dt_proj_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
    a = torch.arange(1, A_log.shape[-1] + 1, dtype=torch.float32)
    A_log.copy_(torch.log(a).expand_as(A_log))
    D.fill_(1.0)
