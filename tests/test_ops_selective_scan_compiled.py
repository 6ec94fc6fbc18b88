"""The compiled CPU selective scan against the float64 reference, and its
switch (``ZEROMAMBA_CPU_SCAN``) in the dispatch.

The kernel is built once per test session (``compiled_kernel`` fixture),
into the per-user cache or ``$ZEROMAMBA_EXTENSIONS_DIR``; the tests that
need it are skipped, naming the cause, only when it cannot be built here
(no C++ compiler or ninja).
"""
import warnings

import pytest
import torch

import zeromamba_mm.ops.selective_scan_cpu_build as build
import zeromamba_mm.ops.selective_scan_dispatch as dispatch
from zeromamba_mm.ops import resolve_backend, selective_scan
from zeromamba_mm.ops.selective_scan_ref import selective_scan_ref

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')


@pytest.fixture(scope='session')
def compiled_kernel():
    """The built kernel module (skips the test when it cannot be built)."""
    module = build.load_cpu_kernel()
    if module is None:
        pytest.skip('the compiled CPU scan cannot be built here: '
                    f'{build.cpu_kernel_error()}')
    return module


def make_inputs(batch=2,
                channels=6,
                length=11,
                d_state=16,
                groups=2,
                dtype=torch.float64,
                fixed_bc=False,
                delta_scale=0.5,
                with_extras=True,
                seed=0):
    """Random leaf tensors (A negative, as Mamba's)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    if fixed_bc:
        B, C = rnd(channels, d_state), rnd(channels, d_state)
    else:
        B = rnd(batch, groups, d_state, length)
        C = rnd(batch, groups, d_state, length)
    x = dict(
        u=rnd(batch, channels, length),
        delta=rnd(batch, channels, length, scale=delta_scale),
        A=-(torch.rand(channels, d_state, generator=g) * 2 + 0.1).to(dtype),
        B=B,
        C=C,
        D=rnd(channels) if with_extras else None,
        z=rnd(batch, channels, length) if with_extras else None,
        delta_bias=rnd(channels, scale=0.5) if with_extras else None)
    for v in x.values():
        if v is not None:
            v.requires_grad_(True)
    return x


def outputs_and_grads(x, backend, softplus=True):
    """y, last state and the gradients of every input of a random linear
    loss of both (the loss weights are fixed by a seed)."""
    y, last = selective_scan(
        **x, delta_softplus=softplus, return_last_state=True, backend=backend)
    g = torch.Generator().manual_seed(1)
    loss = (y.double() *
            torch.randn(y.shape, generator=g, dtype=torch.float64)).sum() + (
                last.double() * torch.randn(
                    last.shape, generator=g, dtype=torch.float64)).sum()
    names = [k for k in NAMES if x[k] is not None]
    grads = torch.autograd.grad(loss, [x[k] for k in names])
    return y, last, dict(zip(names, grads))


def as_float64(x):
    return {
        k: None if v is None else v.detach().double().requires_grad_(True)
        for k, v in x.items()
    }


def assert_matches_reference(x, rtol, atol, softplus=True):
    y_ref, last_ref, g_ref = outputs_and_grads(as_float64(x), 'ref', softplus)
    y, last, grads = outputs_and_grads(x, 'compiled', softplus)
    assert y.dtype == x['u'].dtype and y.shape == x['u'].shape
    torch.testing.assert_close(y.double(), y_ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(last.double(), last_ref, rtol=rtol, atol=atol)
    assert grads.keys() == g_ref.keys()
    for k in grads:
        assert grads[k].dtype == x[k].dtype, k
        torch.testing.assert_close(
            grads[k].double(),
            g_ref[k],
            rtol=rtol,
            atol=atol,
            msg=lambda m: f'{k}: {m}')


@pytest.mark.parametrize('d_state', [1, 3, 16])
@pytest.mark.parametrize('groups', [1, 3])
def test_float64_matches_reference(compiled_kernel, d_state, groups):
    x = make_inputs(d_state=d_state, groups=groups)
    assert_matches_reference(x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('d_state', [1, 16])
def test_float32_matches_float64_reference(compiled_kernel, d_state):
    """float32 (the polynomial exp and softplus) against the exact answer."""
    x = make_inputs(d_state=d_state, dtype=torch.float32, length=40)
    assert_matches_reference(x, rtol=2e-4, atol=2e-4)


def test_without_softplus_bias_skip_gate(compiled_kernel):
    x = make_inputs(with_extras=False)
    with torch.no_grad():
        x['delta'].abs_()  # a step size without softplus
    assert_matches_reference(x, rtol=1e-10, atol=1e-10, softplus=False)


def test_fixed_bc_and_one_group_layout(compiled_kernel):
    """Fixed (D, N) B/C (a broadcasting view in the kernel) and
    (batch, N, L) B/C of one group."""
    assert_matches_reference(make_inputs(fixed_bc=True), 1e-10, 1e-10)
    x = make_inputs(groups=1)
    with torch.no_grad():
        for k in ('B', 'C'):
            x[k] = x[k][:, 0].clone().requires_grad_(True)
    assert_matches_reference(x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_strong_decay_stays_finite(compiled_kernel, dtype):
    """delta * |A| of about 50 per step over 300 steps: the decays underflow
    (float32's polynomial exp flushes below 2^-126), nothing overflows."""
    x = make_inputs(d_state=16, length=300, dtype=dtype, delta_scale=0.0)
    with torch.no_grad():
        x['delta'].fill_(25.0)
        x['A'].mul_(20)
    assert_matches_reference(x, rtol=1e-4, atol=1e-4)
    y, last, grads = outputs_and_grads(x, 'compiled')
    assert torch.isfinite(y).all() and torch.isfinite(last).all()
    assert all(torch.isfinite(g).all() for g in grads.values())


def test_threads_give_the_same_gradients(compiled_kernel):
    """dB/dC are summed over per-thread partitions: 1 and 2 threads agree."""
    x = make_inputs(channels=8, groups=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, _, one = outputs_and_grads(x, 'compiled')
        torch.set_num_threads(2)
        _, _, two = outputs_and_grads(x, 'compiled')
    finally:
        torch.set_num_threads(threads)
    for k in one:
        torch.testing.assert_close(one[k], two[k], rtol=1e-12, atol=1e-12)


def test_auto_switch(compiled_kernel, monkeypatch):
    u = torch.randn(1, 4, 8)
    monkeypatch.delenv(build.CPU_SCAN_ENV, raising=False)
    assert resolve_backend('auto', u) == 'compiled'
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'compiled')
    assert resolve_backend('auto', u) == 'compiled'
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'torch')
    assert resolve_backend('auto', u) == 'torch'
    # A forced backend is what it says, whatever the switch.
    assert resolve_backend('compiled', u) == 'compiled'
    # d_state 1 (VMamba) stays on the chunked torch scan unless the switch
    # says compiled.
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'auto')
    assert resolve_backend('auto', u, d_state=1) == 'torch'
    assert resolve_backend('auto', u, d_state=16) == 'compiled'
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'compiled')
    assert resolve_backend('auto', u, d_state=1) == 'compiled'
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'fast')
    with pytest.raises(ValueError, match='ZEROMAMBA_CPU_SCAN.*auto'):
        resolve_backend('auto', u)


