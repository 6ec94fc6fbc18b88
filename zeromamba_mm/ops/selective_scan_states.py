"""Pure-PyTorch selective scan for d_state > 1, in a time-major layout.

With N states per channel the recurrence ``h_t = a_t * h_{t-1} + b_t``
runs over a (rows x N) state per step. The d_state-1 scan
(:mod:`.selective_scan_torch`) keeps time innermost, so one step of every
chunk is a strided slab whose contiguous runs are only ``nc`` elements
long; at N = 16 and L = 197 (Vim-S) that is per-element and per-op
overhead, not arithmetic. Here every block is laid out time-major,
``(T, nc, rows, N)`` (step ``t`` of chunk ``c`` is at position
``c * T + t``), so that:

* one step of every chunk is one contiguous slab of ``nc * rows * N``
  elements: the two loops over the ``T`` steps of a chunk (chunk-local end
  states, then the final states from the true chunk starts) are ``2 T``
  wide vectorised ``addcmul`` calls;
* the decays ``exp(dt A)`` and the scan inputs ``dt u B`` are written
  straight into that layout by broadcasting the small per-step tensors
  (dt, u, B, C: rows or N wide) that are transposed instead; no
  state-sized tensor is ever copied between layouts;
* the contractions over the state (``y = C . h``, and in the backward
  ``dB``, ``dC`` and ``sum_n lam B``) are batched matrix products;
* each chunk's total decay is ``exp(A * sum_t dt_t)``, a segment sum of
  log-decays (<= 0), never a product of state-sized tensors and never a
  division by a decay, so strong decay cannot overflow; the carry across
  chunks is a recursive doubling over ``nc`` (products of decays <= 1).

Autograd is a custom :class:`torch.autograd.Function` that keeps only its
inputs and recomputes the states in the backward (the adjoint recurrence
is derived in :func:`zeromamba_mm.ops.selective_scan_torch._backward`;
the same equations are evaluated here in the time-major layout).
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .scan_blocks import ScanWorkspace, chunk_shape, scan_blocks
from .scan_common import LOG2E, compute_dtype, softplus_

# Elements (rows x steps x N) per block on CPU: the three or four
# state-sized float32 buffers of a block (decay, states, adjoint, terms)
# stay in a 32 MB last-level cache, and each block is wide enough that the
# Python overhead of its ~50 ops is small. Other devices: one block.
STATE_BLOCK_ELEMS = 1 << 20


def _carry_(total: Tensor, end: Tensor, reverse: bool = False) -> Tensor:
    """Inclusive scan ``e_c = t_c e_{c-1} + e_c`` along dim 0 (or, with
    ``reverse``, ``e_c = t_c e_{c+1} + e_c``) by recursive doubling;
    ``total`` is consumed."""
    n, k = end.shape[0], 1
    while k < n:
        if reverse:
            end[:-k] = torch.addcmul(end[:-k], total[:-k], end[k:])
            if 2 * k < n:
                total[:-k] = total[:-k] * total[k:]
        else:
            end[k:] = torch.addcmul(end[k:], total[k:], end[:-k])
            if 2 * k < n:
                total[k:] = total[k:] * total[:-k]
        k *= 2
    return end


def _scan_(a: Tensor, h: Tensor, total: Tensor) -> None:
    """In place ``h <- states`` of ``h_t = a_t h_{t-1} + h_t``, from 0.

    Args:
        a (Tensor): Decays, (T, nc, ...).
        h (Tensor): Scan inputs, (T, nc, ...), overwritten.
        total (Tensor): Each chunk's total decay, (nc, ...); consumed.
    """
    T, nc = a.shape[:2]
    if nc > 1:
        end = h[0].clone()  # chunk-local end states from a zero start
        for t in range(1, T):
            torch.addcmul(h[t], a[t], end, out=end)
        _carry_(total, end)  # true end states
        h[0, 1:].addcmul_(a[0, 1:], end[:-1])
    for t in range(1, T):
        h[t].addcmul_(a[t], h[t - 1])


def _scan_reverse_(a: Tensor, lam: Tensor, alpha: Tensor) -> None:
    """In place ``lam <- l`` for ``l_t = lam_t + a_{t+1} l_{t+1}``.

    Args:
        a (Tensor): Decays, (T, nc, ...).
        lam (Tensor): Sources, (T, nc, ...), overwritten.
        alpha (Tensor): (nc, ...): for chunk ``c < nc - 1`` the decay from
            the first step of chunk ``c + 1`` back to the first step of
            ``c`` (steps 1..T-1 of ``c`` and step 0 of ``c + 1``); ignored
            for the last chunk. Consumed.
    """
    T, nc = a.shape[:2]
    if nc > 1:
        first = lam[T - 1].clone()  # chunk-local values at step 0
        for t in range(T - 2, -1, -1):
            torch.addcmul(lam[t], a[t + 1], first, out=first)
        alpha[-1] = 0
        _carry_(alpha, first, reverse=True)  # true values at step 0
        lam[T - 1, :-1].addcmul_(a[0, 1:], first[1:])
    for t in range(T - 2, -1, -1):
        lam[t].addcmul_(a[t + 1], lam[t + 1])


class _Problem:
    """The whole call's per-step tensors in the time-major layout.

    These are small (no state dim): ``dt``, ``u`` (and ``g``, the output
    gradient, in the backward) are (T, nc, batch, G, D/G); ``B``, ``C`` are
    (T, nc, batch, G, N), zero beyond step L - 1 (``dt = 0``: decay 1,
    input 0, so the padded steps change nothing before them). ``A3`` is
    ``A`` as (G, N, D/G) and ``A2 = A3 * log2(e)`` (for ``exp2``).
    Blocks are (batch, group, channel) slices of these.
    """

    def __init__(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                 C: Tensor, bias: Optional[Tensor], softplus: bool,
                 want_grad: bool):
        batch, channels, self.length = u.shape
        groups, N = B.shape[1], A.shape[1]
        self.rows = (batch, groups, channels // groups)
        self.T, self.nc = chunk_shape(self.length)
        self.ct = ct = compute_dtype(u, delta, B, C)
        x = delta.to(ct)
        x = x + bias.to(ct)[:, None] if bias is not None else x.clone()
        # softplus' = sigmoid, taken before x is overwritten.
        self.softplus_grad = (
            torch.sigmoid(x) if softplus and want_grad else None)
        if softplus:
            softplus_(x)
        self.dt, self.u = self.time_major(x), self.time_major(u)
        self.B, self.C = self.time_major(B), self.time_major(C)
        self.A3 = A.to(ct).view(self.rows[1:] + (N, )).transpose(
            1, 2).contiguous()
        self.A2 = self.A3 * LOG2E
        budget = STATE_BLOCK_ELEMS // N if u.device.type == 'cpu' else None
        self.blocks: List[Tuple[slice, slice, slice]] = list(
            scan_blocks(*self.rows, self.T * self.nc, budget))

    def time_major(self, x: Tensor) -> Tensor:
        """(batch, D, L) or (batch, G, N, L) -> zero-padded contiguous
        (T, nc, batch, G, D/G or N) in the compute dtype."""
        if x.dim() == 3:
            x = x.view(self.rows + (self.length, ))
        T, nc, length = self.T, self.nc, self.length
        out = x.new_zeros((T, nc) + x.shape[:-1], dtype=self.ct)
        steps, by_chunk = x.movedim(-1, 0), out.transpose(0, 1)
        full = length // T
        if full:
            by_chunk[:full].copy_(steps[:full * T].unflatten(0, (full, T)))
        if length > full * T:
            by_chunk[full, :length - full * T].copy_(steps[full * T:])
        return out

    def from_time_major(self, x: Tensor) -> Tensor:
        """(T, nc, ...) -> (..., L) view (inverse of :meth:`time_major`)."""
        return x.movedim(1, -1).movedim(0, -1).flatten(-2)[..., :self.length]

    def block(self, ws: ScanWorkspace, bs: slice, gs: slice,
              ds: slice) -> Tuple[Tensor, ...]:
        """Views of a block's ``dt``, ``u``, ``B``, ``C``, ``A2`` and its
        decays ``exp(dt A)`` (role ``'decay'``, (T, nc, nb, ng, N, nd))."""
        dt, u = self.dt[:, :, bs, gs, ds], self.u[:, :, bs, gs, ds]
        B, C, A2 = self.B[:, :, bs, gs], self.C[:, :, bs, gs], self.A2[gs, :,
                                                                         ds]
        shape = dt.shape[:-1] + A2.shape[-2:]
        decay = torch.mul(dt.unsqueeze(-2), A2, out=ws.take('decay', shape))
        return dt, u, B, C, A2, decay.exp2_()

    @property
    def last_index(self) -> Tuple[int, int]:
        """(t, c) of step L - 1 in the time-major layout."""
        return (self.length - 1) % self.T, (self.length - 1) // self.T


def _chunk_decay(dt: Tensor,
                 A2: Tensor,
                 steps: slice = slice(None),
                 shift_next: bool = False) -> Tensor:
    """``exp(A * sum_{t in steps} dt_t)`` per chunk, (nc, ..., N, nd): a
    segment sum of log-decays (<= 0). With ``shift_next``, step 0 of the
    next chunk is included too (the last chunk's value is then unused)."""
    log_sum = dt[steps].sum(0)
    if shift_next:
        log_sum[:-1] += dt[0, 1:]
    return (log_sum.unsqueeze(-2) * A2).exp2_()


def _states(ws: ScanWorkspace, dt: Tensor, u: Tensor, B: Tensor, A2: Tensor,
            decay: Tensor) -> Tensor:
    """Role ``'state'``: ``h_t`` (T, nc, nb, ng, N, nd), from the scan
    inputs ``dt_t u_t B_t``."""
    h = torch.mul((dt * u).unsqueeze(-2),
                  B.unsqueeze(-1),
                  out=ws.take('state', decay.shape))
    _scan_(decay, h, _chunk_decay(dt, A2))
    return h


def _forward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
             out_dtype: torch.dtype,
             want_last: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """``y_t = C_t . h_t + D u_t`` block by block (no gate)."""
    p = _Problem(u, delta, A, B, C, bias, softplus, False)
    ws = ScanWorkspace.get(u.device, p.ct)
    y = p.dt.new_empty(p.dt.shape)
    last = (
        u.new_empty(p.rows + p.A3.shape[1:2], dtype=p.ct)
        if want_last else None)
    tl, cl = p.last_index
    for bs, gs, ds in p.blocks:
        with ws.scope():
            dt, ub, Bb, Cb, A2, decay = p.block(ws, bs, gs, ds)
            h = _states(ws, dt, ub, Bb, A2, decay)
            if last is not None:
                last[bs, gs, ds] = h[tl, cl].transpose(-1, -2)
            # C_t . h_t: (1 x N) @ (N x nd) per step.
            y[:, :, bs, gs, ds] = torch.matmul(Cb.unsqueeze(-2),
                                               h).squeeze(-2)
    y = p.from_time_major(y).reshape(u.shape)
    if D is not None:
        y = y.addcmul_(u.to(p.ct), D.to(p.ct)[:, None])
    if last is not None:
        last = last.view(u.shape[:2] + last.shape[-1:])
    return y.to(out_dtype), last


def _backward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
              D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
              gy: Tensor, glast: Optional[Tensor],
              needs: Tuple[bool, ...]) -> Tuple[Optional[Tensor], ...]:
    """Gradients of the z-free scan (the equations are derived in
    :func:`zeromamba_mm.ops.selective_scan_torch._backward`); ``needs``
    says which of (u, delta, A, B, C, D, delta_bias) are wanted: the
    contractions for unwanted B/C/A gradients are skipped."""
    p = _Problem(u, delta, A, B, C, bias, softplus, True)
    ws = ScanWorkspace.get(u.device, p.ct)
    g = p.time_major(gy)
    glast4 = None if glast is None else glast.view(p.rows + (-1, ))
    ds_terms, ddt_terms = p.dt.new_empty(p.dt.shape), p.dt.new_empty(
        p.dt.shape)
    dB = torch.zeros_like(p.B) if needs[3] else None
    dC = torch.zeros_like(p.C) if needs[4] else None
    dA = torch.zeros_like(p.A3)
    tl, cl = p.last_index
    T = p.T
    for bs, gs, ds in p.blocks:
        with ws.scope():
            dt, ub, Bb, Cb, A2, decay = p.block(ws, bs, gs, ds)
            h = _states(ws, dt, ub, Bb, A2, decay)
            gb = g[:, :, bs, gs, ds]
            # lam: source C_t g_t (+ glast at step L - 1), scanned back.
            lam = torch.mul(
                gb.unsqueeze(-2),
                Cb.unsqueeze(-1),
                out=ws.take('adjoint', decay.shape))
            if glast4 is not None:
                lam[tl, cl] += glast4[bs, gs, ds].transpose(-1, -2)
            _scan_reverse_(decay, lam,
                           _chunk_decay(dt, A2, slice(1, None), True))
            # dC_t = sum_d g_t h_t and dB_t = sum_d lam_t dt_t u_t:
            # (N x nd) @ (nd x 1) per step; s_t = sum_n lam_t B_t.
            if dC is not None:
                dC[:, :, bs, gs] += torch.matmul(h,
                                                 gb.unsqueeze(-1)).squeeze(-1)
            if dB is not None:
                dB[:, :, bs, gs] += torch.matmul(
                    lam, (dt * ub).unsqueeze(-1)).squeeze(-1)
            s = torch.matmul(Bb.unsqueeze(-2), lam).squeeze(-2)
            # lam_t q_t with q_t = a_t h_{t-1} (q_0 = 0), formed in place
            # over the decay, which is not needed after it.
            q = decay
            q[1:].mul_(h[:-1])
            q[0, 1:].mul_(h[T - 1, :-1])
            q[0, 0] = 0
            lam_q = q.mul_(lam)
            ws.release('state', 'adjoint')
            if needs[2]:
                dA[gs, :, ds] += torch.mul(
                    lam_q,
                    dt.unsqueeze(-2),
                    out=ws.take('dA_terms', decay.shape)).sum((0, 1, 2))
            ddt = lam_q.mul_(p.A3[gs, :, ds]).sum(-2)  # sum_n A lam q
            ddt_terms[:, :, bs, gs, ds] = ddt.addcmul_(ub, s)
            ds_terms[:, :, bs, gs, ds] = s
    ct, shape = p.ct, u.shape
    gy = gy.to(ct)
    du = p.from_time_major(ds_terms.mul_(p.dt)).reshape(shape)
    if D is not None:
        du = du.addcmul_(gy, D.to(ct)[:, None])
    ddelta = p.from_time_major(ddt_terms).reshape(shape)
    if p.softplus_grad is not None:
        ddelta = ddelta * p.softplus_grad
    dD = None if D is None else (gy * u).sum((0, -1)).to(D.dtype)
    dbias = None if bias is None else ddelta.sum((0, -1)).to(bias.dtype)
    dB = None if dB is None else p.from_time_major(dB).to(B.dtype)
    dC = None if dC is None else p.from_time_major(dC).to(C.dtype)
    dA = dA.transpose(1, 2).reshape(A.shape).to(A.dtype)
    return (du.to(u.dtype), ddelta.to(delta.dtype), dA, dB, dC, dD, dbias)


class SelectiveScanStatesFn(torch.autograd.Function):
    """Autograd wrapper of the time-major scan (z-free; B and C are
    (batch, G, N, L))."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus,
                return_last_state, out_dtype):
        with torch.autocast(u.device.type, enabled=False):
            y, last = _forward(u, delta, A, B, C, D, delta_bias,
                               delta_softplus, out_dtype, return_last_state)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        return (y, last) if return_last_state else y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, glast=None):
        u, delta, A, B, C, D, bias = ctx.saved_tensors
        with torch.autocast(u.device.type, enabled=False):
            grads = _backward(u, delta, A, B, C, D, bias, ctx.delta_softplus,
                              gy, glast, ctx.needs_input_grad)
        return grads + (None, None, None)
