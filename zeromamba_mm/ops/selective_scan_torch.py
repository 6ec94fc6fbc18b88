"""Fast pure-PyTorch selective scan: the CPU path, and a fallback anywhere.

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
whose temporaries live in reused buffers: they stay in the last-level cache
and no full-size temporary is allocated (a fresh multi-megabyte tensor
costs page faults that cost more than the arithmetic on it).

Autograd is a custom :class:`torch.autograd.Function` whose forward keeps
only its inputs; the backward recomputes the states block by block and
runs the adjoint recurrence ``lam_t = C_t g_t + a_{t+1} lam_{t+1}`` with
the same chunked scheme, so training memory is that of the inputs plus one
block of temporaries.
"""
import math
import threading
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

from .selective_scan_ref import compute_dtype

# Elements (rows x steps) per block on CPU: the dozen float32 buffers of a
# block (2 MB each) stay in a 32 MB last-level cache, and each step of the
# loops over T is wide enough to amortise its dispatch. Other devices run
# the whole problem as one block.
CPU_BLOCK_ELEMS = 1 << 19
# Preferred chunk length (see chunk_shape).
CHUNK_TARGET = 16
LOG2E = math.log2(math.e)


def chunk_shape(length: int, target: Optional[int] = None) -> Tuple[int, int]:
    """Chunk length ``T`` and number of chunks ``nc`` for ``length`` steps.

    Short chunks keep the Python loops over ``T`` short and each of their
    steps a wide slab; the carry across the ``nc`` chunks is a log-depth
    scan, so a large ``nc`` is cheap. Prefers a divisor of ``length`` in
    ``[target / 2, 2 * target]`` (``H * W`` sequences usually have one:
    no padding), else pads to a multiple of ``target``.

    Args:
        length (int): Sequence length L.
        target (int, optional): Preferred chunk length; defaults to
            :data:`CHUNK_TARGET`.

    Returns:
        tuple[int, int]: ``(T, nc)`` with ``length <= T * nc < length + T``.
    """
    target = target or CHUNK_TARGET
    if length <= 2 * target:
        return length, 1
    divisors = [
        t for t in range(target // 2, 2 * target + 1) if length % t == 0
    ]
    if divisors:
        t = min(divisors, key=lambda d: (abs(d - target), -d))
        return t, length // t
    return target, math.ceil(length / target)


def _chunked(x: Tensor, T: int, nc: int) -> Tensor:
    """View ``(..., T * nc)`` as ``(..., T, nc)``: step t of chunk c is at
    position ``c * T + t``."""
    return x.unflatten(-1, (nc, T)).transpose(-1, -2)


def _even(n: int, parts: int) -> Iterator[slice]:
    """``parts`` nearly equal slices of ``range(n)``."""
    parts = max(1, min(n, parts))
    size = math.ceil(n / parts)
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _blocks(batch: int, groups: int, per_group: int, length: int,
            budget: Optional[int]) -> Iterator[Tuple[slice, slice, slice]]:
    """Split (batch, group, channel-in-group) rows into blocks of at most
    about ``budget`` elements; a block holds either whole groups or part of
    one group, so its B/C are a plain slice."""
    everything = (slice(0, batch), slice(0, groups), slice(0, per_group))
    if budget is None or batch * groups * per_group * length <= budget:
        yield everything
        return
    item = groups * per_group * length
    group = per_group * length
    if item <= budget:
        for bs in _even(batch, math.ceil(batch * item / budget)):
            yield bs, everything[1], everything[2]
    elif group <= budget:
        for b in range(batch):
            for gs in _even(groups, math.ceil(item / budget)):
                yield slice(b, b + 1), gs, everything[2]
    else:
        for b in range(batch):
            for g in range(groups):
                for ds in _even(per_group, math.ceil(group / budget)):
                    yield slice(b, b + 1), slice(g, g + 1), ds


def _scan_small_(a: Tensor, b: Tensor) -> Tensor:
    """Inclusive scan ``h_c = a_c h_{c-1} + b_c`` along the last dim by
    recursive doubling (log2(n) steps of whole-tensor ops; only products
    of decays, so as stable as the sequential form). ``a`` is consumed.
    """
    n, k = a.shape[-1], 1
    while k < n:
        b[..., k:] = torch.addcmul(b[..., k:], a[..., k:], b[..., :-k])
        if 2 * k < n:
            a[..., k:] = a[..., k:] * a[..., :-k]
        k *= 2
    return b


def _scan_forward_(a: Tensor, b: Tensor) -> None:
    """In place ``b <- h`` for ``h_t = a_t h_{t-1} + b_t``, ``h_{-1} = 0``.

    ``a`` and ``b`` are ``(..., T, nc)`` (see :func:`_chunked`).
    """
    T, nc = a.shape[-2], a.shape[-1]
    av, bv = a.unbind(-2), b.unbind(-2)
    if nc > 1:
        # Chunk-local end states, starting every chunk from zero.
        end = bv[0].clone()
        for t in range(1, T):
            torch.addcmul(bv[t], av[t], end, out=end)
        # True end states: scan over chunks with each chunk's total decay.
        _scan_small_(torch.prod(a, dim=-2), end)
        bv[0][..., 1:].addcmul_(av[0][..., 1:], end[..., :-1])
    for t in range(1, T):
        bv[t].addcmul_(av[t], bv[t - 1])


def _scan_backward_(a: Tensor, lam: Tensor) -> None:
    """In place ``lam <- l`` for ``l_t = lam_t + a_{t+1} l_{t+1}``.

    The adjoint of :func:`_scan_forward_` (same layout, reversed).
    """
    T, nc = a.shape[-2], a.shape[-1]
    av, lv = a.unbind(-2), lam.unbind(-2)
    if nc > 1:
        # Chunk-local value at t = 0 with nothing coming from the right.
        first = lv[T - 1].clone()
        for t in range(T - 2, -1, -1):
            torch.addcmul(lv[t], av[t + 1], first, out=first)
        # True first values: l_first[c] = local[c] + alpha_c l_first[c+1]
        # with alpha_c = (decay of steps 1..T-1 of c) * a_first[c+1].
        alpha = torch.prod(a[..., 1:, :], dim=-2)
        alpha[..., :-1].mul_(av[0][..., 1:])
        alpha[..., -1] = 0
        first = _scan_small_(alpha.flip(-1), first.flip(-1)).flip(-1)
        # What chunk c's last step receives from the right.
        lv[T - 1][..., :-1].addcmul_(av[0][..., 1:], first[..., 1:])
    for t in range(T - 2, -1, -1):
        lv[t].addcmul_(av[t + 1], lv[t + 1])


class _Workspace:
    """Scratch buffers reused across blocks and calls.

    On CPU a fresh multi-megabyte tensor costs page faults that take longer
    than the arithmetic done on it, so every per-block temporary is a view
    into a buffer kept per thread, device and dtype (a few MB: blocks are
    small there). On other devices the caching allocator already does this
    and blocks are whole problems, so nothing is kept.
    """

    _local = threading.local()

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.keep = device.type == 'cpu'
        self.buffers = {}

    @classmethod
    def get(cls, device: torch.device, dtype: torch.dtype) -> '_Workspace':
        cache = getattr(cls._local, 'cache', None)
        if cache is None:
            cache = cls._local.cache = {}
        key = (device, dtype)
        if key not in cache:
            cache[key] = cls(device, dtype)
        ws = cache[key]
        return ws if ws.keep else cls(device, dtype)

    def take(self, name: str, shape: Tuple[int, ...]) -> Tensor:
        """An uninitialised tensor of ``shape`` owned by slot ``name``."""
        numel = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=self.dtype, device=self.device)
            if self.keep:
                self.buffers[name] = buf
        return buf[:numel].view(shape)


