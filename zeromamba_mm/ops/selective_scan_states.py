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
from typing import Optional, Tuple

import torch
from torch import Tensor

from .scan_blocks import ScanWorkspace, chunk_shape, scan_blocks
from .scan_common import LOG2E, compute_dtype, softplus_

# Elements (rows x steps x N) per block on CPU: the four state-sized
# float32 buffers of a block (decay, states, adjoint, q) stay in cache.
STATE_BLOCK_ELEMS = 1 << 19


def _time_major(x: Tensor, T: int, nc: int) -> Tensor:
    """(..., T * nc) -> contiguous (T, nc, ...)."""
    lead = x.dim() - 1
    return x.unflatten(-1, (nc, T)).permute(lead + 1, lead,
                                            *range(lead)).contiguous()


def _from_time_major(x: Tensor) -> Tensor:
    """(T, nc, ...) -> (..., T * nc) view (inverse of :func:`_time_major`)."""
    rest = x.dim() - 2
    return x.permute(*range(2, 2 + rest), 1, 0).flatten(-2)


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


class _Block:
    """One block's small tensors in the time-major layout.

    ``dt``, ``u``: (T, nc, nb, ng, nd); ``B``, ``C``: (T, nc, nb, ng, N);
    ``A2`` = ``A * log2(e)``, (ng, nd, N); ``decay`` = ``exp(dt A)``,
    (T, nc, nb, ng, nd, N).
    """

    def __init__(self, ws: ScanWorkspace, T: int, nc: int, dt: Tensor,
                 u: Tensor, A2: Tensor, B: Tensor, C: Tensor):
        self.T, self.nc = T, nc
        self.dt, self.u = _time_major(dt, T, nc), _time_major(u, T, nc)
        self.B, self.C = _time_major(B, T, nc), _time_major(C, T, nc)
        self.A2 = A2
        self.shape = self.dt.shape + A2.shape[-1:]
        decay = torch.mul(
            self.dt.unsqueeze(-1), A2, out=ws.take('decay', self.shape))
        self.decay = decay.exp2_()

    def chunk_decay(self, steps: slice, shift_next: bool = False) -> Tensor:
        """``exp(A * sum_{t in steps} dt_t)`` per chunk, (nc, ..., N); with
        ``shift_next``, plus step 0 of the next chunk (the last chunk's
        value is then meaningless)."""
        log_sum = self.dt[steps].sum(0)
        if shift_next:
            log_sum[:-1] += self.dt[0, 1:]
        return (log_sum.unsqueeze(-1) * self.A2).exp2_()

    def states(self, ws: ScanWorkspace) -> Tensor:
        """Role ``'state'``: ``h_t`` (T, nc, nb, ng, nd, N)."""
        h = torch.mul((self.dt * self.u).unsqueeze(-1),
                      self.B.unsqueeze(-2),
                      out=ws.take('state', self.shape))
        _scan_(self.decay, h, self.chunk_decay(slice(None)))
        return h


