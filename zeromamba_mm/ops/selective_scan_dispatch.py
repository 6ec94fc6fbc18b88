"""Public selective scan: input checks and backend dispatch.

Semantics of mamba-ssm's ``selective_scan_fn`` (Gu & Dao, "Mamba",
https://arxiv.org/abs/2312.00752)::

    delta = softplus(delta + delta_bias)          # if delta_softplus
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t
    y_t   = C_t . h_t + D * u_t;   y = y * silu(z)   # if z is given

Backends (``backend=``):

- ``'torch'``: chunked pure-PyTorch scan (:mod:`.selective_scan_torch`),
  the reference CPU path and a fallback anywhere.
- ``'compiled'``: the compiled CPU kernel (:mod:`.selective_scan_cpu`),
  built at first use with torch's C++ extension tools; CPU tensors.
- ``'triton'``: Triton kernels (:mod:`.selective_scan_triton`); CUDA
  tensors, or CPU tensors under ``TRITON_INTERPRET=1``.
- ``'mamba'``: mamba-ssm's CUDA kernel, when ``mamba_ssm`` and its compiled
  extension import, the tensors are on CUDA and a tiny call on that device
  works (:mod:`.selective_scan_mamba`).
- ``'ref'``: the sequential reference (tests only: slow).
- ``'auto'``: decided by the tensors' device, not by what is installed:
  CUDA -> mamba if usable (and u is not float64), else triton, else
  torch; CPU -> for d_state > 1 compiled if it builds (one warning names
  the cause if not), else torch; d_state 1 -> torch; as the environment
  variable ``ZEROMAMBA_CPU_SCAN`` allows (``auto``; ``torch``: never
  compiled; ``compiled``: compiled for every d_state; see
  :mod:`.selective_scan_cpu_build`); while a graph is traced or compiled (jit trace, FLOP counting,
  ``torch.export``), CPU runs torch, whose Function the FLOP counter knows;
  any other device -> torch. An installed mamba-ssm that cannot run (no
  extension, a failing kernel) is reported by one warning.

``L = 0`` (empty sequences) is valid: ``y`` is empty, the last state is
the zero initial state, and every gradient is zero.
"""
import warnings
from typing import Optional, Set, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .scan_common import compute_dtype, expand_groups
from .selective_scan_cpu import selective_scan_cpu
from .selective_scan_cpu_build import (CPU_SCAN_ENV, cpu_kernel_error,
                                       cpu_scan_mode, load_cpu_kernel,
                                       use_compiled_cpu_scan)
from .selective_scan_export import selective_scan_export
from .selective_scan_mamba import (load_mamba, mamba_import_error,
                                   mamba_installed, probe_mamba,
                                   selective_scan_mamba)
from .selective_scan_ref import selective_scan_ref
from .selective_scan_torch import selective_scan_torch
from .selective_scan_triton import (TRITON_IMPORT_ERROR, selective_scan_triton,
                                    triton_interpreted)

BACKENDS = ('auto', 'ref', 'torch', 'compiled', 'triton', 'mamba')
# Fallback warnings already given (one per reason and process).
_WARNED: Set[str] = set()


def _is_cuda(tensor: Tensor) -> bool:
    """Device test used by the dispatch (a seam for tests without a GPU)."""
    return tensor.is_cuda


def backend_unavailable_reason(backend: str, u: Tensor) -> Optional[str]:
    """Why ``backend`` cannot run on tensors like ``u`` (None if it can).

    Args:
        backend (str): One of ``'ref'``, ``'torch'``, ``'compiled'``,
            ``'triton'``, ``'mamba'``.
        u (Tensor): The input whose device and dtype decide.

    Returns:
        str | None: A sentence for people, or None.
    """
    if backend in ('ref', 'torch'):
        return None
    if backend == 'compiled':
        if u.device.type != 'cpu':
            return f'its kernel runs on CPU tensors (got {u.device})'
        if load_cpu_kernel() is None:
            return (f'its kernel could not be built: {cpu_kernel_error()} '
                    f'(the pure-PyTorch scan needs no build: backend '
                    f'\'torch\' or {CPU_SCAN_ENV}=torch)')
        return None
    if backend == 'triton':
        if TRITON_IMPORT_ERROR is not None:
            return ('the `triton` package failed to import: '
                    f'{TRITON_IMPORT_ERROR}')
        if not _is_cuda(u) and not triton_interpreted():
            return (f'its kernels need CUDA tensors (got {u.device}); CPU '
                    'tensors only run in the Triton interpreter, which '
                    'needs TRITON_INTERPRET=1 set before `triton` is first '
                    'imported')
        return None
    if backend == 'mamba':
        if load_mamba() is None:
            return ('mamba-ssm\'s kernel could not be loaded (it needs the '
                    'optional `mamba_ssm` package with its compiled CUDA '
                    'extension; pip install "zeromamba_mm[cuda]"): '
                    f'{mamba_import_error()}')
        if not _is_cuda(u):
            return f'its kernel is CUDA-only (got tensors on {u.device})'
        if u.dtype == torch.float64:
            return 'its kernel does not take float64 inputs'
        return probe_mamba(u.device)
    raise ValueError(f'unknown selective-scan backend {backend!r}; choose '
                     f'one of {BACKENDS}')