def _softplus_(x: Tensor, ws: '_Workspace') -> Tensor:
    """In-place ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``.

    ``torch``'s softplus and ``log1p`` take a slow scalar path on CPU for
    these arguments (about 10x the rest of the scan), so ``log1p(e)`` is
    ``log(w) - ((w - 1) - e) / w`` with ``w = 1 + e`` (the rounding of ``w``
    corrected to first order: accurate to an ulp, exactly ``e`` when
    ``w == 1``), and ``exp`` is ``exp2(x * log2(e))``, 3x faster here; its
    relative error grows like ``|x| * eps`` (2e-6 at |x| = 30, where the
    term itself is below 1e-13 of x), the same order as the rounding of
    ``delta * A`` that the decay ``exp(delta * A)`` inherits anyway. Agrees
    with ``F.softplus`` (threshold 20) to about 1e-7 relative.
    """
    e = torch.abs(x, out=ws.take('sp_e', x.shape)).mul_(-LOG2E).exp2_()
    w = torch.add(e, 1, out=ws.take('sp_w', x.shape))
    fix = torch.sub(w, 1, out=ws.take('sp_f', x.shape)).sub_(e).div_(w)
    return x.clamp_min_(0).add_(w.log_()).sub_(fix)


def _to_chunks(x: Tensor, T: int, nc: int, out: Tensor) -> Tensor:
    """Copy ``x`` (..., T * nc) into ``out`` in the (..., T, nc) layout."""
    return out.view(x.shape[:-1] + (T, nc)).copy_(_chunked(x, T, nc))


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
        return _blocks(self.batch, self.groups, self.per_group, self.padded,
                       self.budget)

    @property
    def last_index(self) -> Tuple[int, int]:
        """(t, c) of step L - 1 in the chunk layout."""
        return (self.length - 1) % self.T, (self.length - 1) // self.T


