"""Every selective-scan backend against an independent oracle.

The oracle is a plain-loop re-derivation of the semantics of mamba-ssm's
published ``selective_scan_ref`` (Gu & Dao, "Mamba",
https://arxiv.org/abs/2312.00752, Algorithm 2) for real ``A``, written here
from its documented shapes, one sequence, channel and step at a time:

* ``delta <- softplus(delta + delta_bias)`` when ``delta_softplus``;
* input-dependent B/C of shape (batch, G, N, L): channel ``d`` reads group
  ``d // (D / G)``; (batch, N, L) is G = 1; fixed B/C of shape (D, N) are
  the same at every step;
* ``h_t = exp(delta_t A_d) h_{t-1} + delta_t B_t u_t`` from ``h_{-1} = 0``;
* ``y_t = <C_t, h_t> + D_d u_t``, then ``y_t * z_t * sigmoid(z_t)``.

It shares no code with the package (not even the softplus), so a mistake
common to the backends and their own reference would show here. The Triton
kernels are compared with it in ``tests/test_ops_selective_scan_triton.py``
(in the Triton interpreter).
"""
import math

import pytest
import torch

from zeromamba_mm.ops import selective_scan

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')


def oracle_scan(u,
                delta,
                A,
                B,
                C,
                D=None,
                z=None,
                delta_bias=None,
                delta_softplus=False):
    """Plain loops in float64; returns (y, last_state)."""
    batch, channels, length = u.shape
    d_state = A.shape[1]
    ys, lasts = [], []
    for b in range(batch):
        y_rows, last_rows = [], []
        for d in range(channels):
            h = [u.new_zeros((), dtype=torch.float64)] * d_state
            y_row = []
            for t in range(length):
                step = delta[b, d, t].double()
                if delta_bias is not None:
                    step = step + delta_bias[d].double()
                if delta_softplus:
                    step = torch.log(1 + torch.exp(step))
                bt, ct = [], []
                for n in range(d_state):
                    for src, out in ((B, bt), (C, ct)):
                        if src.dim() == 2:  # fixed (D, N)
                            out.append(src[d, n])
                        elif src.dim() == 3:  # (batch, N, L)
                            out.append(src[b, n, t])
                        else:  # (batch, G, N, L)
                            group = d // (channels // src.shape[1])
                            out.append(src[b, group, n, t])
                x = u[b, d, t].double()
                h = [
                    torch.exp(step * A[d, n].double()) * h[n] +
                    step * bt[n].double() * x for n in range(d_state)
                ]
                y = sum(ct[n].double() * h[n] for n in range(d_state))
                if D is not None:
                    y = y + D[d].double() * x
                if z is not None:
                    gate = z[b, d, t].double()
                    y = y * gate * torch.sigmoid(gate)
                y_row.append(y)
            y_rows.append(
                torch.stack(y_row) if y_row else u.
                new_zeros(0, dtype=torch.float64))
            last_rows.append(torch.stack(h))
        ys.append(torch.stack(y_rows))
        lasts.append(torch.stack(last_rows))
    return torch.stack(ys), torch.stack(lasts)


