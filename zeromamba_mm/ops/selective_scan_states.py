"""Pure-PyTorch selective scan for d_state > 1, in a time-major layout.

With N states per channel the recurrence ``h_t = a_t * h_{t-1} + b_t``
runs over a (rows x N) state per step. The d_state-1 scan
(:mod:`.selective_scan_torch`) keeps time innermost, so one step of every
chunk is a strided slab whose contiguous runs are only ``nc`` elements
long; at N = 16 and L = 197 (Vim-S) that is per-element and per-op
overhead, not arithmetic. Here every block is laid out time-major,
``(T, nc, rows, N, channels)`` (step ``t`` of chunk ``c`` is at position
``c * T + t``; channels innermost), so that:

* one step of every chunk is one contiguous slab: the two loops over the
  ``T`` steps of a chunk (chunk-local end states, then the states from
  the true chunk starts) are a few wide vectorised ops per step;
* the scan inputs ``dt u B`` and outputs ``C . h`` are formed one step at
  a time from the small per-step tensors (dt, u, B, C: no N or no channel
  dim; these are what is transposed), and in the forward so are the
  decays ``exp(dt A)``; only the decays and, in the backward, the states
  are state-sized, and no state-sized tensor is copied between layouts;
* the contractions over the state (``y = C . h``, and in the backward
  ``dB``, ``dC`` and ``sum_n lam B``) are batched matrix-vector products;
* each chunk's total decay is ``exp(A * sum_t dt_t)``, a segment sum of
  log-decays (<= 0), never a product of state-sized tensors and never a
  division by a decay, so strong decay cannot overflow; the carry across
  chunks is a recursive doubling over ``nc`` (products of decays <= 1).

Autograd is a custom :class:`torch.autograd.Function` that keeps only its
inputs and recomputes the states in the backward (the adjoint recurrence
is derived in :func:`zeromamba_mm.ops.selective_scan_torch._backward`;
the same equations are evaluated here in the time-major layout).
"""
import math
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from .scan_blocks import ScanWorkspace, chunk_shape, scan_blocks
from .scan_chunked import carry_
from .scan_common import LOG2E, compute_dtype, softplus_
from .scan_function import make_scan_function

# Elements (rows x steps x N) per block on CPU: only the decays (and the
# backward's states) are state-sized, so at 4M (16 MB in float32) Vim-S's
# call at 224 is one block and its ~100-300 ops are amortised (faster than
# 1M or 256K at 224 and 448). Other devices: one block.
STATE_BLOCK_ELEMS = 1 << 22


def _scan_states(decay: Callable[[int], Tensor],
                 x: Tensor,
                 B: Tensor,
                 total: Tensor,
                 slabs: List[Tensor],
                 states: Optional[Tensor] = None,
                 C: Optional[Tensor] = None,
                 y: Optional[Tensor] = None) -> Tensor:
    """States of ``h_t = a_t h_{t-1} + x_t B_t`` from ``h = 0``.

    The scan inputs ``x_t B_t`` are formed one step at a time (never as a
    state-sized tensor) in both loops: chunk-local end states from a zero
    start, then, after the carry across chunks, the states from the true
    chunk starts, each step's ``y_t = C_t . h_t`` taken while it is hot.

    Args:
        decay (callable): ``decay(t)`` is ``a_t``, (nc, nb, ng, N, nd).
        x (Tensor): ``dt u``, (T, nc, nb, ng, nd).
        B (Tensor): (T, nc, nb, ng, N).
        total (Tensor): Each chunk's total decay, (nc, nb, ng, N, nd);
            consumed.
        slabs (list[Tensor]): Two (nc, nb, ng, N, nd) buffers for the
            states when ``states`` is None.
        states (Tensor, optional): (T, nc, nb, ng, N, nd) buffer that
            keeps every ``h_t`` (for the backward).
        C (Tensor, optional): (T, nc * nb * ng, 1, N), with ``y``.
        y (Tensor, optional): (T, nc * nb * ng, 1, nd), receives
            ``C_t . h_t``.

    Returns:
        Tensor: The states of the last step of every chunk.
    """
    T, nc = x.shape[:2]
    a, xs, bs = decay, x.unsqueeze(-2).unbind(0), B.unsqueeze(-1).unbind(0)
    if nc > 1:
        end = torch.mul(xs[0], bs[0], out=slabs[0])
        for t in range(1, T):
            end.mul_(a(t)).addcmul_(xs[t], bs[t])
        start = carry_(total, end)[:-1].clone()  # true end states
    prev = None
    for t in range(T):
        cur = states[t] if states is not None else slabs[t % 2]
        torch.mul(xs[t], bs[t], out=cur)
        if t:
            cur.addcmul_(a(t), prev)
        elif nc > 1:
            cur[1:].addcmul_(a(0)[1:], start)
        if y is not None:
            torch.bmm(C[t], cur.view((-1, ) + cur.shape[-2:]), out=y[t])
        prev = cur
    return prev