def _block_delta(ws: _Workspace,
                 delta: Tensor,
                 bias: Optional[Tensor],
                 softplus: bool,
                 want_sigmoid: bool = False) -> Tuple[Tensor, Tensor]:
    """``dt = softplus(delta + bias)`` of a block (and ``softplus'``)."""
    dt = ws.take('dt', delta.shape)
    if bias is not None:
        torch.add(delta, bias[..., None], out=dt)
    else:
        dt.copy_(delta)
    sig = None
    if softplus:
        if want_sigmoid:
            sig = torch.sigmoid(dt, out=ws.take('sig', dt.shape))
        _softplus_(dt, ws)
    return dt, sig


def _block_states(p: '_Problem', ws: _Workspace, dt: Tensor, u: Tensor,
                  A: Tensor, B: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Decay ``a = exp(dt A)`` of a block in the input layout and, in the
    chunk layout, ``a`` and the states ``h`` (all (nb, ng, nd, N, ...)).
    ``A`` here is ``A * log2(e)``."""
    T, nc = p.T, p.nc
    shape = dt.shape[:3] + (p.d_state, dt.shape[-1])
    # exp(dt A) as exp2(dt * (A log2 e)): see _softplus_.
    a = torch.mul(dt.unsqueeze(3), A[..., None], out=ws.take('a', shape))
    a.exp2_()
    w = torch.mul(dt, u, out=ws.take('w', dt.shape))
    b = torch.mul(w.unsqueeze(3), B.unsqueeze(2), out=ws.take('b', shape))
    a_c = _to_chunks(a, T, nc, ws.take('a_c', shape))
    h_c = _to_chunks(b, T, nc, ws.take('h_c', shape))
    _scan_forward_(a_c, h_c)
    return a, a_c, h_c


def _forward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             D: Optional[Tensor], bias: Optional[Tensor], softplus: bool,
             out_dtype: torch.dtype,
             want_last: bool) -> Tuple[Tensor, Optional[Tensor]]:
    p = _Problem(u, A, B)
    ct = compute_dtype(u, delta, B, C)
    ws = _Workspace.get(u.device, ct)
    T, nc, N = p.T, p.nc, p.d_state
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
        ub = u4[bs, gs, ds]
        dt, _ = _block_delta(ws, d4[bs, gs, ds],
                             None if bias2 is None else bias2[gs,
                                                              ds], softplus)
        a, _, h_c = _block_states(p, ws, dt, ub, A2[gs, ds], B[bs, gs])
        if last is not None:
            last[bs, gs, ds] = h_c[..., tl, cl]
        h = a  # a is spent: reuse it for the states in the input layout
        _chunked(h, T, nc).copy_(h_c)
        yb = _sum_state(h.mul_(C[bs, gs].unsqueeze(2)))
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
              gy: Tensor, glast: Optional[Tensor]) -> Tuple[Tensor, ...]:
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
    for bs, gs, ds in p.blocks():
        ub = u4[bs, gs, ds]
        gb = ws.take('g', ub.shape).copy_(g4[bs, gs, ds])  # upcast
        Ab, Bb, Cb = A3[gs, ds], Bp[bs, gs].unsqueeze(2), Cp[bs,
                                                             gs].unsqueeze(2)
        dt, sig = _block_delta(ws, d4[bs, gs, ds],
                               None if bias2 is None else bias2[gs, ds],
                               softplus, True)
        a, a_c, h_c = _block_states(p, ws, dt, ub, A2[gs, ds], Bb.squeeze(2))
        # Adjoint of the state: lam_t = C_t g_t + a_{t+1} lam_{t+1}.
        lam = torch.mul(gb.unsqueeze(3), Cb, out=ws.take('b', a.shape))
        if glast4 is not None:
            lam[..., p.length - 1] += glast4[bs, gs, ds]
        lam_c = _to_chunks(lam, T, nc, ws.take('lam_c', a.shape))
        _scan_backward_(a_c, lam_c)
        _chunked(lam, T, nc).copy_(lam_c)
        h = a_c.view(a.shape)  # a_c is spent: reuse it for the states
        _chunked(h, T, nc).copy_(h_c)
        # q_t = a_t h_{t-1}, exactly (no h_t - b_t cancellation); then
        # q <- lam * q.
        a[..., 1:].mul_(h[..., :-1])
        a[..., 0] = 0
        q = a.mul_(lam)
        # dA[d, n] = sum_t dt_t lam_t q_t
        qdt = torch.mul(q, dt.unsqueeze(3), out=ws.take('qdt', q.shape))
        dA[gs, ds] += qdt.sum((0, -1))
        # dC = sum over the group's channels of g_t h_t.
        dC[bs, gs] += h.mul_(gb.unsqueeze(3)).sum(2)
        # dB = sum over the group's channels of lam_t dt_t u_t.
        w = torch.mul(dt, ub, out=ws.take('w', dt.shape))
        if N == 1:
            dB[bs, gs] += w.mul_(lam.squeeze(3)).sum(2).unsqueeze(2)
        else:
            dB[bs, gs] += (lam * w.unsqueeze(3)).sum(2)
        s = _sum_state(lam.mul_(Bb))  # sum_n lam_n B_n
        # du = dt * sum_n lam B + D g
        dub = torch.mul(dt, s, out=w)
        if D2 is not None:
            dub.addcmul_(gb, D2[gs, ds, None])
            gu = torch.mul(gb, ub, out=ws.take('gu', gb.shape))
            dD[gs, ds] += gu.sum((0, -1))
        du4[bs, gs, ds] = dub
        # ddelta = (sum_n A lam q + u * sum_n lam B) * softplus'
        ddb = _sum_state(q.mul_(Ab[..., None]))
        ddb.addcmul_(ub, s)
        if sig is not None:
            ddb.mul_(sig)
        if bias2 is not None:
            dbias[gs, ds] += ddb.sum((0, -1))
        dd4[bs, gs, ds] = ddb
    if p.padded != p.length:
        du, ddelta = (x[..., :p.length].contiguous() for x in (du, ddelta))
        dB, dC = dB[..., :p.length], dC[..., :p.length]
    dB, dC = dB.to(B.dtype), dC.to(C.dtype)
    dA = dA.view(A.shape).to(A.dtype)
    dD = None if D is None else dD.view(D.shape).to(D.dtype)
    dbias = None if bias is None else dbias.view(bias.shape).to(bias.dtype)
    return du, ddelta, dA, dB, dC, dD, dbias


class SelectiveScanTorchFn(torch.autograd.Function):
    """Autograd wrapper of the chunked scan (z-free; see
    :func:`selective_scan_torch`). B and C are (batch, G, N, L)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus,
                return_last_state, out_dtype):
        with torch.autocast(u.device.type, enabled=False):
            y, last = _forward(u, delta, A, B, C, D, delta_bias,
                               delta_softplus, out_dtype, return_last_state)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        if return_last_state:
            return y, last
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, glast=None):
        u, delta, A, B, C, D, bias = ctx.saved_tensors
        with torch.autocast(u.device.type, enabled=False):
            grads = _backward(u, delta, A, B, C, D, bias, ctx.delta_softplus,
                              gy, glast)
        return grads + (None, None, None)


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
    return SelectiveScanTorchFn.apply(u, delta, A, B, C, D, delta_bias,
                                      delta_softplus, return_last_state,
                                      out_dtype or u.dtype)
