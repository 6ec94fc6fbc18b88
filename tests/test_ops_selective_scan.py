"""Selective scan: backends vs the sequential reference, numerics, dispatch.

The Triton kernels are checked on CPU by
``tests/test_ops_selective_scan_triton.py``, run here in a subprocess with
``TRITON_INTERPRET=1`` (the variable must be set before triton is imported).
"""
import os
import subprocess
import sys
import types
import warnings

import pytest
import torch

import zeromamba_mm.ops.selective_scan_dispatch as dispatch
import zeromamba_mm.ops.selective_scan_mamba as mamba_mod
import zeromamba_mm.ops.selective_scan_torch as torch_mod
from zeromamba_mm.ops import (resolve_backend, selective_scan,
                              selective_scan_ref)

ARGS = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')


def make_inputs(batch=2,
                channels=8,
                length=37,
                d_state=1,
                groups=4,
                dtype=torch.float64,
                bc_3d=False,
                with_d=True,
                with_z=False,
                with_bias=True,
                seed=0,
                delta_scale=0.5,
                softplus=True):
    """Well-scaled random inputs as a dict of leaf tensors (without
    softplus, delta is made positive: it is a step size)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) *
                scale).to(dtype)

    bc_shape = ((batch, d_state, length) if bc_3d else
                (batch, groups, d_state, length))
    x = dict(
        u=rnd(batch, channels, length),
        delta=rnd(batch, channels, length, scale=delta_scale),
        A=-(torch.rand(channels, d_state, generator=g, dtype=torch.float64) *
            1.5 + 0.1).to(dtype if dtype == torch.float64 else torch.float32),
        B=rnd(*bc_shape),
        C=rnd(*bc_shape),
        D=rnd(channels).float() if with_d else None,
        z=rnd(batch, channels, length) if with_z else None,
        delta_bias=(rnd(channels, scale=0.5).float() if with_bias else None),
    )
    if not softplus:
        x['delta'] = x['delta'].abs()
    if dtype == torch.float64:
        x = {k: None if v is None else v.double() for k, v in x.items()}
    for v in x.values():
        if v is not None:
            v.requires_grad_(True)
    return x


def run(x, backend, softplus=True, last=False, seed=1):
    """Outputs and gradients of a random linear loss of them."""
    out = selective_scan(
        **x, delta_softplus=softplus, return_last_state=last, backend=backend)
    y, state = out if last else (out, None)
    g = torch.Generator().manual_seed(seed)
    loss = (y.double() *
            torch.randn(y.shape, generator=g, dtype=torch.float64)).sum()
    if state is not None:
        loss = loss + (state.double() * torch.randn(
            state.shape, generator=g, dtype=torch.float64)).sum()
    names = [k for k in ARGS if x[k] is not None]
    grads = torch.autograd.grad(loss, [x[k] for k in names])
    return y, state, dict(zip(names, grads))


def as_float64(x):
    return {
        k: None if v is None else v.detach().double().requires_grad_(True)
        for k, v in x.items()
    }


def assert_match(x, backend, rtol, atol, softplus=True, last=False):
    """Compare a backend with the reference evaluated in float64 on the
    same (rounded) inputs, i.e. against the exact answer."""
    y_ref, s_ref, g_ref = run(as_float64(x), 'ref', softplus, last)
    y, s, grads = run(x, backend, softplus, last)
    assert y.dtype == x['u'].dtype and y.shape == x['u'].shape
    torch.testing.assert_close(y.double(), y_ref, rtol=rtol, atol=atol)
    if last:
        torch.testing.assert_close(s.double(), s_ref, rtol=rtol, atol=atol)
    assert grads.keys() == g_ref.keys()
    for k in grads:
        assert grads[k].dtype == x[k].dtype, k
        torch.testing.assert_close(
            grads[k].double(),
            g_ref[k],
            rtol=rtol,
            atol=atol,
            msg=lambda m: f'{k}: {m}')


CASES = [
    # d_state, groups, bc_3d, with_d, with_z, with_bias, softplus, last
    (1, 4, False, True, False, True, True, False),  # VMamba's call
    (1, 1, True, False, False, False, False, True),
    (3, 2, False, True, True, True, True, True),
    (2, 1, True, True, True, False, True, False),
    (4, 8, False, False, False, True, False, True),
]


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('length', [1, 36, 37])
def test_torch_matches_ref_float64(case, length):
    n, g, bc3, with_d, with_z, with_bias, softplus, last = case
    x = make_inputs(
        length=length,
        d_state=n,
        groups=g,
        bc_3d=bc3,
        with_d=with_d,
        with_z=with_z,
        with_bias=with_bias,
        softplus=softplus)
    assert_match(
        x, 'torch', rtol=1e-10, atol=1e-11, softplus=softplus, last=last)


@pytest.mark.parametrize('case', CASES[:3])
def test_torch_matches_ref_float32(case):
    n, g, bc3, with_d, with_z, with_bias, softplus, last = case
    x = make_inputs(
        length=200,
        d_state=n,
        groups=g,
        bc_3d=bc3,
        with_d=with_d,
        with_z=with_z,
        with_bias=with_bias,
        dtype=torch.float32,
        softplus=softplus)
    assert_match(
        x, 'torch', rtol=1e-5, atol=1e-5, softplus=softplus, last=last)


@pytest.mark.parametrize(
    'budget,batch,length',
    [
        (100, 3, 70),  # several blocks of channels inside one group
        (400, 3, 71),  # whole groups per block, padded length
        (1200, 5, 70),  # whole batch items per block
    ])
def test_torch_blocks_and_padding(monkeypatch, budget, batch, length):
    monkeypatch.setattr(torch_mod, 'CPU_BLOCK_ELEMS', budget)
    x = make_inputs(
        batch=batch, channels=8, length=length, d_state=1, groups=2)
    assert_match(x, 'torch', rtol=1e-10, atol=1e-11, last=True)


def test_torch_gradcheck():
    x = make_inputs(
        batch=1, channels=4, length=11, d_state=2, groups=2, with_z=True)
    names = [k for k in ARGS if x[k] is not None]

    def fn(*args):
        y, s = selective_scan(
            **dict(zip(names, args)),
            delta_softplus=True,
            return_last_state=True,
            backend='torch')
        return y, s

    assert torch.autograd.gradcheck(fn, [x[k] for k in names])


def test_chunk_shape():
    # H * W lengths split without padding.
    assert torch_mod.chunk_shape(3136, 16) == (16, 196)
    assert torch_mod.chunk_shape(196, 16) == (14, 14)
    assert torch_mod.chunk_shape(20, 16) == (20, 1)
    for length in (1, 2, 7, 97, 1000, 3137):
        t, nc = torch_mod.chunk_shape(length, 16)
        assert length <= t * nc < length + t


def test_strong_decay_no_nan():
    # delta * |A| of about 50 per step: exp(+cumsum) would overflow here.
    x = make_inputs(
        batch=1,
        channels=4,
        length=300,
        d_state=2,
        groups=1,
        delta_scale=0.0,
        with_bias=False,
        dtype=torch.float32)
    with torch.no_grad():
        x['delta'].fill_(50.0)
        x['A'].fill_(-1.0)
        x['delta'][..., ::7] = 0.01  # mix strong and weak steps
    y_ref, s_ref, g_ref = run(x, 'ref', softplus=True, last=True)
    y, s, grads = run(x, 'torch', softplus=True, last=True)
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    for k, v in grads.items():
        assert torch.isfinite(v).all(), k
        torch.testing.assert_close(v, g_ref[k], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)


def test_long_sequence_no_nan():
    # L = 12,544 (448 px stage 1); weak decay so the state carries far.
    x = make_inputs(
        batch=1,
        channels=4,
        length=12544,
        d_state=1,
        groups=4,
        dtype=torch.float32,
        delta_scale=0.1)
    with torch.no_grad():
        x['delta_bias'].fill_(-6.0)  # delta ~ 2.5e-3
    y, s, grads = run(x, 'torch', last=True)
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    assert all(torch.isfinite(v).all() for v in grads.values())
    with torch.no_grad():
        y_ref, s_ref = selective_scan_ref(
            **x, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_inputs_scan_in_float32(dtype):
    x = make_inputs(length=40, dtype=dtype, with_z=True)
    y, s, grads = run(x, 'torch', last=True)
    assert y.dtype == dtype and s.dtype == torch.float32
    for k, v in grads.items():
        assert v.dtype == x[k].dtype, k
    # Same math on the upcast inputs: only the final rounding differs.
    x32 = {k: None if v is None else v.detach().float() for k, v in x.items()}
    y32 = selective_scan_ref(**x32, delta_softplus=True)
    torch.testing.assert_close(y.float(), y32, rtol=1e-2, atol=1e-2)
    assert (y.float() - y32).abs().max() <= 2 * (
        y32.abs().max() * torch.finfo(dtype).eps)


def test_autocast_cpu_bf16():
    x = make_inputs(length=40, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        u = x['u'] * 1.0  # stays float32: mul is not an autocast op
        y = selective_scan(
            u.bfloat16(),
            x['delta'].bfloat16(),
            x['A'],
            x['B'].bfloat16(),
            x['C'].bfloat16(),
            D=x['D'],
            delta_bias=x['delta_bias'],
            delta_softplus=True)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x['A'].grad.dtype == torch.float32
    assert torch.isfinite(x['A'].grad).all()


def test_vmamba_call_signature():
    # The exact call of the VMamba backbone (4 directions, G = 4, N = 1).
    batch, e, length = 2, 6, 16
    u = torch.randn(batch, 4 * e, length)
    dts = torch.randn(batch, 4 * e, length)
    bs = torch.randn(batch, 4, 1, length)
    cs = torch.randn(batch, 4, 1, length)
    A = -torch.rand(4 * e, 1).exp()
    Ds, bias = torch.ones(4 * e), torch.randn(4 * e)
    y = selective_scan(
        u, dts, A, bs, cs, D=Ds, delta_bias=bias, delta_softplus=True)
    y_ref = selective_scan_ref(
        u, dts, A, bs, cs, D=Ds, delta_bias=bias, delta_softplus=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------- dispatch


def test_auto_on_cpu_is_torch(monkeypatch):
    # With the compiled CPU kernel switched off (its own dispatch tests are
    # in test_ops_selective_scan_compiled.py).
    monkeypatch.setenv('ZEROMAMBA_CPU_SCAN', 'torch')
    u = torch.randn(1, 4, 8)
    assert resolve_backend('auto', u) == 'torch'
    assert resolve_backend('ref', u) == 'ref'


def test_unknown_backend():
    x = make_inputs()
    with pytest.raises(ValueError, match='unknown selective-scan backend'):
        selective_scan(**x, backend='cuda')


@pytest.fixture
def no_mamba(monkeypatch):
    """Make `import mamba_ssm` fail, whatever is installed."""
    monkeypatch.setitem(sys.modules, 'mamba_ssm', None)
    mamba_mod.reset_mamba_cache()
    yield
    mamba_mod.reset_mamba_cache()


def test_forced_mamba_without_mamba_ssm_raises(no_mamba):
    x = make_inputs()
    with pytest.raises(RuntimeError, match='could not be loaded.*mamba_ssm'):
        selective_scan(**x, backend='mamba')


def test_forced_triton_on_cpu_raises():
    if dispatch.triton_interpreted():
        pytest.skip('running under TRITON_INTERPRET=1')
    x = make_inputs()
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET=1'):
        selective_scan(**x, backend='triton')


def test_auto_on_cuda_without_mamba_is_triton(monkeypatch, no_mamba):
    monkeypatch.setattr(dispatch, '_is_cuda', lambda t: True)
    assert resolve_backend('auto', torch.randn(1, 4, 8)) == 'triton'
    monkeypatch.setattr(dispatch, 'TRITON_IMPORT_ERROR', 'ImportError: x')
    assert resolve_backend('auto', torch.randn(1, 4, 8)) == 'torch'


def install_fake_mamba(monkeypatch, fn, extension='module'):
    """Put a stand-in `mamba_ssm` in sys.modules whose interface module
    exposes ``fn`` as ``selective_scan_fn``.

    ``extension``: ``'module'`` (a loaded ``selective_scan_cuda``, as in a
    full install), ``None`` (mamba-ssm main without its opt-in extension:
    the attribute is None) or ``'absent'`` (older layout without the
    attribute, and ``import selective_scan_cuda`` failing).
    """
    names = [
        'mamba_ssm', 'mamba_ssm.ops', 'mamba_ssm.ops.selective_scan_interface'
    ]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    interface = sys.modules[names[-1]]
    interface.selective_scan_fn = fn
    if extension == 'module':
        interface.selective_scan_cuda = types.ModuleType('selective_scan_cuda')
    elif extension is None:
        interface.selective_scan_cuda = None
    else:
        monkeypatch.setitem(sys.modules, 'selective_scan_cuda', None)
    mamba_mod.reset_mamba_cache()
    dispatch._WARNED.clear()


def recording_reference(calls):
    """A stand-in kernel: the reference, recording the dtypes it got."""

    def selective_scan_fn(u,
                          delta,
                          A,
                          B,
                          C,
                          D=None,
                          z=None,
                          delta_bias=None,
                          delta_softplus=False,
                          return_last_state=False):
        calls.append({
            k: v.dtype
            for k, v in dict(
                u=u, delta=delta, A=A, B=B, C=C, D=D,
                delta_bias=delta_bias).items() if v is not None
        })
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias,
                                  delta_softplus, return_last_state)

    return selective_scan_fn


@pytest.fixture
def fake_mamba(monkeypatch):
    """A working stand-in mamba-ssm; yields the calls its kernel got
    (without the one-off probe call)."""
    calls = []
    install_fake_mamba(monkeypatch, recording_reference(calls))
    yield calls
    mamba_mod.reset_mamba_cache()
    dispatch._WARNED.clear()


def test_mamba_dispatch_needs_cuda_tensors(fake_mamba, monkeypatch):
    monkeypatch.setenv('ZEROMAMBA_CPU_SCAN', 'torch')
    x = make_inputs(dtype=torch.float32)
    # Importable but CPU tensors: auto stays on torch, forcing says why.
    assert resolve_backend('auto', x['u']) == 'torch'
    with pytest.raises(RuntimeError, match='CUDA-only'):
        selective_scan(**x, backend='mamba')
    assert not fake_mamba


def test_auto_on_cuda_with_mamba(monkeypatch, fake_mamba):
    monkeypatch.setattr(dispatch, '_is_cuda', lambda t: True)
    x = make_inputs(dtype=torch.bfloat16)
    x['B'] = x['B'].detach().float().requires_grad_()  # mixed, as in AMP
    assert resolve_backend('auto', x['u']) == 'mamba'
    fake_mamba.clear()  # the probe's call
    y = selective_scan(**x, delta_softplus=True)
    assert y.dtype == torch.bfloat16
    (call, ) = fake_mamba
    # The dtypes mamba-ssm's kernel accepts.
    assert call['B'] == call['C'] == call['delta'] == torch.bfloat16
    assert call['A'] == call['D'] == call['delta_bias'] == torch.float32
    y.float().sum().backward()
    assert x['B'].grad.dtype == torch.float32
    # float64 is not for mamba-ssm: auto falls to triton.
    assert resolve_backend('auto', torch.zeros(1, dtype=torch.float64)) == \
        'triton'


@pytest.mark.parametrize('extension,match', [
    (None, 'MAMBA_KEEP_CUDA_BUILD'),
    ('absent', 'selective_scan_cuda'),
])
def test_mamba_without_extension_falls_back_with_one_warning(
        monkeypatch, extension, match):
    # mamba-ssm's main branch: the interface imports, the extension is
    # opt-in and missing; the first kernel call would fail.
    calls = []
    install_fake_mamba(monkeypatch, recording_reference(calls), extension)
    monkeypatch.setattr(dispatch, '_is_cuda', lambda t: True)
    u = torch.randn(1, 4, 8)
    with pytest.warns(RuntimeWarning, match=match) as record:
        assert resolve_backend('auto', u) == 'triton'
    assert len(record) == 1 and "using the 'triton' backend" in str(
        record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning
        assert resolve_backend('auto', u) == 'triton'
    with pytest.raises(RuntimeError, match=match):
        resolve_backend('mamba', u)
    assert not calls  # never called without its extension
    mamba_mod.reset_mamba_cache()


@pytest.mark.parametrize('failure', ['raises', 'wrong'])
def test_mamba_first_call_failure_falls_back(monkeypatch, failure):
    # Import and extension fine, but the kernel fails on this device (no
    # kernel image for the GPU, ABI mismatch) or gives wrong numbers.
    calls = []

    def broken(u, delta, A, B, C, **kwargs):
        calls.append(1)
        if failure == 'raises':
            raise RuntimeError('no kernel image is available for execution')
        return (u * 0).sum() * 0 + u * 0

    install_fake_mamba(monkeypatch, broken)
    monkeypatch.setattr(dispatch, '_is_cuda', lambda t: True)
    x = make_inputs(dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match='tiny input|wrong results'):
        assert resolve_backend('auto', x['u']) == 'triton'
    assert calls == [1]  # the probe, once
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert resolve_backend('auto', x['u']) == 'triton'
    assert calls == [1]  # cached
    with pytest.raises(RuntimeError, match='tiny input|wrong results'):
        resolve_backend('mamba', x['u'])
    mamba_mod.reset_mamba_cache()


def test_mamba_probe_runs_under_no_grad(monkeypatch, fake_mamba):
    monkeypatch.setattr(dispatch, '_is_cuda', lambda t: True)
    with torch.no_grad():
        assert resolve_backend('auto', torch.randn(1, 4, 8)) == 'mamba'
    assert len(fake_mamba) == 1  # the probe ran (with gradients)


@pytest.mark.parametrize('bad,match', [
    (dict(u=torch.zeros(2, 8)), 'u must be'),
    (dict(delta=torch.zeros(2, 8, 5)), 'delta must'),
    (dict(A=torch.zeros(7, 1)), 'A must be'),
    (dict(B=torch.zeros(2, 3, 1, 37)), 'does not divide'),
    (dict(C=torch.zeros(2, 4, 2, 37)), 'C must be'),
    (dict(D=torch.zeros(3)), 'D must be'),
    (dict(z=torch.zeros(1, 8, 37)), 'z must'),
])
def test_input_validation(bad, match):
    x = make_inputs(dtype=torch.float32)
    x.update(bad)
    with pytest.raises(ValueError, match=match):
        selective_scan(**x)


def test_triton_kernels_in_interpreter():
    """Runs tests/test_ops_selective_scan_triton.py with TRITON_INTERPRET=1
    in a fresh interpreter (triton reads it at import)."""
    path = os.path.join(
        os.path.dirname(__file__), 'test_ops_selective_scan_triton.py')
    env = dict(os.environ, TRITON_INTERPRET='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', path],
        env=env,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert ' passed' in proc.stdout and 'skipped' not in proc.stdout


def _ptxas_report(kernel, constexprs, num_warps):
    """Compile a Triton kernel for sm_90 without a GPU and return ptxas's
    resource report."""
    import inspect

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    sig = {
        p: ('constexpr'
            if p in constexprs else '*fp32' if p.endswith('_ptr') else 'i32')
        for p in inspect.signature(kernel.fn).parameters
    }
    compiled = triton.compile(
        ASTSource(fn=kernel, signature=sig, constexprs=constexprs),
        target=GPUTarget('cuda', 90, 32),
        options=dict(num_warps=num_warps))
    ptxas = os.path.join(
        os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin', 'ptxas')
    ptx = compiled.asm['ptx']
    proc = subprocess.run([ptxas, '-arch=sm_90a', '-v', '-', '-o', os.devnull],
                          input=ptx,
                          capture_output=True,
                          text=True)
    if proc.returncode != 0:  # older ptxas without stdin support
        import tempfile
        with tempfile.NamedTemporaryFile('w', suffix='.ptx') as f:
            f.write(ptx)
            f.flush()
            proc = subprocess.run(
                [ptxas, '-arch=sm_90a', '-v', f.name, '-o', os.devnull],
                capture_output=True,
                text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize('per_group,d_state', [(192, 1), (12, 16)])
def test_triton_kernels_compile_for_sm90(per_group, d_state):
    """No GPU here: lower both kernels to sm_90 machine code and check that
    ptxas needs no register spills (the tile sizes of _config)."""
    import zeromamba_mm.ops.selective_scan_triton as tri
    if tri.triton is None or tri.triton_interpreted():
        pytest.skip('needs compiled (not interpreted) triton')
    if not os.path.exists(
            os.path.join(
                os.path.dirname(tri.triton.__file__), 'backends', 'nvidia',
                'bin', 'ptxas')):
        pytest.skip("triton's bundled ptxas is missing")
    import triton.language as tl
    block_d, block_n, block_l, warps = tri._config(per_group, d_state, 3136)
    common = dict(
        N=d_state,
        BLOCK_D=block_d,
        BLOCK_N=block_n,
        BLOCK_L=block_l,
        HAS_D=True,
        HAS_BIAS=True,
        SOFTPLUS=True,
        ACC=tl.float32)
    for kernel, extra in ((tri._fwd_kernel, dict(SAVE_STATES=True)),
                          (tri._bwd_kernel, dict(HAS_GLAST=True))):
        report = _ptxas_report(kernel, dict(common, **extra), warps)
        assert '0 bytes spill stores' in report, report


# ------------------------------------------------------ empty sequences


@pytest.mark.parametrize('backend', ['auto', 'torch', 'ref'])
@pytest.mark.parametrize('last', [False, True])
def test_empty_sequence(backend, last):
    # L = 0: empty y, the zero initial state, zero gradients (not a
    # ZeroDivisionError from the chunking).
    x = make_inputs(length=0, d_state=3, groups=2, with_z=True)
    y, s, grads = run(x, backend, last=last)
    assert y.shape == (2, 8, 0) and y.dtype == x['u'].dtype
    if last:
        assert s.shape == (2, 8, 3) and s.dtype == torch.float64
        assert not s.any()
    assert grads.keys() == {k for k in ARGS if x[k] is not None}
    for k, v in grads.items():
        assert v.shape == x[k].shape and not v.any(), k


def test_empty_sequence_fixed_bc_float32():
    u = torch.zeros(3, 4, 0)
    y, s = selective_scan(
        u, u, -torch.ones(4, 2), torch.ones(4, 2), torch.ones(4, 2),
        return_last_state=True)
    assert y.shape == (3, 4, 0) and s.shape == (3, 4, 2)
    assert s.dtype == torch.float32 and not s.any()


def test_fixed_bc_shape_is_checked():
    x = make_inputs(dtype=torch.float32)
    x['B'] = torch.zeros(8, 2)  # d_state is 1
    with pytest.raises(ValueError, match=r'fixed B must be \(D=8, N=1\)'):
        selective_scan(**x)


def test_torch_different_groupings_of_b_and_c():
    x = make_inputs(d_state=2, groups=4, length=40)
    x['C'] = torch.randn(2, 2, 2, 40, dtype=torch.float64,
                         requires_grad=True)  # G = 2 while B has G = 4
    assert_match(x, 'torch', rtol=1e-10, atol=1e-11, last=True)


# ------------------------------------------------------------ workspace


def test_workspace_roles():
    ws = torch_mod._Workspace(torch.device('cpu'), torch.float32)
    a = ws.take('decay', (4, 5))
    with pytest.raises(RuntimeError, match="'decay' is already live"):
        ws.take('decay', (2, ))
    ws.release('decay')
    # A released role's memory goes to the next role that fits.
    b = ws.take('state', (2, 10))
    assert b.data_ptr() == a.data_ptr()
    ws.rename('state', 'dC_terms')
    with pytest.raises(KeyError):
        ws.release('state')
    with ws.scope():
        c = ws.take('big', (100, ))  # nothing free fits: a new buffer
        assert c.data_ptr() != b.data_ptr()
    assert set(ws.live) == {'dC_terms'}
    ws.release('dC_terms')
    assert not ws.live and len(ws.free) == 2


@pytest.mark.parametrize('length,chunks', [(6, 1), (40, 2)])
def test_chunk_layout_copies_only_for_several_chunks(length, chunks):
    # One chunk (short sequences, e.g. V2M's rows): the chunk layout is the
    # input layout, so _to_chunks gives a view and _states renames the
    # buffer; with several chunks both copy, step t of chunk c at c*T + t.
    u = torch.zeros(1, 2, length)
    prob = torch_mod._Problem(u, torch.zeros(2, 1),
                              torch.zeros(1, 1, 1, length))
    assert prob.nc == chunks
    ws = torch_mod._Workspace(torch.device('cpu'), torch.float32)
    x = torch.arange(2. * length).view(1, 1, 2, 1, length)
    x_c = torch_mod._to_chunks(prob, ws, x, 'decay_c')
    assert x_c.shape == (1, 1, 2, 1, prob.T, chunks)
    assert x_c[0, 0, 1, 0, 3, chunks - 1] == length + (chunks - 1) * prob.T + 3
    assert (x_c.data_ptr() == x.data_ptr()) == (chunks == 1)
    assert ('decay_c' in ws.live) == (chunks > 1)
    # An input not needed afterwards hands its role over: released after the
    # copy, or renamed when the chunk layout is a view of it.
    inputs = ws.take('scan_inputs', x.shape).copy_(x)
    inputs_c = torch_mod._to_chunks(
        prob, ws, inputs, 'state_c', handover='scan_inputs')
    assert torch.equal(inputs_c, x_c)
    assert 'scan_inputs' not in ws.live and 'state_c' in ws.live
    assert (inputs_c.data_ptr() == inputs.data_ptr()) == (chunks == 1)
    ws.release('state_c')
    # The states, role 'state_c' in the chunk layout, back to the input
    # layout as role 'state'.
    state_c = ws.take('state_c', x.shape)
    state_c = state_c.copy_(x).unsqueeze(-1) if chunks == 1 else \
        state_c.view(x_c.shape).copy_(x_c)
    state = torch_mod._states(prob, ws, state_c)
    assert state.shape == x.shape and torch.equal(state, x)
    assert 'state' in ws.live and 'state_c' not in ws.live