def _scan_adjoint(decay: Tensor, g: Tensor, C: Tensor, alpha: Tensor,
                  glast: Optional[Tensor], slabs: List[Tensor],
                  visit: Callable[[int, Tensor], None]) -> None:
    """The adjoint ``lam_t = g_t C_t + a_{t+1} lam_{t+1}`` (plus ``glast``
    at the last step), backwards in time, handing each step's ``lam_t`` to
    ``visit(t, lam_t)`` (from ``t = T - 1`` down to 0) instead of keeping
    it.

    Args:
        decay (Tensor): (T, nc, nb, ng, N, nd).
        g (Tensor): Output gradient, (T, nc, nb, ng, nd).
        C (Tensor): (T, nc, nb, ng, N).
        alpha (Tensor): (nc, nb, ng, N, nd): for chunk ``c < nc - 1`` the
            decay from step 0 of chunk ``c + 1`` back to step 0 of ``c``;
            consumed.
        glast (Tensor, optional): Gradient of the last state,
            (nb, ng, N, nd). The padded steps after L - 1 have decay 1 and
            no source, so adding it at the very last step is exact.
        slabs (list[Tensor]): Two (nc, nb, ng, N, nd) buffers.
        visit (callable): Called as ``visit(t, lam_t)``.
    """
    T, nc = decay.shape[:2]
    a, gs, cs = decay.unbind(0), g.unsqueeze(-2).unbind(0), C.unsqueeze(
        -1).unbind(0)
    if nc > 1:
        first = torch.mul(gs[T - 1], cs[T - 1], out=slabs[0])
        if glast is not None:
            first[-1] += glast
        for t in range(T - 2, -1, -1):
            first.mul_(a[t + 1]).addcmul_(gs[t], cs[t])
        alpha[-1] = 0
        # True values at step 0 of chunks 1.. nc-1, as seen from the
        # last step of the chunk before.
        carried = carry_(alpha, first, reverse=True)[1:].mul(a[0][1:])
    prev = None
    for t in range(T - 1, -1, -1):
        cur = slabs[t % 2]
        torch.mul(gs[t], cs[t], out=cur)
        if t < T - 1:
            cur.addcmul_(a[t + 1], prev)
        else:
            if glast is not None:
                cur[-1] += glast
            if nc > 1:
                cur[:-1] += carried
        visit(t, cur)
        prev = cur


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

    def block(self, ws: ScanWorkspace, bs: slice, gs: slice, ds: slice,
              keep_decay: bool) -> '_Block':
        """The (batch, group, channel) block ``bs, gs, ds``."""
        return _Block(self, ws, bs, gs, ds, keep_decay)

    @property
    def last_index(self) -> Tuple[int, int]:
        """(t, c) of step L - 1 in the time-major layout."""
        return (self.length - 1) % self.T, (self.length - 1) // self.T


