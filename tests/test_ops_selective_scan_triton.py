"""Triton selective-scan kernels vs the reference, in the Triton interpreter.

Only meaningful with ``TRITON_INTERPRET=1`` set before triton is imported
(``test_ops_selective_scan.py::test_triton_kernels_in_interpreter`` runs this
file that way); otherwise skipped. Sizes are tiny: the interpreter executes
every scan combine in Python.
"""
import pytest
import torch
from test_ops_selective_scan import assert_match, make_inputs, run
from test_ops_selective_scan_oracle import (LAYOUTS, assert_matches_oracle,
                                            make_case)

from zeromamba_mm.ops import scan_common
from zeromamba_mm.ops.selective_scan_triton import triton_interpreted

if triton_interpreted():
    import triton
    import triton.language as tl

    from zeromamba_mm.ops.selective_scan_triton_kernels import _softplus

    @triton.jit
    def _softplus_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        tl.store(y_ptr + offs, _softplus(x), mask=mask)


pytestmark = pytest.mark.skipif(
    not triton_interpreted(),
    reason='needs TRITON_INTERPRET=1 before triton is imported')


@pytest.mark.parametrize(
    'case',
    [
        # length, d_state, groups, bc_3d, with_d, with_z, with_bias, softplus,
        # last
        (37, 1, 4, False, True, False, True, True, False),  # VMamba's call
        (20, 3, 2, False, True, True, True, True, True),  # N > 1, masked N
        (16, 1, 1, True, False, False, False, False, True),  # (B, N, L) B/C
        (1, 2, 1, False, True, False, True, True, True),
    ])
def test_triton_matches_ref_float64(case):
    length, n, g, bc3, with_d, with_z, with_bias, softplus, last = case
    x = make_inputs(
        batch=2,
        channels=8,
        length=length,
        d_state=n,
        groups=g,
        bc_3d=bc3,
        with_d=with_d,
        with_z=with_z,
        with_bias=with_bias,
        softplus=softplus)
    assert_match(
        x, 'triton', rtol=1e-10, atol=1e-11, softplus=softplus, last=last)


def test_triton_float32_and_channel_blocks():
    # 12 channels per group -> BLOCK_D 4: three programs per group.
    x = make_inputs(
        batch=1,
        channels=24,
        length=40,
        d_state=1,
        groups=2,
        dtype=torch.float32)
    assert_match(x, 'triton', rtol=1e-5, atol=1e-5, last=True)


def test_triton_strong_decay_and_bf16():
    x = make_inputs(
        batch=1,
        channels=4,
        length=40,
        d_state=1,
        groups=1,
        dtype=torch.bfloat16,
        with_bias=False)
    with torch.no_grad():
        x['delta'].fill_(50.0)
        x['A'].fill_(-1.0)
    y, s, grads = run(x, 'triton', last=True)
    assert y.dtype == torch.bfloat16
    assert torch.isfinite(y.float()).all() and torch.isfinite(s).all()
    y_ref, s_ref, _ = run(x, 'ref', last=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-2, atol=1e-2)
    for k, v in grads.items():
        assert v.dtype == x[k].dtype and torch.isfinite(v.float()).all(), k


@pytest.mark.parametrize('layouts', LAYOUTS)
def test_triton_matches_oracle(layouts):
    # The independent plain-loop oracle of mamba-ssm's reference semantics
    # (z gating, d_state 3, grouped / fixed / mixed B and C).
    assert_matches_oracle('triton', make_case(*layouts))


def test_triton_empty_sequence():
    x = make_inputs(length=0, d_state=2, groups=2, with_z=True)
    y, s, grads = run(x, 'triton', last=True)
    assert y.shape == (2, 8, 0) and s.shape == (2, 8, 2)
    assert not s.any() and all(not v.any() for v in grads.values())


def test_triton_softplus_is_the_common_softplus():
    # The kernels' @triton.jit softplus and scan_common's evaluate one
    # formula: compare them on arguments from -60 to 60 (in float32, exp of
    # a rounded argument x is good to about |x| * eps relative).
    for dtype, rtol in ((torch.float64, 1e-14), (torch.float32, 1e-5)):
        x = torch.cat([
            torch.linspace(-60, 60, 997, dtype=dtype),
            torch.tensor([0.0, 1e-30, -1e-30, 20.0, 40.0], dtype=dtype)
        ])
        y = torch.empty_like(x)
        _softplus_kernel[(1, )](x, y, x.numel(), BLOCK=1024)
        expected = scan_common.softplus(x.double())
        torch.testing.assert_close(y.double(), expected, rtol=rtol, atol=0)
        fast = scan_common.softplus_(x.clone())
        torch.testing.assert_close(
            fast.double(), expected, rtol=rtol, atol=0)
