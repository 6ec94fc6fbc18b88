"""Optional wrapper of mamba-ssm's CUDA selective scan.

``mamba_ssm`` cannot be imported without its compiled CUDA extension (its
build needs nvcc and a CUDA torch), so it is never a dependency: the import
is attempted once, lazily, and its failure is remembered and reported when
the backend is asked for.
"""
from typing import Callable, Optional

import torch
from torch import Tensor

_MAMBA_FN: Optional[Callable] = None
_MAMBA_ERROR: Optional[str] = None
_TRIED = False


def load_mamba() -> Optional[Callable]:
    """mamba-ssm's ``selective_scan_fn``, or None when it cannot be imported
    (see :func:`mamba_import_error`)."""
    global _MAMBA_FN, _MAMBA_ERROR, _TRIED
    if not _TRIED:
        _TRIED = True
        try:
            from mamba_ssm.ops.selective_scan_interface import \
                selective_scan_fn
            _MAMBA_FN = selective_scan_fn
        except Exception as e:  # ImportError, or OSError/RuntimeError
            # from a compiled extension built for another torch/CUDA.
            _MAMBA_ERROR = f'{type(e).__name__}: {e}'
    return _MAMBA_FN


def mamba_import_error() -> Optional[str]:
    """Why ``mamba_ssm`` could not be imported (None if it could)."""
    load_mamba()
    return _MAMBA_ERROR


def reset_mamba_cache() -> None:
    """Forget the import attempt (tests use it with a fake module)."""
    global _MAMBA_FN, _MAMBA_ERROR, _TRIED
    _MAMBA_FN, _MAMBA_ERROR, _TRIED = None, None, False


def selective_scan_mamba(u: Tensor,
                         delta: Tensor,
                         A: Tensor,
                         B: Tensor,
                         C: Tensor,
                         D: Optional[Tensor] = None,
                         z: Optional[Tensor] = None,
                         delta_bias: Optional[Tensor] = None,
                         delta_softplus: bool = False,
                         return_last_state: bool = False):
    """Call mamba-ssm's kernel with the dtypes it accepts.

    Its CUDA kernel takes u in float32/float16/bfloat16, delta, B, C (when
    they vary along L) and z in u's dtype, and A, D, delta_bias in float32.

    Raises:
        RuntimeError: If mamba-ssm is not importable, or u is float64.
    """
    fn = load_mamba()
    if fn is None:
        raise RuntimeError(
            'backend="mamba" needs the optional `mamba_ssm` package with its '
            'compiled CUDA extension (pip install "zeromamba_mm[cuda]"), '
            f'which could not be imported: {_MAMBA_ERROR}')
    if u.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise RuntimeError('mamba-ssm\'s kernel takes float32, float16 or '
                           f'bfloat16 inputs, got u of dtype {u.dtype}; use '
                           'backend="torch" or "triton" for it')
    dt = u.dtype
    return fn(
        u,
        delta.to(dt),
        A.float(),
        B.to(dt),
        C.to(dt),
        D=None if D is None else D.float(),
        z=None if z is None else z.to(dt),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
        return_last_state=return_last_state)
