"""V2M's 2-D selective scan against plain re-derivations.

The reference is an explicit double loop over (i, j) per corner, written
from the recurrences of :mod:`zeromamba_mm.ops.selective_scan_2d`'s
docstring, without any of the op's reshaping.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from zeromamba_mm.ops import selective_scan_2d
from zeromamba_mm.ops.selective_scan_2d import (CORNER_FLIPS, _line_pass,
                                                _stack_rows, parse_directions)


def make_params(groups, e, n, rank=2, conv=0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g, dtype=dtype) *
                scale).requires_grad_()

    p = dict(
        x_proj1=rnd(groups, rank + n, e),
        dt_proj1=rnd(groups, e, rank),
        dt_bias1=rnd(groups, e, scale=0.3),
        A1=(-torch.rand(groups, e, n, generator=g, dtype=dtype) -
            0.2).requires_grad_(),
        D1=rnd(groups, e),
        x_proj2=rnd(groups, rank + n, e),
        dt_proj2=rnd(groups, e, rank),
        dt_bias2=rnd(groups, e, scale=0.3),
        A2=(-torch.rand(groups, e, n, generator=g, dtype=dtype) -
            0.2).requires_grad_(),
        D2=rnd(groups, e))
    if conv:
        p.update(
            conv1_weight=rnd(groups, e, conv),
            conv1_bias=rnd(groups, e),
            conv2_weight=rnd(groups, e, conv),
            conv2_bias=rnd(groups, e))
    return p


def naive_conv(seq, w, b):
    """Causal depthwise conv + SiLU of a list of (B, E) tensors."""
    if w is None:
        return seq
    k = w.shape[-1]
    out = []
    for t in range(len(seq)):
        acc = b.expand_as(seq[t]).clone()
        for m in range(k):
            src = t - (k - 1) + m
            if src >= 0:
                acc = acc + w[:, m] * seq[src]
        out.append(F.silu(acc))
    return out


def naive_pass(seq, zseq, x_proj, dt_proj, dt_bias, A, D, cw, cb, select):
    """One 1-D pass over a list of (B, E) tokens."""
    rank = dt_proj.shape[-1]
    seq = naive_conv(seq, cw, cb)
    h = torch.zeros(seq[0].shape + (A.shape[-1], ), dtype=seq[0].dtype)
    out = []
    for t, u in enumerate(seq):
        dbl = u @ x_proj.T  # (B, R + N)
        dt, s = dbl[:, :rank], dbl[:, rank:]
        delta = F.softplus(dt @ dt_proj.T + dt_bias)  # (B, E)
        if select == 'B':
            h = torch.exp(delta[..., None] * A) * h + \
                delta[..., None] * s[:, None, :] * u[..., None]
            y = h.sum(-1) + D * u
        else:
            h = torch.exp(delta[..., None] * A) * h + \
                delta[..., None] * u[..., None]
            y = (h * s[:, None, :]).sum(-1) + D * u
        if zseq is not None:
            y = y * F.silu(zseq[t])
        out.append(y)
    return out


def naive_direction(x, z, p, g, corner, order):
    """Double loop over (i, j) for one direction; aligned output."""
    flip_h, flip_w = CORNER_FLIPS[corner]
    _, _, height, width = x.shape

    def src(i, j):
        return (height - 1 - i if flip_h else i,
                width - 1 - j if flip_w else j)

    def at(t, i, j):
        a, b = src(i, j)
        return t[:, :, a, b]

    q = {k: v[g] for k, v in p.items()}
    cw1, cb1 = q.get('conv1_weight'), q.get('conv1_bias')
    cw2, cb2 = q.get('conv2_weight'), q.get('conv2_bias')
    outer, inner = (height, width) if order == 'row' else (width, height)

    def coord(a, b):  # (outer index, inner index) -> (i, j) in corner frame
        return (a, b) if order == 'row' else (b, a)

    y1 = {}
    for a in range(outer):
        seq = [at(x, *coord(a, b)) for b in range(inner)]
        zs = None if z is None else [at(z, *coord(a, b)) for b in range(inner)]
        ys = naive_pass(seq, zs, q['x_proj1'], q['dt_proj1'], q['dt_bias1'],
                        q['A1'], q['D1'], cw1, cb1, 'B')
        for b in range(inner):
            y1[coord(a, b)] = ys[b]
    out = torch.zeros_like(x)
    for b in range(inner):
        seq = [y1[coord(a, b)] for a in range(outer)]
        zs = None if z is None else [at(z, *coord(a, b)) for a in range(outer)]
        ys = naive_pass(seq, zs, q['x_proj2'], q['dt_proj2'], q['dt_bias2'],
                        q['A2'], q['D2'], cw2, cb2, 'C')
        for a in range(outer):
            i, j = src(*coord(a, b))
            out[:, :, i, j] = ys[a]
    return out


def naive_2d(x, z, p, corners, axis_order):
    dirs = parse_directions(corners, axis_order)
    return sum(
        naive_direction(x, z, p, g, c, o) for g, (c, o) in enumerate(dirs))


@pytest.mark.parametrize('n,axis_order,conv,gate', [
    (1, 'row', 0, False),
    (4, 'row', 0, True),
    (4, 'both', 3, True),
    (1, 'col', 2, False),
])
def test_matches_double_loop_forward_and_grad(n, axis_order, conv, gate):
    torch.manual_seed(0)
    b, e, h, w = 2, 3, 4, 5  # H != W
    corners = ('tl', 'tr', 'bl', 'br')
    groups = len(parse_directions(corners, axis_order))
    p = make_params(groups, e, n, conv=conv)
    x = torch.randn(b, e, h, w, dtype=torch.float64, requires_grad=True)
    z = torch.randn(
        b, e, h, w, dtype=torch.float64, requires_grad=True) if gate else None
    got = selective_scan_2d(
        x, z=z, corners=corners, axis_order=axis_order, backend='torch', **p)
    want = naive_2d(x, z, p, corners, axis_order)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    leaves = [x] + ([z] if gate else []) + list(p.values())
    cot = torch.randn_like(want)
    g_got = torch.autograd.grad(got, leaves, cot)
    g_want = torch.autograd.grad(want, leaves, cot)
    for a, c in zip(g_got, g_want):
        torch.testing.assert_close(a, c, rtol=1e-8, atol=1e-9)


def test_stack_rows_lays_out_each_corner_row_by_row():
    # (B, E, H, W) = (2, 3, 2, 4), x[b, e, h, w] = 24 b + 8 e + 4 h + w.
    x = torch.arange(48.).view(2, 3, 2, 4)
    rows = _stack_rows(x, ('tl', 'br'), transpose=False)
    assert rows.shape == (2, 3, 4, 4)  # (G, E, B*H, W)
    assert rows[0, 2, 3].tolist() == [44., 45., 46., 47.]  # b 1, h 1
    assert rows[1, 0, 0].tolist() == [7., 6., 5., 4.]  # BR: h 1, reversed
    assert rows[1, 1, 2].tolist() == [39., 38., 37., 36.]  # b 1, h 1
    # Column-first: the corner's view transposed, (G, E, B*W, H).
    cols = _stack_rows(x, ('tr', ), transpose=True)
    assert cols.shape == (1, 3, 8, 2)
    assert cols[0, 0, 0].tolist() == [3., 7.]  # TR: w 3 first
    assert cols[0, 1, 5].tolist() == [34., 38.]  # b 1, w 2


def test_line_pass_scans_the_directions_side_by_side():
    # u is (G, E, B', L); each (direction, sequence) is scanned with its
    # direction's parameters, conv and gate, as one 1-D pass.
    torch.manual_seed(4)
    groups, e, batch, length = 2, 3, 2, 5
    p = make_params(groups, e, 2, conv=2)
    u = torch.randn(groups, e, batch, length, dtype=torch.float64)
    z = torch.randn(groups, e, batch, length, dtype=torch.float64)
    for select, i in (('B', '1'), ('C', '2')):
        q = [p[k + i] for k in ('x_proj', 'dt_proj', 'dt_bias', 'A', 'D')]
        conv = p['conv' + i + '_weight'], p['conv' + i + '_bias']
        y = _line_pass(u, z, *q, *conv, select, 'torch')
        assert y.shape == (batch, groups * e, length) and y.is_contiguous()
        y = y.view(batch, groups, e, length)
        for g in range(groups):
            want = naive_pass([u[g, :, :, t].T for t in range(length)],
                              [z[g, :, :, t].T for t in range(length)],
                              *(v[g] for v in q), conv[0][g], conv[1][g],
                              select)
            torch.testing.assert_close(
                y[:, g], torch.stack(want, -1), rtol=1e-10, atol=1e-12)


def test_shared_params_and_float32():
    torch.manual_seed(1)
    p = make_params(1, 4, 2, dtype=torch.float32)
    x = torch.randn(1, 4, 3, 6)
    got = selective_scan_2d(x, backend='torch', **p)
    full = {k: v.expand(4, *v.shape[1:]) for k, v in p.items()}
    want = naive_2d(x, None, full, ('tl', 'tr', 'bl', 'br'), 'row')
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_lti_identity_row_first_equals_col_first_equals_2d_recurrence():
    """With constant steps, N = 1, D = 0 and B = C = 1, both axis orders
    give Y = c X + a Y[i, j-1] + g Y[i-1, j] - a g Y[i-1, j-1]."""
    h, w = 4, 6
    dtype = torch.float64
    sig = torch.randn(1, 1, h, w, dtype=dtype)
    # Channel 0 is a constant one that the projections read, so that the
    # selected B (pass 1) and C (pass 2) are exactly 1: its state forgets
    # at once (A = -1e9) and its step is softplus(log(e - 1)) = 1, so its
    # pass-1 output stays 1. Channel 1 carries the signal.
    x = torch.cat([torch.ones(1, 1, h, w, dtype=dtype), sig], dim=1)
    b1, b2 = 0.7, -0.4
    a1, a2 = -0.5, -1.3
    unit = torch.log(torch.expm1(torch.tensor(1.0, dtype=dtype)))

    def t(*v):
        return torch.tensor(v, dtype=dtype)

    p = dict(
        x_proj1=t([0., 0.], [1., 0.])[None],  # rows: dt (rank 1), B
        dt_proj1=torch.zeros(1, 2, 1, dtype=dtype),
        dt_bias1=t(unit, b1)[None],
        A1=t([-1e9], [a1])[None],
        D1=torch.zeros(1, 2, dtype=dtype),
        x_proj2=t([0., 0.], [1., 0.])[None],  # rows: dt, C
        dt_proj2=torch.zeros(1, 2, 1, dtype=dtype),
        dt_bias2=t(unit, b2)[None],
        A2=t([-1e9], [a2])[None],
        D2=torch.zeros(1, 2, dtype=dtype))
    sp1, sp2 = F.softplus(t(b1))[0], F.softplus(t(b2))[0]
    a, gam, c = torch.exp(sp1 * a1), torch.exp(sp2 * a2), sp1 * sp2
    rec = torch.zeros_like(sig)
    for i in range(h):
        for j in range(w):
            v = c * sig[..., i, j]
            if j > 0:
                v = v + a * rec[..., i, j - 1]
            if i > 0:
                v = v + gam * rec[..., i - 1, j]
            if i > 0 and j > 0:
                v = v - a * gam * rec[..., i - 1, j - 1]
            rec[..., i, j] = v
    y = selective_scan_2d(
        x, corners=('tl', ), axis_order='row', backend='torch', **p)
    torch.testing.assert_close(y[:, 1:], rec, rtol=1e-10, atol=1e-12)
    # Column first: the first pass runs down the columns, so it takes the
    # vertical dynamics (and the second pass the horizontal ones).
    swapped = dict(p)
    for k in ('dt_bias', 'A'):
        swapped[k + '1'], swapped[k + '2'] = p[k + '2'], p[k + '1']
    y = selective_scan_2d(
        x, corners=('tl', ), axis_order='col', backend='torch', **swapped)
    torch.testing.assert_close(y[:, 1:], rec, rtol=1e-10, atol=1e-12)


def test_corner_flip_equivariance():
    # With shared weights, corner BR on x is TL on flip_HW(x), flipped back;
    # TR and BL follow from flips of one axis.
    torch.manual_seed(2)
    p = make_params(1, 3, 2, conv=2)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64)

    def corner(xx, zz, name):
        return selective_scan_2d(
            xx, z=zz, corners=(name, ), backend='torch', **p)

    for name, dims in (('br', (-2, -1)), ('tr', (-1, )), ('bl', (-2, ))):
        want = corner(x.flip(dims), z.flip(dims), 'tl').flip(dims)
        torch.testing.assert_close(corner(x, z, name), want)


@pytest.mark.parametrize('order', ['row', 'col'])
def test_causality_top_left(order):
    # A change at (i0, j0) of the TL corner's input moves only outputs at
    # i >= i0 and j >= j0 (conv, gate and both passes included).
    torch.manual_seed(3)
    p = make_params(1, 3, 2, conv=3)
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    y = selective_scan_2d(
        x, corners=('tl', ), axis_order=order, backend='torch', **p)
    i0, j0 = 2, 3
    for i in range(5):
        for j in range(6):
            g, = torch.autograd.grad(y[0, :, i, j].sum(), x, retain_graph=True)
            reach = g[0].abs().sum(0)
            if i < i0 or j < j0:
                assert reach[i0, j0] == 0
            # The output reads its whole top-left quadrant.
            assert (reach[:i + 1, :j + 1] != 0).any()
            assert reach[i + 1:, :].abs().sum() == 0
            assert reach[:, j + 1:].abs().sum() == 0


def test_legacy_mapping_reproduces_released_recombination():
    torch.manual_seed(4)
    p = make_params(1, 2, 1)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)

    def one(corner, order):
        return selective_scan_2d(
            x, corners=(corner, ), axis_order=order, backend='torch', **p)

    want = ((one('tl', 'row') + one('tl', 'col')).transpose(-1, -2) +
            torch.rot90(one('tr', 'row'), -1,
                        (-2, -1)) + torch.rot90(one('bl', 'col'), 1,
                                                (-2, -1))) / 2
    got = selective_scan_2d(
        x, legacy_v2m_mapping=True, out_scale=0.5, backend='torch', **p)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match='square'):
        selective_scan_2d(
            torch.zeros(1, 2, 3, 4, dtype=torch.float64),
            legacy_v2m_mapping=True,
            backend='torch',
            **p)


def test_inter_norm_between_passes():
    torch.manual_seed(5)
    p = make_params(4, 3, 1)
    x = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    seen = []

    def norm(y):
        seen.append(tuple(y.shape))
        return y * 0

    # Pass 2 of a zero input with zero bias-free paths gives 0.
    y = selective_scan_2d(x, inter_norm=norm, backend='torch', **p)
    assert seen == [(1, 4, 3, 3, 4)]
    torch.testing.assert_close(y, torch.zeros_like(y))


def test_bad_arguments_name_the_choices():
    p = make_params(4, 3, 1)
    x = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="'row'"):
        selective_scan_2d(x, axis_order='diag', **p)
    with pytest.raises(ValueError, match='choose from'):
        selective_scan_2d(x, corners=('tl', 'center'), **p)
    with pytest.raises(ValueError, match='leading dim'):
        selective_scan_2d(x, corners=('tl', 'tr'), **make_params(3, 3, 1))
    with pytest.raises(ValueError, match='E = 3'):
        selective_scan_2d(x, **make_params(4, 5, 1))
    with pytest.raises(ValueError, match='backend'):
        selective_scan_2d(x, backend='cuda', **p)


_TRITON_SNIPPET = '''
import torch
from test_ops_selective_scan_2d import make_params
from zeromamba_mm.ops import selective_scan_2d
from zeromamba_mm.ops.selective_scan_triton import triton_interpreted
assert triton_interpreted()
p = make_params(4, 3, 2, conv=2)
x = torch.randn(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
z = torch.randn(1, 3, 3, 4, dtype=torch.float64)
ys = [selective_scan_2d(x, z=z, backend=b, **p) for b in ('ref', 'triton')]
torch.testing.assert_close(ys[1], ys[0], rtol=1e-9, atol=1e-10)
gs = [torch.autograd.grad(y.sum(), [x, p['x_proj2']]) for y in ys]
for a, b in zip(*gs):
    torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-9)
print('TRITON-2D-OK')
'''


def test_triton_backend_in_interpreter():
    """The Triton kernels under TRITON_INTERPRET=1, in a fresh interpreter
    (triton reads the variable at import), against the reference."""
    pytest.importorskip('triton')
    env = dict(
        os.environ,
        TRITON_INTERPRET='1',
        PYTHONPATH=os.path.dirname(__file__) + os.pathsep +
        os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', _TRITON_SNIPPET],
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'TRITON-2D-OK' in proc.stdout