def resolve_backend(backend: str,
                    u: Tensor,
                    d_state: Optional[int] = None) -> str:
    """The backend that :func:`selective_scan` runs for ``u``.

    Args:
        backend (str): A name from :data:`BACKENDS`.
        u (Tensor): The input (its device and dtype decide ``'auto'``).
        d_state (int, optional): The state size N. Under ``'auto'`` on CPU
            it decides between the compiled kernel (N > 1) and the chunked
            torch scan (N = 1); None counts as N > 1.

    Returns:
        str: A concrete backend name.

    Raises:
        ValueError: For an unknown name.
        RuntimeError: If a forced backend cannot run here, saying why.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown selective-scan backend {backend!r}; '
                         f'choose one of {BACKENDS}')
    if backend == 'auto':
        if not _is_cuda(u):
            return 'compiled' if _auto_compiled_cpu(u, d_state) else 'torch'
        chosen = 'torch'
        for name in ('mamba', 'triton'):
            if backend_unavailable_reason(name, u) is None:
                chosen = name
                break
        if chosen != 'mamba' and mamba_installed() and \
                u.dtype != torch.float64:
            _warn_once(f'mamba-ssm is installed but its selective scan '
                       f'cannot run: {backend_unavailable_reason("mamba", u)}'
                       f'; using the {chosen!r} backend instead.')
        return chosen
    reason = backend_unavailable_reason(backend, u)
    if reason is not None:
        raise RuntimeError(
            f'selective_scan backend {backend!r} is unavailable: {reason}.')
    return backend


def _auto_compiled_cpu(u: Tensor, d_state: Optional[int]) -> bool:
    """Whether ``'auto'`` runs the compiled CPU kernel for ``u``: CPU
    tensors, outside jit tracing and torch.compile / torch.export (which
    see the pure-PyTorch Function), and as ``ZEROMAMBA_CPU_SCAN`` allows.

    Under ``auto`` the switch leaves d_state 1 (VMamba) on the chunked
    torch scan, which is not bound by per-op overhead there (the compiled
    kernel is about 1.4x faster on VMamba-S's call, 3-4x at d_state 16);
    ``ZEROMAMBA_CPU_SCAN=compiled`` takes every CPU scan.
    """
    if u.device.type != 'cpu' or torch.jit.is_tracing() or \
            torch.compiler.is_compiling():
        return False
    if d_state == 1 and cpu_scan_mode() == 'auto':
        return False
    return use_compiled_cpu_scan()


def _warn_once(message: str) -> None:
    """One warning per distinct message and process."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _check_inputs(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                  D: Optional[Tensor], z: Optional[Tensor],
                  delta_bias: Optional[Tensor]) -> None:
    """Raise ValueError naming the argument whose shape is wrong."""
    if u.dim() != 3:
        raise ValueError('selective_scan: u must be (batch, D, L), got shape '
                         f'{tuple(u.shape)}')
    batch, channels, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f'selective_scan: delta must have u\'s shape '
                         f'{tuple(u.shape)}, got {tuple(delta.shape)}')
    if z is not None and z.shape != u.shape:
        raise ValueError(f'selective_scan: z must have u\'s shape '
                         f'{tuple(u.shape)}, got {tuple(z.shape)}')
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f'selective_scan: A must be (D={channels}, N), got '
                         f'{tuple(A.shape)}')
    if A.is_complex():
        raise ValueError('selective_scan: complex A is not supported')
    d_state = A.shape[1]
    for name, x in (('B', B), ('C', C)):
        if x.dim() == 2:
            if tuple(x.shape) != (channels, d_state):
                raise ValueError(
                    f'selective_scan: fixed {name} must be (D={channels}, '
                    f'N={d_state}), got {tuple(x.shape)}')
            continue
        if x.dim() not in (3, 4):
            raise ValueError(
                f'selective_scan: {name} must be (batch, G, N, L) or '
                f'(batch, N, L) (input-dependent) or (D, N) (fixed), got '
                f'{tuple(x.shape)}')
        groups = x.shape[1] if x.dim() == 4 else 1
        if (x.shape[0], x.shape[-2], x.shape[-1]) != (batch, d_state, length):
            raise ValueError(
                f'selective_scan: {name} must be (batch={batch}, G, '
                f'N={d_state}, L={length}), got {tuple(x.shape)}')
        if channels % groups != 0:
            raise ValueError(
                f'selective_scan: {name} has {groups} groups, which does not '
                f'divide the D={channels} channels of u')
    for name, x in (('D', D), ('delta_bias', delta_bias)):
        if x is not None and tuple(x.shape) != (channels, ):
            raise ValueError(f'selective_scan: {name} must be (D={channels},)'
                             f', got {tuple(x.shape)}')


