"""Causal depthwise conv1d of the Mamba mixers (Vim, GlobalMamba, V2M).

Mamba runs a short (K = 4) causal depthwise convolution over (B, E, L)
before each selective scan. On CPU, oneDNN's grouped convolution with one
channel per group is several times slower than K shifted multiply-adds
over the same tensor (at Vim-S's (1, 768, 197), in a full forward: about
0.4 ms against 0.15 ms per call), so eager calls take the multiply-adds;
traces (FLOP counting, ONNX export, torch.compile) record the one
``conv1d`` operator.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['causal_depthwise_conv1d']


def causal_depthwise_conv1d(x: Tensor,
                            weight: Tensor,
                            bias: Optional[Tensor] = None) -> Tensor:
    """Causal depthwise conv1d of (B, E, L) as K shifted multiply-adds.

    Equal to ``F.conv1d(F.pad(x, (K - 1, 0)), weight, bias, groups=E)``:
    ``y[..., t] = bias + sum_k weight[:, 0, k] * x[..., t - K + 1 + k]``
    with ``x`` zero before t = 0. Differentiable; ``x`` may be strided
    (e.g. a slice of an in-projection's output).

    Args:
        x (Tensor): (B, E, L).
        weight (Tensor): (E, 1, K), ``nn.Conv1d(E, E, K, groups=E)``'s.
        bias (Tensor, optional): (E,).

    Returns:
        Tensor: (B, E, L), contiguous.
    """
    length, taps = x.shape[-1], weight.shape[-1]
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return F.conv1d(
            F.pad(x, (taps - 1, 0)), weight, bias, groups=x.shape[1])
    # Half / bf16 inputs accumulate in float32 and come back in x's dtype,
    # as from conv1d under autocast.
    acc = torch.promote_types(x.dtype, torch.float32)
    w = weight[:, 0, :, None].to(acc)  # (E, K, 1): tap k as an (E, 1)
    bias = None if bias is None else bias.to(acc)
    # The last tap reads x[t] itself; tap K - 1 - j reads x[t - j].
    if bias is None:
        y = x * w[:, -1]
    else:
        y = torch.addcmul(bias[:, None], x, w[:, -1])
    for j in range(1, min(taps, length)):
        # In place on a fresh tensor: autograd keeps the slices' history.
        y[..., j:].addcmul_(x[..., :length - j], w[:, taps - 1 - j])
    return y.to(x.dtype)