class _Block:
    """One block's per-step tensors (contiguous copies: small) and its
    decays.

    ``dt``, ``u``, ``x = dt u``: (T, nc, nb, ng, nd); ``B``, ``C``:
    (T, nc, nb, ng, N); ``A2``: (ng, N, nd); ``decay`` = ``exp(dt A)``
    (role ``'decay'``), (T, nc, nb, ng, N, nd). ``rows`` = nc * nb * ng,
    the batch of the per-step matrix products.
    """

    def __init__(self, p: _Problem, ws: ScanWorkspace, bs: slice, gs: slice,
                 ds: slice, keep_decay: bool):
        self.dt = p.dt[:, :, bs, gs, ds].contiguous()
        self.u = p.u[:, :, bs, gs, ds].contiguous()
        self.B = p.B[:, :, bs, gs].contiguous()
        self.C = p.C[:, :, bs, gs].contiguous()
        self.A2 = p.A2[gs, :, ds]
        self.x = self.dt * self.u
        self.rows = math.prod(self.dt.shape[1:4])
        self.shape = self.dt.shape[:4] + self.A2.shape[-2:]
        # exp(dt A) as exp2(dt * (A log2 e)): see scan_common.softplus_.
        # Without keep_decay (the forward, which reads each decay twice)
        # they are made per step in a cache-resident slab instead.
        self.decay = torch.mul(
            self.dt.unsqueeze(-2), self.A2, out=ws.take(
                'decay', self.shape)).exp2_() if keep_decay else None
        self._slab = None if keep_decay else self.slabs(ws, 'decay', 1)[0]

    def decay_at(self, t: int) -> Tensor:
        """``a_t = exp(dt_t A)``, (nc, nb, ng, N, nd)."""
        if self.decay is not None:
            return self.decay[t]
        return torch.mul(
            self.dt[t].unsqueeze(-2), self.A2, out=self._slab).exp2_()

    def slabs(self, ws: ScanWorkspace, role: str, count: int) -> List[Tensor]:
        """``count`` (nc, nb, ng, N, nd) buffers, roles ``role0``, ..."""
        return [ws.take(f'{role}{i}', self.shape[1:]) for i in range(count)]


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


