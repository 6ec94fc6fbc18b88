"""The time-major scan for d_state > 1 against the sequential reference.

:mod:`zeromamba_mm.ops.selective_scan_states` is compared here with
``selective_scan_ref`` (float64, on the same inputs) in values and in
every gradient, directly (any d_state, d_state 1 included) and through
the public ``selective_scan`` (which runs it on CPU for d_state > 1).
"""
import pytest
import torch

import zeromamba_mm.ops.selective_scan_states as states_mod
from zeromamba_mm.ops import selective_scan, selective_scan_ref
from zeromamba_mm.ops.scan_blocks import chunk_shape
from zeromamba_mm.ops.scan_chunked import carry_
from zeromamba_mm.ops.selective_scan_states import selective_scan_states

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def make(batch=2,
         channels=8,
         length=37,
         d_state=4,
         groups=2,
         dtype=torch.float64,
         with_d=True,
         with_bias=True,
         seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) *
                scale).to(dtype)

    x = dict(
        u=rnd(batch, channels, length),
        delta=rnd(batch, channels, length, scale=0.5),
        A=-(torch.rand(channels, d_state, generator=g, dtype=torch.float64) *
            1.5 + 0.1).to(dtype),
        B=rnd(batch, groups, d_state, length),
        C=rnd(batch, groups, d_state, length),
        D=rnd(channels) if with_d else None,
        delta_bias=rnd(channels, scale=0.5) if with_bias else None)
    for v in x.values():
        if v is not None:
            v.requires_grad_(True)
    return x


def loss_and_grads(fn, x, last):
    """Outputs and the gradients of a fixed random linear loss."""
    out = fn(x)
    y, s = out if last else (out, None)
    g = torch.Generator().manual_seed(1)
    loss = (y.double() *
            torch.randn(y.shape, generator=g, dtype=torch.float64)).sum()
    if s is not None:
        loss = loss + (s.double() * torch.randn(
            s.shape, generator=g, dtype=torch.float64)).sum()
    names = [k for k in NAMES if x[k] is not None and x[k].requires_grad]
    grads = torch.autograd.grad(loss, [x[k] for k in names])
    return y, s, dict(zip(names, grads))


def ref_fn(softplus, last):
    return lambda x: selective_scan_ref(
        **x, delta_softplus=softplus, return_last_state=last)


def states_fn(softplus, last):
    return lambda x: selective_scan_states(
        **x, delta_softplus=softplus, return_last_state=last)


def check(x, softplus=True, last=True, rtol=1e-10, atol=1e-11):
    as64 = {
        k:
        None
        if v is None else v.detach().double().requires_grad_(v.requires_grad)
        for k, v in x.items()
    }
    y_ref, s_ref, g_ref = loss_and_grads(ref_fn(softplus, last), as64, last)
    y, s, grads = loss_and_grads(states_fn(softplus, last), x, last)
    assert y.dtype == x['u'].dtype
    torch.testing.assert_close(y.double(), y_ref, rtol=rtol, atol=atol)
    if last:
        torch.testing.assert_close(s.double(), s_ref, rtol=rtol, atol=atol)
    assert grads.keys() == g_ref.keys()
    for k in grads:
        torch.testing.assert_close(
            grads[k].double(),
            g_ref[k],
            rtol=rtol,
            atol=atol,
            msg=lambda m: f'{k}: {m}')


@pytest.mark.parametrize('d_state', [1, 4, 16])
@pytest.mark.parametrize('length', [1, 7, 36, 37, 100])
def test_matches_reference_float64(d_state, length):
    # 36 = 2 chunks of 18, 37 and 100 are padded (3 chunks of 16, 7 of 16),
    # 1 and 7 are one chunk.
    check(make(length=length, d_state=d_state))


@pytest.mark.parametrize('groups', [1, 2, 8])
@pytest.mark.parametrize('softplus,with_d,with_bias,last',
                         [(True, True, True, True),
                          (False, False, False, False),
                          (True, False, True, False)])
def test_options_and_groups(groups, softplus, with_d, with_bias, last):
    x = make(
        length=45,
        d_state=4,
        groups=groups,
        with_d=with_d,
        with_bias=with_bias)
    if not softplus:
        with torch.no_grad():
            x['delta'].abs_()  # a step size
    check(x, softplus=softplus, last=last)


