"""Fast pure-PyTorch selective scan: the CPU path, and a fallback anywhere.

:func:`selective_scan_torch` runs the chunked scan below for d_state 1
(VMamba) and the time-major scan of :mod:`.selective_scan_states` for
d_state > 1 (Vim, GlobalMamba, V2M), where this layout's short strided
runs would cost more than the arithmetic.

The recurrence ``h_t = a_t * h_{t-1} + b_t`` (``a_t = exp(delta_t * A)``,
``b_t = delta_t * B_t * u_t``) is evaluated as a two-level chunked scan
that never divides by a decay and never exponentiates a positive number,
so strong decay (``delta * |A|`` of 50 per step) and long sequences
(12,544 steps) stay finite:

1. The sequence is cut into ``nc`` chunks of ``T`` steps (``T ~ 16``)
   and laid out as ``(..., T, nc)``, so that one step ``t`` of *every*
   chunk is a single slab. A Python loop over ``t`` (one fused ``addcmul``
   per step) gives each chunk's end state from a zero start.
2. A scan over the ``nc`` chunks (recursive doubling, ``log2 nc`` steps of
   small whole-tensor ops) carries the true state across chunk
   boundaries, using each chunk's total decay ``prod_t a_t`` (<= 1).
3. A second loop over ``t`` re-runs the recurrence from the true chunk
   start states, in place.

That is about ``2 T + 4 log2(nc)`` small kernels per block instead of
``L``. All other math (softplus, decays, products) runs as vectorised
elementwise ops in the input layout; only the decay, the scanned inputs
and the states are transposed to and from the chunk layout. On CPU the rows
(batch x channel) are processed in blocks of about half a million elements
whose temporaries come from a pool of buffers handed out by role
(:class:`ScanWorkspace`): they stay in the last-level cache and no full-size
temporary is allocated (a fresh multi-megabyte tensor costs page faults
that cost more than the arithmetic on it).

Autograd is a custom :class:`torch.autograd.Function` whose forward keeps
only its inputs; the backward recomputes the states block by block and
runs the adjoint recurrence ``lam_t = C_t g_t + a_{t+1} lam_{t+1}`` with
the same chunked scheme, so training memory is that of the inputs plus one
block of temporaries. :func:`_backward` derives every gradient.
"""
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

from .scan_blocks import ScanWorkspace, chunk_shape, scan_blocks
from .scan_chunked import chunked, scan_backward_, scan_forward_, to_chunks
from .scan_common import LOG2E, compute_dtype, softplus_
from .scan_function import make_scan_function
from .selective_scan_states import SelectiveScanStatesFn

# The workspace under its former name (tests and older imports).
_Workspace = ScanWorkspace

# Elements (rows x steps) per block on CPU: the dozen float32 buffers of a
# block (2 MB each) stay in a 32 MB last-level cache, and each step of the
# loops over T is wide enough to amortise its dispatch. Other devices run
# the whole problem as one block.
CPU_BLOCK_ELEMS = 1 << 19


def _sum_state(x: Tensor, dim: int = 3) -> Tensor:
    """Sum over the state dim (a free squeeze when N == 1)."""
    return x.squeeze(dim) if x.shape[dim] == 1 else x.sum(dim)


class _Problem:
    """Shapes, padding and views shared by the forward and the backward.

    Blocks are (batch, group, channel) slices; within a block the tensors
    are (nb, ng, nd, [N,] L) in the input layout, where all the elementwise
    math runs (contiguous, vectorised), and only the decay and the scanned
    quantities are transposed to the (..., T, nc) chunk layout.
    """

    def __init__(self, u: Tensor, A: Tensor, B: Tensor):
        self.batch, self.channels, self.length = u.shape
        self.groups, self.d_state = B.shape[1], A.shape[1]
        self.per_group = self.channels // self.groups
        self.T, self.nc = chunk_shape(self.length)
        self.padded = self.T * self.nc
        self.budget = (
            CPU_BLOCK_ELEMS //
            self.d_state if u.device.type == 'cpu' else None)

    def pad(self, x: Tensor) -> Tensor:
        if self.padded == self.length:
            return x
        return torch.nn.functional.pad(x, (0, self.padded - self.length))

    def rows(self, x: Tensor) -> Tensor:
        """(batch, D, ...) -> (batch, G, D/G, ...) view."""
        return x.view(self.batch, self.groups, self.per_group, *x.shape[2:])

    def params(self, x: Optional[Tensor]) -> Optional[Tensor]:
        """(D, ...) -> (G, D/G, ...) view."""
        if x is None:
            return None
        return x.view(self.groups, self.per_group, *x.shape[1:])

    def blocks(self) -> Iterator[Tuple[slice, slice, slice]]:
        return scan_blocks(self.batch, self.groups, self.per_group,
                           self.padded, self.budget)

    @property
    def last_index(self) -> Tuple[int, int]:
        """(t, c) of step L - 1 in the chunk layout."""
        return (self.length - 1) % self.T, (self.length - 1) // self.T