def _prepare(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             bias: Optional[Tensor]):
    """Shapes, padded (batch, G, D/G, L) views and the compute dtype."""
    batch, channels, length = u.shape
    groups, N = B.shape[1], A.shape[1]
    T, nc = chunk_shape(length)
    pad = T * nc - length

    def rows(x):
        x = torch.nn.functional.pad(x, (0, pad)) if pad else x
        return x.view(batch, groups, channels // groups, -1)

    ct = compute_dtype(u, delta, B, C)
    Bp = torch.nn.functional.pad(B, (0, pad)) if pad else B
    Cp = torch.nn.functional.pad(C, (0, pad)) if pad else C
    A3 = A.to(ct).view(groups, channels // groups, N)
    bias2 = None if bias is None else bias.to(ct).view(groups, -1)
    budget = STATE_BLOCK_ELEMS // N if u.device.type == 'cpu' else None
    blocks = scan_blocks(batch, groups, channels // groups, T * nc, budget)
    return (T, nc, ct, rows(u), rows(delta), Bp, Cp, A3, bias2, list(blocks))


def _step_sizes(ws: ScanWorkspace, delta: Tensor, bias: Optional[Tensor],
                softplus: bool, ct: torch.dtype,
                want_grad: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """``dt = softplus(delta + bias)`` of a block and, with ``want_grad``
    and softplus, its derivative ``sigmoid(delta + bias)``."""
    dt = delta.to(ct)
    dt = dt + bias[..., None] if bias is not None else dt.clone()
    grad = torch.sigmoid(dt) if softplus and want_grad else None
    if softplus:
        softplus_(dt, ws.take)
        ws.release('softplus_exp', 'softplus_w', 'softplus_fix')
    return dt, grad


def _forward(u, delta, A, B, C, D, bias, softplus, out_dtype, want_last):
    """``y_t = C_t . h_t + D u_t`` block by block (no gate)."""
    batch, channels, length = u.shape
    T, nc, ct, u4, d4, Bp, Cp, A3, bias2, blocks = _prepare(
        u, delta, A, B, C, bias)
    ws = ScanWorkspace.get(u.device, ct)
    A2 = A3 * LOG2E
    y4 = u.new_empty(u4.shape, dtype=out_dtype)
    last = (
        u.new_empty(u4.shape[:3] + A3.shape[-1:], dtype=ct)
        if want_last else None)
    tl, cl = (length - 1) % T, (length - 1) // T
    for bs, gs, ds in blocks:
        with ws.scope():
            ub = u4[bs, gs, ds].to(ct)
            dt, _ = _step_sizes(ws, d4[bs, gs, ds],
                                None if bias2 is None else bias2[gs, ds],
                                softplus, ct, False)
            blk = _Block(ws, T, nc, dt, ub, A2[gs, ds], Bp[bs, gs].to(ct),
                         Cp[bs, gs].to(ct))
            h = blk.states(ws)
            if last is not None:
                last[bs, gs, ds] = h[tl, cl]
            yb = _from_time_major(
                torch.matmul(h, blk.C.unsqueeze(-1)).squeeze(-1))
            if D is not None:
                yb = yb + ub * D.to(ct).view(A3.shape[:2])[gs, ds, None]
            y4[bs, gs, ds] = yb
    y = y4.view(batch, channels, -1)
    if T * nc != length:
        y = y[..., :length].contiguous()
    if last is not None:
        last = last.view(batch, channels, -1)
    return y, last


def _backward(u, delta, A, B, C, D, bias, softplus, gy, glast, needs):
    """Gradients of the z-free scan (see the equations in
    :func:`zeromamba_mm.ops.selective_scan_torch._backward`); ``needs``
    says which of (u, delta, A, B, C, D, delta_bias) are wanted."""
    batch, channels, length = u.shape
    T, nc, ct, u4, d4, Bp, Cp, A3, bias2, blocks = _prepare(
        u, delta, A, B, C, bias)
    ws = ScanWorkspace.get(u.device, ct)
    A2 = A3 * LOG2E
    pad = T * nc - length
    g4 = torch.nn.functional.pad(gy, (0, pad)) if pad else gy
    g4 = g4.view(u4.shape)
    glast4 = None if glast is None else glast.view(u4.shape[:3] + (-1, ))
    D2 = None if D is None else D.to(ct).view(A3.shape[:2])
    du = u.new_empty(u4.shape, dtype=ct)
    ddelta = u.new_empty(u4.shape, dtype=ct)
    dB = torch.zeros(Bp.shape, dtype=ct, device=u.device)
    dC = torch.zeros(Cp.shape, dtype=ct, device=u.device)
    dA = torch.zeros_like(A3)
    dD = torch.zeros(A3.shape[:2], dtype=ct, device=u.device)
    tl, cl = (length - 1) % T, (length - 1) // T
    for bs, gs, ds in blocks:
        with ws.scope():
            ub = u4[bs, gs, ds].to(ct)
            gb = g4[bs, gs, ds].to(ct)
            dt, sp_grad = _step_sizes(ws, d4[bs, gs, ds],
                                      None if bias2 is None else bias2[gs,
                                                                       ds],
                                      softplus, ct, True)
            blk = _Block(ws, T, nc, dt, ub, A2[gs, ds], Bp[bs, gs].to(ct),
                         Cp[bs, gs].to(ct))
            h = blk.states(ws)
            gT = _time_major(gb, T, nc)
            # lam: source C_t g_t (+ glast at step L-1), scanned backwards.
            lam = torch.mul(
                gT.unsqueeze(-1),
                blk.C.unsqueeze(-2),
                out=ws.take('adjoint', blk.shape))
            if glast4 is not None:
                lam[tl, cl] += glast4[bs, gs, ds]
            _scan_reverse_(blk.decay, lam,
                           blk.chunk_decay(slice(1, None), shift_next=True))
            # dC_t = sum_d g_t h_t, dB_t = sum_d lam_t dt_t u_t: batched
            # (1 x nd) @ (nd x N) products per step.
            if needs[4]:
                dC[bs, gs] += _from_time_major(
                    torch.matmul(gT.unsqueeze(-2), h).squeeze(-2))
            x = blk.dt * blk.u
            if needs[3]:
                dB[bs, gs] += _from_time_major(
                    torch.matmul(x.unsqueeze(-2), lam).squeeze(-2))
            # s_t = sum_n lam_t B_t.
            s = torch.matmul(lam, blk.B.unsqueeze(-1)).squeeze(-1)
            # q_t = a_t h_{t-1} (q_0 = 0), in place over the decay.
            q = blk.decay
            q[1:].mul_(h[:-1])
            q[0, 1:].mul_(h[T - 1, :-1])
            q[0, 0] = 0
            lam_q = q.mul_(lam)
            if needs[2]:
                dA[gs, ds] += torch.mul(
                    lam_q, blk.dt.unsqueeze(-1),
                    out=ws.take('dA_terms', blk.shape)).sum((0, 1, 2))
            ddt = lam_q.mul_(A3[gs, ds]).sum(-1)  # sum_n A lam q
            ddt.addcmul_(blk.u, s)
            dub = s.mul_(blk.dt)
            if D2 is not None:
                dub = _from_time_major(dub) + gb * D2[gs, ds, None]
                if needs[5]:
                    dD[gs, ds] += (gb * ub).sum((0, -1))
            else:
                dub = _from_time_major(dub)
            du[bs, gs, ds] = dub
            ddt = _from_time_major(ddt)
            if sp_grad is not None:
                ddt = ddt * sp_grad
            ddelta[bs, gs, ds] = ddt
    du, ddelta = (x.view(batch, channels, -1) for x in (du, ddelta))
    dbias = None
    if bias is not None:
        dbias = ddelta[..., :length].sum((0, -1)).to(bias.dtype)
    if pad:
        du, ddelta = (x[..., :length].contiguous() for x in (du, ddelta))
        dB, dC = dB[..., :length], dC[..., :length]
    dD = None if D is None else dD.view(D.shape).to(D.dtype)
    return (du.to(u.dtype), ddelta.to(delta.dtype),
            dA.view(A.shape).to(A.dtype), dB.to(B.dtype), dC.to(C.dtype), dD,
            dbias)


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