def _forward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
             out_dtype: torch.dtype,
             want_last: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """``y_t = C_t . h_t + D u_t`` block by block (no gate). Only the
    decays are state-sized; the states live in two slabs."""
    p = _Problem(u, delta, A, B, C, bias, softplus, False)
    ws = ScanWorkspace.get(u.device, p.ct)
    y = p.dt.new_empty(p.dt.shape)
    last = (
        u.new_empty(p.rows +
                    p.A3.shape[1:2], dtype=p.ct) if want_last else None)
    for bs, gs, ds in p.blocks:
        with ws.scope():
            blk = p.block(ws, bs, gs, ds, keep_decay=False)
            T, M, nd = blk.shape[0], blk.rows, blk.shape[-1]
            yb = ws.take('y', (T, M, 1, nd))
            end = _scan_states(blk.decay_at, blk.x, blk.B,
                               _chunk_decay(blk.dt, blk.A2),
                               blk.slabs(ws, 'state_slab', 2), None,
                               blk.C.view(T, M, 1, -1), yb)
            if last is not None:
                last[bs, gs, ds] = end[-1].transpose(-1, -2)
            y[:, :, bs, gs, ds] = yb.view(blk.x.shape)
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
    contractions for unwanted B/C gradients are skipped.

    Per block the states are recomputed and kept (role ``'state'``), then
    the adjoint runs backwards one step at a time and every gradient term
    of a step is formed from that step's slabs: ``dC_t = h_t g_t`` and
    ``dB_t = lam_t x_t`` (sums over the channels of a group),
    ``s_t = B_t . lam_t``, ``lam_t q_t`` with ``q_t = a_t h_{t-1}``, its
    share of ``dA`` (accumulated over steps in one slab) and of ``ddt``.
    """
    p = _Problem(u, delta, A, B, C, bias, softplus, True)
    ws = ScanWorkspace.get(u.device, p.ct)
    g = p.time_major(gy)
    glast4 = None if glast is None else glast.view(p.rows + (-1, ))
    s_all, ddt_all = p.dt.new_empty(p.dt.shape), p.dt.new_empty(p.dt.shape)
    dB = torch.zeros_like(p.B) if needs[3] else None
    dC = torch.zeros_like(p.C) if needs[4] else None
    dA = torch.zeros_like(p.A3)
    for bs, gs, ds in p.blocks:
        with ws.scope():
            blk = p.block(ws, bs, gs, ds, keep_decay=True)
            decay = blk.decay
            T, M, nd = decay.shape[0], blk.rows, decay.shape[-1]
            N = decay.shape[-2]
            h = ws.take('state', decay.shape)
            _scan_states(blk.decay_at, blk.x, blk.B,
                         _chunk_decay(blk.dt, blk.A2),
                         blk.slabs(ws, 'state_slab', 2), h)
            ws.release('state_slab0', 'state_slab1')
            gb = g[:, :, bs, gs, ds].contiguous()
            # Rows (1 x nd) times transposed states: MKL's fast path for
            # these matrix-vector products (a column vector is 4x slower).
            g_mat = gb.view(T, M, 1, nd)
            x_mat = blk.x.view(T, M, 1, nd)
            B_mat = blk.B.view(T, M, 1, N)
            h_mat = h.view(T, M, N, nd)
            dCb = ws.take('dC', (T, M, 1, N)) if dC is not None else None
            dBb = ws.take('dB', (T, M, 1, N)) if dB is not None else None
            sb = ws.take('s', (T, M, 1, nd))
            ddtb = ws.take('ddt', blk.x.shape)
            q = ws.take('q', decay.shape[1:])
            dA_acc = ws.take('dA_acc', decay.shape[1:]).zero_()
            A3 = p.A3[gs, :, ds]

            def visit(t: int, lam: Tensor) -> None:
                lam_mat = lam.view(M, N, nd)
                if dCb is not None:
                    torch.bmm(g_mat[t], h_mat[t].mT, out=dCb[t])
                if dBb is not None:
                    torch.bmm(x_mat[t], lam_mat.mT, out=dBb[t])
                torch.bmm(B_mat[t], lam_mat, out=sb[t])
                # lam_t q_t, q_t = a_t h_{t-1}; q_0 = 0 in chunk 0.
                if t:
                    torch.mul(decay[t], h[t - 1], out=q)
                else:
                    q[0] = 0
                    torch.mul(decay[0][1:], h[T - 1][:-1], out=q[1:])
                lam_q = q.mul_(lam)
                dA_acc.addcmul_(lam_q, blk.dt[t].unsqueeze(-2))
                torch.sum(lam_q.mul_(A3), -2, out=ddtb[t])  # sum_n A lam q

            _scan_adjoint(
                decay, gb, blk.C,
                _chunk_decay(blk.dt, blk.A2, slice(1, None), True),
                None if glast4 is None else glast4[bs, gs,
                                                   ds].transpose(-1, -2),
                blk.slabs(ws, 'adjoint_slab', 2), visit)
            dA[gs, :, ds] += dA_acc.sum((0, 1))
            s = sb.view(blk.x.shape)
            ddt_all[:, :, bs, gs, ds] = ddtb.addcmul_(blk.u, s)
            s_all[:, :, bs, gs, ds] = s
            shape5 = blk.B.shape
            if dCb is not None:
                dC[:, :, bs, gs] += dCb.view(shape5)
            if dBb is not None:
                dB[:, :, bs, gs] += dBb.view(shape5)
    ct, shape = p.ct, u.shape
    gy = gy.to(ct)
    du = p.from_time_major(s_all.mul_(p.dt)).reshape(shape)
    if D is not None:
        du = du.addcmul_(gy, D.to(ct)[:, None])
    ddelta = p.from_time_major(ddt_all).reshape(shape)
    if p.softplus_grad is not None:
        ddelta = ddelta * p.softplus_grad
    dD = None if D is None else (gy * u).sum((0, -1)).to(D.dtype)
    dbias = None if bias is None else ddelta.sum((0, -1)).to(bias.dtype)
    dB = None if dB is None else p.from_time_major(dB).to(B.dtype)
    dC = None if dC is None else p.from_time_major(dC).to(C.dtype)
    dA = dA.transpose(1, 2).reshape(A.shape).to(A.dtype)
    return (du.to(u.dtype), ddelta.to(delta.dtype), dA, dB, dC, dD, dbias)


SelectiveScanStatesFn = make_scan_function(
    'SelectiveScanStatesFn', _forward, _backward,
    'Autograd wrapper of the time-major scan (z-free; B and C are '
    '(batch, G, N, L)).')


def selective_scan_states(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False,
                          return_last_state: bool = False,
                          out_dtype: Optional[torch.dtype] = None):
    """Time-major selective scan in pure PyTorch (no gate ``z``).

    :func:`zeromamba_mm.ops.selective_scan` runs it on CPU for d_state > 1
    (through :func:`.selective_scan_torch`); it is correct for any d_state.
    Same arguments and contract as :func:`.selective_scan_torch` (inputs
    validated by the dispatch; u, delta (batch, D, L); A (D, N); B, C
    (batch, G, N, L); D, delta_bias (D,)); the scan runs in float32
    (float64 for float64 inputs).

    Returns:
        Tensor | tuple: ``y`` (batch, D, L) in ``out_dtype`` (default
        ``u.dtype``), and the last state (batch, D, N) when asked for.
    """
    return SelectiveScanStatesFn.apply(u, delta, A, B, C, D, delta_bias,
                                       delta_softplus, return_last_state,
                                       out_dtype or u.dtype)
