"""Optional wrapper of mamba-ssm's CUDA selective scan.

``mamba_ssm`` is never a dependency (its CUDA extension needs nvcc and a
CUDA torch to build). Whether its kernel can run is decided in three steps,
each done once and remembered:

1. ``mamba_ssm.ops.selective_scan_interface`` imports and has
   ``selective_scan_fn`` (every release from 1.0 to 2.3 and main have it
   with the signature called here);
2. the compiled extension that module calls, ``selective_scan_cuda``, is
   really there: up to 2.3 the interface fails to import without it, but
   mamba-ssm's main branch makes it opt-in (the interface imports, sets
   ``selective_scan_cuda = None`` and raises at the first call);
3. per CUDA device, a tiny forward and backward runs and matches the
   sequential reference (an extension built for another GPU architecture
   or torch ABI fails here, not in the middle of training).

:func:`mamba_unavailable_reason` reports the first step that failed.
"""
import importlib
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from .selective_scan_ref import selective_scan_ref

_MAMBA_FN: Optional[Callable] = None
_MAMBA_ERROR: Optional[str] = None
_TRIED = False
_INSTALLED = False  # mamba_ssm's interface module imported
# device string -> None (the probe passed) or why it failed.
_PROBES: Dict[str, Optional[str]] = {}

_EXTENSION_HINT = ('mamba-ssm imports, but its compiled CUDA extension '
                   '`selective_scan_cuda` is missing (recent mamba-ssm builds '
                   'it only on request: reinstall with '
                   'MAMBA_KEEP_CUDA_BUILD=TRUE pip install mamba-ssm '
                   '--no-build-isolation)')


def _load_extension(interface) -> None:
    """Raise ImportError unless the extension ``interface`` calls exists."""
    if hasattr(interface, 'selective_scan_cuda'):
        if interface.selective_scan_cuda is None:
            raise ImportError(_EXTENSION_HINT)
        return
    # A layout without the module attribute: import it by name.
    try:
        importlib.import_module('selective_scan_cuda')
    except Exception as e:
        raise ImportError(f'{_EXTENSION_HINT}: {type(e).__name__}: {e}')


def load_mamba() -> Optional[Callable]:
    """mamba-ssm's ``selective_scan_fn`` if it and its compiled extension
    import, else None (see :func:`mamba_import_error`)."""
    global _MAMBA_FN, _MAMBA_ERROR, _TRIED, _INSTALLED
    if not _TRIED:
        _TRIED = True
        try:
            interface = importlib.import_module(
                'mamba_ssm.ops.selective_scan_interface')
            fn = interface.selective_scan_fn
            _load_extension(interface)
            _MAMBA_FN, _INSTALLED = fn, True
        except Exception as e:  # ImportError, AttributeError, or OSError/
            # RuntimeError from an extension built for another torch/CUDA.
            _MAMBA_ERROR = f'{type(e).__name__}: {e}'
            # Installed unless the package itself is absent: an install
            # that lacks its extension or fails to import deserves a
            # warning, an absent optional package does not.
            _INSTALLED = not (isinstance(e, ModuleNotFoundError) and
                              (e.name or '').split('.')[0] == 'mamba_ssm')
    return _MAMBA_FN


def mamba_import_error() -> Optional[str]:
    """Why mamba-ssm's kernel could not be imported (None if it could)."""
    load_mamba()
    return _MAMBA_ERROR


def mamba_installed() -> bool:
    """Whether a ``mamba_ssm`` package is installed (working or not): the
    dispatch warns about a broken install, not an absent one."""
    load_mamba()
    return _INSTALLED


def reset_mamba_cache() -> None:
    """Forget the import attempt and the probes (tests use fake modules)."""
    global _MAMBA_FN, _MAMBA_ERROR, _TRIED, _INSTALLED
    _MAMBA_FN, _MAMBA_ERROR, _TRIED, _INSTALLED = None, None, False, False
    _PROBES.clear()


def probe_mamba(device: torch.device) -> Optional[str]:
    """Run the kernel once on ``device`` (cached): None if a tiny forward
    and backward ran and matched the reference, else why not.

    Args:
        device (torch.device): Where the tensors of the real call live.

    Returns:
        str | None: The failure, for people.
    """
    key = str(device)
    if key in _PROBES:
        return _PROBES[key]
    fn = load_mamba()
    if fn is None:
        return f'mamba_ssm could not be imported: {_MAMBA_ERROR}'
    g = torch.Generator().manual_seed(0)
    x = dict(
        u=torch.randn(1, 2, 8, generator=g),
        delta=torch.rand(1, 2, 8, generator=g),
        A=-torch.rand(2, 2, generator=g) - 0.5,
        B=torch.randn(1, 1, 2, 8, generator=g),
        C=torch.randn(1, 1, 2, 8, generator=g),
        D=torch.ones(2))
    try:
        # The caller may be under no_grad or autocast: the probe is not.
        with torch.enable_grad(), torch.autocast(device.type, enabled=False):
            leaves = {
                k: v.to(device).requires_grad_(True)
                for k, v in x.items()
            }
            y = fn(**leaves, delta_softplus=True)
            y.sum().backward()
        expected = selective_scan_ref(**x, delta_softplus=True)
        error = (y.detach().cpu().float() - expected).abs().max().item()
        bad = [
            k for k, v in leaves.items()
            if v.grad is None or not torch.isfinite(v.grad).all()
        ]
        if not error <= 1e-3 or bad:
            reason = (f'its kernel ran on {device} but gave wrong results '
                      f'(max |y - reference| = {error:.3g}; bad gradients '
                      f'of {bad})')
        else:
            reason = None
    except Exception as e:  # missing kernel image, ABI mismatch, ...
        reason = (f'its kernel failed on a tiny input on {device}: '
                  f'{type(e).__name__}: {e}')
    _PROBES[key] = reason
    return reason


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
    they vary along L) and z in u's dtype, and A, fixed (D, N) B/C, D and
    delta_bias in float32.

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

    def projection(x: Tensor) -> Tensor:
        return x.float() if x.dim() == 2 else x.to(dt)

    return fn(
        u,
        delta.to(dt),
        A.float(),
        projection(B),
        projection(C),
        D=None if D is None else D.float(),
        z=None if z is None else z.to(dt),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
        return_last_state=return_last_state)