def _block_delta(ws: _Workspace,
                 delta: Tensor,
                 bias: Optional[Tensor],
                 softplus: bool,
                 want_grad: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """Step sizes ``dt = softplus(delta + bias)`` of a block (roles
    ``'dt'`` and, with ``want_grad``, ``'softplus_grad'`` =
    ``sigmoid(delta + bias)``, the derivative of the softplus)."""
    dt = ws.take('dt', delta.shape)
    if bias is not None:
        torch.add(delta, bias[..., None], out=dt)
    else:
        dt.copy_(delta)
    grad = None
    if softplus:
        if want_grad:
            grad = torch.sigmoid(dt, out=ws.take('softplus_grad', dt.shape))
        softplus_(dt, ws.take)
        ws.release('softplus_exp', 'softplus_w', 'softplus_fix')
    return dt, grad


def _to_chunks(p: '_Problem',
               ws: _Workspace,
               x: Tensor,
               role: str,
               handover: Optional[str] = None) -> Tensor:
    """``x`` in the chunk layout: a copy taken as ``role``, or with one chunk
    (short sequences: V2M's rows, columns) a view, scanned in place. ``x``'s
    role ``handover``, if given, is released (a view's is renamed ``role``)."""
    if p.nc == 1:
        if handover is not None:
            ws.rename(handover, role)
        return x.unsqueeze(-1)
    x_c = to_chunks(x, p.T, p.nc, ws.take(role, x.shape))
    if handover is not None:
        ws.release(handover)
    return x_c


def _states(p: '_Problem', ws: _Workspace, state_c: Tensor) -> Tensor:
    """``'state_c'`` as ``'state'`` (input layout; renamed if one chunk)."""
    if p.nc == 1:
        ws.rename('state_c', 'state')
        return state_c.squeeze(-1)
    state = ws.take('state', state_c.shape[:-2] + (p.padded, ))
    chunked(state, p.T, p.nc).copy_(state_c)
    ws.release('state_c')
    return state


def _block_states(p: '_Problem', ws: _Workspace, dt: Tensor, u: Tensor,
                  A: Tensor, B: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Decays and states of a block.

    ``A`` here is ``A * log2(e)``; B is the block's (nb, ng, N, L).

    Returns:
        tuple: roles ``'decay'`` (``a_t = exp(dt_t A)``, input layout,
        (nb, ng, nd, N, L)), ``'decay_c'`` (the same in the chunk layout)
        and ``'state_c'`` (the states ``h_t``, chunk layout: filled with
        the scan inputs ``b_t = dt_t u_t B_t`` and scanned in place). The
        products run in the contiguous input layout and are then copied
        (roles ``'dt_u'``, ``'scan_inputs'``): faster on CPU than writing
        them through strided chunk-layout views. With one chunk no copy
        is made (:func:`_to_chunks`).
    """
    shape = dt.shape[:3] + (p.d_state, dt.shape[-1])
    # exp(dt A) as exp2(dt * (A log2 e)): see scan_common.softplus_.
    decay = torch.mul(
        dt.unsqueeze(3), A[..., None], out=ws.take('decay', shape))
    decay.exp2_()
    decay_c = _to_chunks(p, ws, decay, 'decay_c')
    dt_u = torch.mul(dt, u, out=ws.take('dt_u', dt.shape))
    inputs = torch.mul(
        dt_u.unsqueeze(3), B.unsqueeze(2), out=ws.take('scan_inputs', shape))
    ws.release('dt_u')
    state_c = _to_chunks(p, ws, inputs, 'state_c', handover='scan_inputs')
    scan_forward_(decay_c, state_c)
    return decay, decay_c, state_c


def _forward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
             out_dtype: torch.dtype,
             want_last: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """``y_t = sum_n C_t h_t + D u_t`` block by block (no gate).

    Workspace roles per block, in order of release: the softplus
    temporaries (inside :func:`_block_delta`), ``'dt_u'`` (inside
    :func:`_block_states`), ``'decay'`` and ``'decay_c'`` (after the
    scan), ``'state_c'`` (copied, or renamed with one chunk, to
    ``'state'``, the input layout), ``'state'`` (renamed
    ``'output_terms'`` when multiplied by ``C_t`` in place; for N = 1 their
    sum over n is a view of that buffer, where ``D u`` is added) and
    ``'dt'`` at the end of the block.
    """
    p = _Problem(u, A, B)
    ct = compute_dtype(u, delta, B, C)
    ws = _Workspace.get(u.device, ct)
    nc, N = p.nc, p.d_state
    u4, d4 = p.rows(p.pad(u)), p.rows(p.pad(delta))
    B, C = p.pad(B), p.pad(C)
    A3, D2, bias2 = p.params(A.to(ct)), p.params(D), p.params(bias)
    A2 = A3 * LOG2E  # for exp2
    y = u.new_empty((p.batch, p.channels, p.padded), dtype=out_dtype)
    y4 = p.rows(y)
    last = (
        u.new_empty((p.batch, p.groups, p.per_group,
                     N), dtype=ct) if want_last else None)
    tl, cl = p.last_index
    for bs, gs, ds in p.blocks():
        with ws.scope():
            ub = u4[bs, gs, ds]
            dt, _ = _block_delta(ws, d4[bs, gs, ds],
                                 None if bias2 is None else bias2[gs, ds],
                                 softplus)
            decay, _, state_c = _block_states(p, ws, dt, ub, A2[gs, ds], B[bs,
                                                                           gs])
            ws.release('decay')
            if nc > 1:  # else a view of the decay (see _to_chunks)
                ws.release('decay_c')
            if last is not None:
                last[bs, gs, ds] = state_c[..., tl, cl]
            state = _states(p, ws, state_c)
            terms = state.mul_(C[bs, gs].unsqueeze(2))  # h_t C_t
            ws.rename('state', 'output_terms')
            yb = _sum_state(terms)  # for N = 1 a view of the terms
            if D2 is not None:
                yb.addcmul_(ub, D2[gs, ds, None])
            y4[bs, gs, ds] = yb
    if p.padded != p.length:
        y = y[..., :p.length].contiguous()
    if last is not None:
        last = last.view(p.batch, p.channels, N)
    return y, last


def _backward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
              D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
              gy: Tensor, glast: Optional[Tensor],
              needs: Tuple[bool, ...]) -> Tuple[Optional[Tensor], ...]:
    r"""Gradients of the z-free scan, by the adjoint recurrence (dB and dC
    only where ``needs``, autograd's ``needs_input_grad``, asks for them).

    Forward, for one sequence and channel ``d``, state ``n``, step ``t``
    (``x_t = delta_t + bias``)::

        dt_t = softplus(x_t)  (or x_t)    a_t = exp(dt_t A_n)
        b_t  = dt_t u_t B_{t,n}           h_t = a_t h_{t-1} + b_t
        y_t  = sum_n C_{t,n} h_t + D u_t  h_{-1} = 0

    With ``g_t = dL/dy_t`` and ``glast = dL/dh_{L-1}`` (the returned last
    state's gradient), the total derivative ``lam_t = dL/dh_t`` obeys the
    adjoint recurrence, run backwards in time with the same chunked scan::

        lam_t = C_{t,n} g_t + a_{t+1} lam_{t+1}  (+ glast at t = L-1),
        lam_L = 0.

    ``h_t`` reads ``a_t`` through ``a_t h_{t-1}`` and ``b_t`` directly, so
    ``dL/da_t = lam_t h_{t-1}`` and ``dL/db_t = lam_t``. With
    ``q_t = a_t h_{t-1}`` (formed as a product, not as ``h_t - b_t``,
    which would cancel) and ``da_t/dA_n = dt_t a_t``,
    ``da_t/ddt_t = A_n a_t``, ``db_t/ddt_t = u_t B_{t,n}``::

        dA_n      = sum_{batch, t} dt_t lam_t q_t
        dB_{t,n}  = sum_{d in group} lam_t dt_t u_t
        dC_{t,n}  = sum_{d in group} g_t h_t
        du_t      = dt_t s_t + D g_t,        s_t = sum_n lam_t B_{t,n}
        ddt_t     = sum_n A_n lam_t q_t + u_t s_t
        ddelta_t  = ddt_t * sigmoid(x_t)     (softplus' = sigmoid; else 1)
        dD        = sum_{batch, t} g_t u_t
        d delta_bias = sum_{batch, t} ddelta_t

    The gate ``y * silu(z)`` (and so ``dz``) is applied outside this
    function, by autograd, in :func:`zeromamba_mm.ops.selective_scan`.

    Workspace roles per block (:class:`ScanWorkspace`), from take to release:
    ``'grad_y'`` (``g`` upcast), ``'dt'`` and ``'softplus_grad'`` live for
    the whole block; ``'decay'`` until ``lam q`` is formed; ``'decay_c'``
    until the adjoint scan is done; ``'adjoint'`` (``lam``, input layout:
    holds its source ``C g`` until the scan result is copied over it)
    until ``s``; ``'adjoint_c'`` (``lam``, chunk layout; none with one
    chunk) for the scan; ``'state_c'`` until copied (renamed with one
    chunk) to ``'state'`` (input layout). The terms of
    the sums are formed in place over a factor that is not needed
    afterwards (:meth:`ScanWorkspace.rename` marks the hand-over):
    ``'decay'`` -> ``'adjoint_decay'`` (``lam_t q_t``) ->
    ``'ddelta_terms'`` (``A lam q``); ``'state'`` -> ``'dC_terms'``;
    ``'dt_u'`` -> ``'dB_terms'`` (N = 1); ``'adjoint'`` -> ``'adjoint_b'``
    (``lam B``, summed over n to ``s``). ``'dA_terms'``, ``'grad_y_u'``
    live only for their sums; ``'du'`` and ``'ddelta_terms'`` (for N = 1
    the sum over n is a view, where ``ddelta`` accumulates) until the
    block's gradients are written.
    """
    p = _Problem(u, A, B)
    ct = compute_dtype(u, delta, B, C)
    ws = _Workspace.get(u.device, ct)
    T, nc, N = p.T, p.nc, p.d_state
    u4, d4, g4 = (p.rows(p.pad(x)) for x in (u, delta, gy))
    Bp, Cp = p.pad(B), p.pad(C)
    A3, D2, bias2 = p.params(A.to(ct)), p.params(D), p.params(bias)
    A2 = A3 * LOG2E  # for exp2
    glast4 = None if glast is None else p.rows(glast)
    du = u.new_empty((p.batch, p.channels, p.padded))
    ddelta = delta.new_empty((p.batch, p.channels, p.padded))
    du4, dd4 = p.rows(du), p.rows(ddelta)
    dB = torch.zeros(Bp.shape, dtype=ct, device=u.device)
    dC = torch.zeros(Cp.shape, dtype=ct, device=u.device)
    dA = torch.zeros_like(A3)
    dD = torch.zeros(p.groups, p.per_group, dtype=ct, device=u.device)
    dbias = torch.zeros_like(dD)
    tl, cl = p.last_index
    for bs, gs, ds in p.blocks():
        with ws.scope():
            ub = u4[bs, gs, ds]
            gb = ws.take('grad_y', ub.shape).copy_(g4[bs, gs, ds])
            Ab = A3[gs, ds]
            Bb, Cb = Bp[bs, gs].unsqueeze(2), Cp[bs, gs].unsqueeze(2)
            dt, sp_grad = _block_delta(
                ws, d4[bs, gs, ds], None if bias2 is None else bias2[gs, ds],
                softplus, True)
            decay, decay_c, state_c = _block_states(p, ws, dt, ub, A2[gs, ds],
                                                    Bb.squeeze(2))
            shape = decay.shape
            # lam: its source C_t g_t (+ glast), scanned in the chunk
            # layout, copied back over the source.
            adjoint = torch.mul(
                gb.unsqueeze(3), Cb, out=ws.take('adjoint', shape))
            if glast4 is not None:
                adjoint[..., p.length - 1] += glast4[bs, gs, ds]
            adjoint_c = _to_chunks(p, ws, adjoint, 'adjoint_c')
            scan_backward_(decay_c, adjoint_c)
            if nc > 1:  # else views, scanned in place (see _to_chunks)
                ws.release('decay_c')
                chunked(adjoint, T, nc).copy_(adjoint_c)
                ws.release('adjoint_c')
            state = _states(p, ws, state_c)
            # lam_t q_t with q_t = a_t h_{t-1} (q_0 = 0), formed in place
            # over the decay, which is not needed after it.
            decay[..., 1:].mul_(state[..., :-1])
            decay[..., 0] = 0
            lam_q = decay.mul_(adjoint)
            ws.rename('decay', 'adjoint_decay')
            terms = torch.mul(
                lam_q, dt.unsqueeze(3), out=ws.take('dA_terms', shape))
            dA[gs, ds] += terms.sum((0, -1))
            ws.release('dA_terms')
            # dC and dB only when asked for (a fixed all-ones B or C, as in
            # V2M's 2-D scan, needs none).
            if needs[4]:
                terms = state.mul_(gb.unsqueeze(3))  # g_t h_t
                ws.rename('state', 'dC_terms')
                dC[bs, gs] += terms.sum(2)
                ws.release('dC_terms')
            else:
                ws.release('state')
            if needs[3]:
                dt_u = torch.mul(dt, ub, out=ws.take('dt_u', dt.shape))
                if N == 1:  # lam_t dt_t u_t, in place over dt_u
                    terms = dt_u.mul_(adjoint.squeeze(3))
                    ws.rename('dt_u', 'dB_terms')
                    dB[bs, gs] += terms.sum(2).unsqueeze(2)
                else:
                    terms = torch.mul(
                        adjoint,
                        dt_u.unsqueeze(3),
                        out=ws.take('dB_terms', shape))
                    dB[bs, gs] += terms.sum(2)
                    ws.release('dt_u')
                ws.release('dB_terms')
            s = _sum_state(adjoint.mul_(Bb))  # sum_n lam_t B_t
            ws.rename('adjoint', 'adjoint_b')
            dub = torch.mul(dt, s, out=ws.take('du', dt.shape))
            if D2 is not None:
                dub.addcmul_(gb, D2[gs, ds, None])
                gu = torch.mul(gb, ub, out=ws.take('grad_y_u', gb.shape))
                dD[gs, ds] += gu.sum((0, -1))
            du4[bs, gs, ds] = dub
            ddb = _sum_state(lam_q.mul_(Ab[..., None]))  # sum_n A lam q
            ws.rename('adjoint_decay', 'ddelta_terms')
            ddb.addcmul_(ub, s)
            if sp_grad is not None:
                ddb.mul_(sp_grad)
            if bias2 is not None:
                dbias[gs, ds] += ddb.sum((0, -1))
            dd4[bs, gs, ds] = ddb
    if p.padded != p.length:
        du, ddelta = (x[..., :p.length].contiguous() for x in (du, ddelta))
        dB, dC = dB[..., :p.length], dC[..., :p.length]
    dB = dB.to(B.dtype) if needs[3] else None
    dC = dC.to(C.dtype) if needs[4] else None
    dA = dA.view(A.shape).to(A.dtype)
    dD = None if D is None else dD.view(D.shape).to(D.dtype)
    dbias = None if bias is None else dbias.view(bias.shape).to(bias.dtype)
    return du, ddelta, dA, dB, dC, dD, dbias


SelectiveScanTorchFn = make_scan_function(
    'SelectiveScanTorchFn', _forward, _backward,
    'Autograd wrapper of the chunked scan (z-free; see '
    ':func:`selective_scan_torch`). B and C are (batch, G, N, L).')


def selective_scan_torch(u: Tensor,
                         delta: Tensor,
                         A: Tensor,
                         B: Tensor,
                         C: Tensor,
                         D: Optional[Tensor] = None,
                         delta_bias: Optional[Tensor] = None,
                         delta_softplus: bool = False,
                         return_last_state: bool = False,
                         out_dtype: Optional[torch.dtype] = None):
    """Chunked selective scan in pure PyTorch (no gate ``z``).

    Inputs are validated by :func:`zeromamba_mm.ops.selective_scan`; here
    B/C must already be (batch, G, N, L).

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
            None. The scan itself runs in float32 (float64 for float64
            inputs).

    Returns:
        Tensor | tuple: ``y`` (batch, D, L), and the last state
        (batch, D, N) in the compute dtype when asked for.
    """
    # d_state > 1: the time-major scan (see selective_scan_states).
    fn = SelectiveScanTorchFn if A.shape[1] == 1 else SelectiveScanStatesFn
    return fn.apply(u, delta, A, B, C, D, delta_bias, delta_softplus,
                    return_last_state, out_dtype or u.dtype)