def selective_scan(
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
    backend: str = 'auto',
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Selective scan with mamba-ssm's ``selective_scan_fn`` signature.

    Differentiable w.r.t. u, delta, A, B, C, D, delta_bias and z (and the
    returned last state, except with the mamba backend, which ignores its
    gradient). Half/bf16 inputs (e.g. under AMP) are scanned in float32;
    ``y`` comes back in ``u``'s dtype.

    Args:
        u (Tensor): Input, (batch, D, L).
        delta (Tensor): Step sizes before bias/softplus, (batch, D, L).
        A (Tensor): Diagonal state matrix, (D, N), float32.
        B (Tensor): Input projection, (batch, G, N, L), channel ``d``
            reading group ``d // (D / G)``; or (batch, N, L) for G = 1; or
            fixed, (D, N), the same at every step.
        C (Tensor): Output projection, same layouts as B.
        D (Tensor, optional): Skip weight, (D,).
        z (Tensor, optional): Gate, (batch, D, L): ``y * silu(z)``.
        delta_bias (Tensor, optional): Added to delta, (D,).
        delta_softplus (bool): Apply softplus to ``delta + delta_bias``.
        return_last_state (bool): Also return the state after the last
            step, (batch, D, N), float32 (float64 for float64 inputs).
        backend (str): ``'auto'`` (default), ``'torch'``, ``'compiled'``,
            ``'triton'``, ``'mamba'`` or ``'ref'``; see the module
            docstring.

    Returns:
        Tensor | tuple: ``y`` (batch, D, L), and the last state if asked.
        For L = 0, ``y`` is empty and the last state is zeros (the initial
        state), both connected to the inputs with zero gradients.

    Raises:
        ValueError: For inconsistent shapes or an unknown backend.
        RuntimeError: If a forced backend cannot run on these tensors.
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    if torch.onnx.is_in_onnx_export() and u.shape[2] > 0:
        # Exporters record operators, not Python loops or kernels: the
        # loop-free closed form (static shapes, standard ONNX operators).
        return selective_scan_export(u, delta, A, B, C, D, z, delta_bias,
                                     delta_softplus, return_last_state)
    name = resolve_backend(backend, u, A.shape[1])
    if u.shape[2] == 0:
        return _empty_scan(u, delta, A, B, C, D, z, delta_bias,
                           return_last_state)
    if name == 'mamba':
        return selective_scan_mamba(u, delta, A, B, C, D, z, delta_bias,
                                    delta_softplus, return_last_state)
    if name == 'ref':
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias,
                                  delta_softplus, return_last_state)
    B, C = (_grouped(x, u) for x in (B, C))
    if B.shape[1] != C.shape[1]:
        # The chunked and Triton scans read B and C of one group per
        # block: give both one row per channel when their groupings differ.
        B, C = (expand_groups(x, u.shape[1]).expand(u.shape[0], -1, -1, -1)
                for x in (B, C))
    fn = dict(
        torch=selective_scan_torch,
        compiled=selective_scan_cpu,
        triton=selective_scan_triton)[name]
    compute = compute_dtype(u, delta, B, C)
    out = fn(u, delta, A, B, C, D, delta_bias, delta_softplus,
             return_last_state, u.dtype if z is None else compute)
    if z is None:
        return out
    y, last = out if return_last_state else (out, None)
    # The gate is applied in the compute dtype, then cast, as in the
    # reference; autograd handles its gradient.
    y = (y * F.silu(z.to(compute))).to(u.dtype)
    return (y, last) if return_last_state else y


def _grouped(x: Tensor, u: Tensor) -> Tensor:
    """B/C as (batch, G, N, L) for the torch and Triton backends; fixed
    (D, N) ones become a broadcasting view with one group per channel."""
    if x.dim() == 2:
        batch, _, length = u.shape
        return x[None, :, :, None].expand(batch, *x.shape, length)
    return x.unsqueeze(1) if x.dim() == 3 else x


def _empty_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                D: Optional[Tensor], z: Optional[Tensor],
                delta_bias: Optional[Tensor], return_last_state: bool):
    """The scan of L = 0 steps: empty ``y``; last state = initial state 0.

    Both are tied to every input through an empty sum (exactly 0, even for
    inf/NaN inputs), so autograd gives zero gradients instead of reporting
    inputs unused.
    """
    inputs = [
        t for t in (u, delta, A, B, C, D, z, delta_bias)
        if t is not None and t.is_floating_point()
    ]
    tie = sum(t.reshape(-1)[:0].sum().to(torch.float64) for t in inputs)
    y = u.new_zeros(u.shape) + tie.to(u.dtype)
    if not return_last_state:
        return y
    ct = compute_dtype(u, delta, B, C)
    last = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]), dtype=ct)
    return y, last + tie.to(ct)