def make_case(b_layout,
              c_layout,
              d_state=3,
              batch=2,
              channels=4,
              length=6,
              with_z=True,
              with_d=True,
              with_bias=True,
              seed=0,
              dtype=torch.float64):
    """Inputs as float64 leaves; layouts: 'grouped' (batch, 2, N, L),
    'shared' (batch, N, L) or 'fixed' (D, N)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) *
                scale).to(dtype)

    def projection(layout):
        return dict(
            grouped=lambda: rnd(batch, 2, d_state, length),
            shared=lambda: rnd(batch, d_state, length),
            fixed=lambda: rnd(channels, d_state).double()
            if dtype == torch.float64 else rnd(channels, d_state).float(),
        )[layout]()

    x = dict(
        u=rnd(batch, channels, length),
        delta=rnd(batch, channels, length, scale=0.5),
        A=-(torch.rand(channels, d_state, generator=g, dtype=torch.float64) +
            0.2),
        B=projection(b_layout),
        C=projection(c_layout),
        D=rnd(channels) if with_d else None,
        z=rnd(batch, channels, length) if with_z else None,
        delta_bias=rnd(channels, scale=0.5) if with_bias else None)
    if dtype != torch.float64:
        x['A'] = x['A'].float()
    return {
        k: None if v is None else v.requires_grad_(True)
        for k, v in x.items()
    }


def outputs_and_grads(fn, x, seed=1):
    """(y, last, grads) of a random linear loss of y and the last state."""
    y, last = fn(x)
    g = torch.Generator().manual_seed(seed)
    loss = (y.double() *
            torch.randn(y.shape, generator=g, dtype=torch.float64)).sum() + (
                last.double() * torch.randn(
                    last.shape, generator=g, dtype=torch.float64)).sum()
    names = [k for k in NAMES if x[k] is not None]
    grads = torch.autograd.grad(loss, [x[k] for k in names])
    return y, last, dict(zip(names, grads))


def backend_fn(backend, softplus=True):

    def fn(x):
        return selective_scan(
            **x,
            delta_softplus=softplus,
            return_last_state=True,
            backend=backend)

    return fn


def oracle_fn(softplus=True):

    def fn(x):
        return oracle_scan(**x, delta_softplus=softplus)

    return fn


def assert_matches_oracle(backend, x, softplus=True, rtol=1e-10, atol=1e-10):
    y_o, s_o, g_o = outputs_and_grads(oracle_fn(softplus), x)
    y, s, grads = outputs_and_grads(backend_fn(backend, softplus), x)
    torch.testing.assert_close(y.double(), y_o, rtol=rtol, atol=atol)
    torch.testing.assert_close(s.double(), s_o, rtol=rtol, atol=atol)
    assert grads.keys() == g_o.keys()
    for k in g_o:
        torch.testing.assert_close(
            grads[k].double(),
            g_o[k],
            rtol=rtol,
            atol=atol,
            msg=lambda m: f'd{k}: {m}')


LAYOUTS = [
    ('grouped', 'grouped'),  # input-dependent, G = 2, N = 3
    ('fixed', 'fixed'),  # fixed (D, N)
    ('fixed', 'grouped'),  # mixed
    ('shared', 'fixed'),
]


def test_oracle_is_the_recurrence():
    # The oracle itself, on numbers worked by hand: D = N = 1, no softplus,
    # delta = 1, A = -ln 2 (decay 1/2), B = C = 1, u = (1, 0, 2):
    # h = (1, 1/2, 9/4), y = h + D u with D = 1 -> (2, 1/2, 17/4).
    one = torch.ones((), dtype=torch.float64)
    y, last = oracle_scan(
        torch.tensor([[[1.0, 0.0, 2.0]]], dtype=torch.float64),
        torch.ones(1, 1, 3, dtype=torch.float64),
        -math.log(2) * one.reshape(1, 1),
        one.reshape(1, 1),
        one.reshape(1, 1),
        D=one.reshape(1))
    torch.testing.assert_close(
        y, torch.tensor([[[2.0, 0.5, 4.25]]], dtype=torch.float64))
    torch.testing.assert_close(last,
                               torch.tensor([[[2.25]]], dtype=torch.float64))


@pytest.mark.parametrize('backend', ['ref', 'torch'])
@pytest.mark.parametrize('layouts', LAYOUTS)
def test_backend_matches_oracle(backend, layouts):
    x = make_case(*layouts)
    assert_matches_oracle(backend, x)


@pytest.mark.parametrize('backend', ['ref', 'torch'])
def test_backend_matches_oracle_without_softplus_z_d_bias(backend):
    x = make_case(
        'grouped',
        'shared',
        with_z=False,
        with_d=False,
        with_bias=False,
        d_state=2)
    with torch.no_grad():
        x['delta'].abs_()  # a step size without softplus
    assert_matches_oracle(backend, x, softplus=False)


def test_torch_matches_oracle_float32_multi_chunk():
    # Long enough for several chunks of the chunked scan (L = 70).
    x = make_case('grouped', 'fixed', length=70, batch=1, dtype=torch.float32)
    x64 = {
        k: None if v is None else v.detach().double().requires_grad_(True)
        for k, v in x.items()
    }
    y_o, s_o, g_o = outputs_and_grads(oracle_fn(), x64)
    y, s, grads = outputs_and_grads(backend_fn('torch'), x)
    torch.testing.assert_close(y.double(), y_o, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s.double(), s_o, rtol=1e-4, atol=1e-4)
    for k in g_o:
        assert grads[k].dtype == x[k].dtype, k
        torch.testing.assert_close(
            grads[k].double(), g_o[k], rtol=1e-4, atol=1e-4)