@pytest.mark.parametrize('budget,batch', [(200, 3), (2000, 3), (9000, 5)])
def test_blocks(monkeypatch, budget, batch):
    # Blocks of part of a group, of whole groups, and of whole batch items.
    monkeypatch.setattr(states_mod, 'STATE_BLOCK_ELEMS', budget)
    check(make(batch=batch, length=70, d_state=4, groups=2))


def test_float32_matches_reference():
    x = make(length=200, d_state=16, groups=1, dtype=torch.float32)
    check(x, rtol=1e-5, atol=1e-5)


def test_public_dispatch_with_gate():
    # d_state > 1 on CPU goes through this scan; z is applied outside.
    x = make(length=50, d_state=4, groups=2)
    z = torch.randn(2, 8, 50, dtype=torch.float64, requires_grad=True)
    x_ref = {k: v.detach().requires_grad_() for k, v in x.items()}
    z_ref = z.detach().requires_grad_()
    y = selective_scan(**x, z=z, delta_softplus=True, backend='torch')
    y_ref = selective_scan_ref(**x_ref, z=z_ref, delta_softplus=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-11)
    gy = torch.randn_like(y)
    leaves = [x[k] for k in NAMES] + [z]
    ref_leaves = [x_ref[k] for k in NAMES] + [z_ref]
    for g, g_ref in zip(
            torch.autograd.grad(y, leaves, gy),
            torch.autograd.grad(y_ref, ref_leaves, gy)):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-11)


def test_unwanted_gradients_are_skipped():
    # B and C without requires_grad (e.g. fixed projections): the others
    # are still right, and none is computed for B and C.
    x = make(length=40, d_state=4)
    x['B'].requires_grad_(False)
    x['C'].requires_grad_(False)
    check(x)


def test_strong_decay_finite():
    # delta * |A| of 50 per step at d_state 16: a product or quotient of
    # raw decays over a chunk would underflow or overflow.
    x = make(
        batch=1,
        channels=4,
        length=300,
        d_state=16,
        groups=1,
        dtype=torch.float32,
        with_bias=False)
    with torch.no_grad():
        x['delta'].fill_(50.0)
        x['delta'][..., ::7] = 0.01
        x['A'].fill_(-1.0)
    y_ref, s_ref, g_ref = loss_and_grads(ref_fn(True, True), x, True)
    y, s, grads = loss_and_grads(states_fn(True, True), x, True)
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for k, v in grads.items():
        assert torch.isfinite(v).all(), k
        torch.testing.assert_close(v, g_ref[k], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('n', [1, 2, 5, 8, 13])
@pytest.mark.parametrize('reverse', [False, True])
def test_carry_is_a_linear_scan(n, reverse):
    g = torch.Generator().manual_seed(n)
    total = torch.rand(n, 3, generator=g, dtype=torch.float64)
    end = torch.randn(n, 3, generator=g, dtype=torch.float64)
    expected = end.clone()
    order = range(n - 2, -1, -1) if reverse else range(1, n)
    for c in order:
        prev = expected[c + 1] if reverse else expected[c - 1]
        expected[c] = expected[c] + total[c] * prev
    got = carry_(total.clone(), end, reverse=reverse)
    torch.testing.assert_close(got, expected)


def test_chunking_of_vim_lengths():
    # Vim-S's 197 tokens (prime): padded to 13 chunks of 16.
    assert chunk_shape(197) == (16, 13)
    assert chunk_shape(785) == (16, 50)


@pytest.mark.parametrize('d_state', [1, 4])
def test_public_scan_without_b_c_gradients(d_state):
    # V2M's passes fix B or C to ones (no gradient): both CPU scans skip
    # those contractions and still give every other gradient exactly.
    x = make(length=40, d_state=d_state, groups=2)
    x['C'].requires_grad_(False)
    x_ref = {
        k: v.detach().requires_grad_(v.requires_grad)
        for k, v in x.items()
    }
    y = selective_scan(**x, delta_softplus=True, backend='torch')
    y_ref = selective_scan_ref(**x_ref, delta_softplus=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-11)
    gy = torch.randn_like(y)
    names = [k for k in NAMES if k != 'C']
    for k, g, g_ref in zip(
            names, torch.autograd.grad(y, [x[k] for k in names], gy),
            torch.autograd.grad(y_ref, [x_ref[k] for k in names], gy)):
        torch.testing.assert_close(
            g, g_ref, rtol=1e-10, atol=1e-11, msg=lambda m: f'{k}: {m}')