def test_tracing_sees_the_torch_function(compiled_kernel, monkeypatch):
    """A jit trace (FLOP counting) records the pure-PyTorch Function."""
    monkeypatch.delenv(build.CPU_SCAN_ENV, raising=False)
    x = {
        k: None if v is None else v.detach()
        for k, v in make_inputs(dtype=torch.float32).items()
    }

    def fn(u):
        return selective_scan(u, *[x[k] for k in NAMES[1:]])

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        graph, _ = torch.jit._get_trace_graph(fn, (x['u'], ))
    names = [n.pyname() for n in graph.nodes() if n.kind() == 'prim::PythonOp']
    assert names == ['SelectiveScanStatesFn']


@pytest.fixture
def failed_build(monkeypatch):
    """The kernel as if it could not be built (no compiler)."""
    monkeypatch.setattr(build, '_STATE',
                        {'error': "no C++ compiler ('c++' is not on PATH)"})


def test_failed_build_warns_once_then_uses_torch(failed_build, monkeypatch):
    monkeypatch.delenv(build.CPU_SCAN_ENV, raising=False)
    u = torch.randn(1, 4, 8)
    with pytest.warns(RuntimeWarning) as record:
        assert resolve_backend('auto', u) == 'torch'
        assert resolve_backend('auto', u) == 'torch'
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert 'no C++ compiler' in messages[0]
    assert 'ZEROMAMBA_CPU_SCAN=torch' in messages[0]


def test_failed_build_under_compiled_raises(failed_build, monkeypatch):
    u = torch.randn(1, 4, 8)
    with pytest.raises(RuntimeError, match='no C\\+\\+ compiler'):
        resolve_backend('compiled', u)
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'compiled')
    with pytest.raises(RuntimeError, match='ZEROMAMBA_CPU_SCAN=auto'):
        resolve_backend('auto', u)


def test_switch_torch_builds_nothing(monkeypatch):
    """Under ZEROMAMBA_CPU_SCAN=torch the dispatch never tries a build."""
    monkeypatch.setattr(build, '_STATE', {})
    monkeypatch.setenv(build.CPU_SCAN_ENV, 'torch')

    def no_build():
        raise AssertionError('built under ZEROMAMBA_CPU_SCAN=torch')

    monkeypatch.setattr(build, '_build', no_build)
    x = make_inputs(dtype=torch.float32)
    y = selective_scan(**x, delta_softplus=True)
    args = {k: v for k, v in as_float64(x).items()}
    torch.testing.assert_close(
        y.double(),
        selective_scan_ref(**args, delta_softplus=True),
        rtol=1e-4,
        atol=1e-4)
    assert dispatch.resolve_backend('auto', x['u']) == 'torch'


def test_build_dir_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv('ZEROMAMBA_EXTENSIONS_DIR', raising=False)
    monkeypatch.delenv('TORCH_EXTENSIONS_DIR', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert build.extensions_dir() == str(tmp_path / 'zeromamba_mm' /
                                         'extensions')
    name, directory, _ = build._build_spec()
    assert directory.startswith(str(tmp_path)) and name in directory
