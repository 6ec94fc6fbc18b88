"""FLOP counting (zeromamba_mm.analysis, tools/analysis_tools/get_flops.py).

Each handle's count is checked against a hand derivation on small shapes;
the tool runs on the plugin's model families and VMamba-S lands on the
paper's figure.
"""
import importlib.util
import math
import os
import os.path as osp
import subprocess
import sys
import warnings

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from zeromamba_mm.analysis import (ScanSignature, add_flop_handles,
                                   get_model_complexity_info, scan_flop_handle,
                                   selective_scan_flops, use_inference_path)
from zeromamba_mm.models.utils.dct import DCTLevels
from zeromamba_mm.ops import selective_scan, selective_scan_2d
from zeromamba_mm.ops.tracing import opaque_to_tracer

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def count(model: nn.Module, *inputs) -> FlopAnalyzer:
    analyzer = add_flop_handles(FlopAnalyzer(model.eval(), inputs))
    return analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(
        False)


class Scans(nn.Module):
    """``calls`` selective scans of (batch, channels, length) with state
    size ``d_state``; parameters require grad, as in a real model."""

    def __init__(self,
                 channels,
                 d_state,
                 calls=1,
                 skip=True,
                 gate=False,
                 last_state=False,
                 backend='torch'):
        super().__init__()
        self.A = nn.Parameter(-torch.rand(channels, d_state) - 0.5)
        self.D = nn.Parameter(torch.randn(channels)) if skip else None
        self.bias = nn.Parameter(torch.randn(channels))
        self.calls, self.gate = calls, gate
        self.last_state, self.backend = last_state, backend

    def forward(self, u, B, C):
        y = u
        for _ in range(self.calls):
            out = selective_scan(
                y,
                u,
                self.A,
                B,
                C,
                D=self.D,
                z=u if self.gate else None,
                delta_bias=self.bias,
                delta_softplus=True,
                return_last_state=self.last_state,
                backend=self.backend)
            y = out[0] if self.last_state else out
        return y


def scan_inputs(batch, channels, length, d_state, groups=None):
    torch.manual_seed(0)
    shape = ((batch, d_state, length) if groups is None else
             (batch, groups, d_state, length))
    return (torch.randn(batch, channels,
                        length), torch.randn(shape), torch.randn(shape))


def test_selective_scan_flops_formula():
    # 9 BLDN, plus BDL for the skip and BDL for a fused gate.
    assert selective_scan_flops(2, 5, 3, 4, with_skip=False) == 1080
    assert selective_scan_flops(2, 5, 3, 4) == 1080 + 30
    assert selective_scan_flops(2, 5, 3, 4, with_gate=True) == 1080 + 60


@pytest.mark.parametrize(
    'kwargs, extra',
    [
        (dict(), 1),
        (dict(skip=False), 0),
        (dict(gate=True), 1),  # the gate is applied after the scan op
        (dict(groups=2), 1),
        (dict(last_state=True), 1),
    ])
def test_scan_handle_counts_one_call(kwargs, extra):
    batch, channels, length, d_state = 2, 6, 7, 3
    groups = kwargs.pop('groups', None)
    model = Scans(channels, d_state, **kwargs)
    analyzer = count(model,
                     *scan_inputs(batch, channels, length, d_state, groups))
    expected = (9 * batch * length * channels * d_state +
                extra * batch * channels * length)
    assert analyzer.total() == expected
    assert analyzer.by_operator() == {'selective_scan': expected}


class GatedScan(torch.autograd.Function):
    """Stands in for a Function that fuses the gate, with mamba-ssm's
    argument order ``(u, delta, A, B, C, D, z, ...)``; only its inputs'
    shapes matter to the handle."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D=None, z=None, delta_bias=None):
        return u.clone()

    @staticmethod
    def backward(ctx, grad):
        return (grad, ) + (None, ) * 7


@pytest.mark.parametrize('skip, gate', [(True, True), (False, True),
                                        (True, False)])
def test_signature_finds_skip_and_gate_among_the_arguments(skip, gate):
    """A None argument is a constant of the node: D and z are told apart by
    their positions, not by the number of tensor inputs."""
    batch, channels, length, d_state = 2, 4, 5, 3

    class Model(nn.Module):

        def forward(self, u, B, C):
            D = torch.ones(channels) if skip else None
            z = u if gate else None
            return GatedScan.apply(u, u, -torch.ones(channels, d_state), B, C,
                                   D, z, None)

    analyzer = count(Model(), *scan_inputs(batch, channels, length, d_state))
    analyzer.set_op_handle(
        'prim::PythonOp.GatedScan',
        scan_flop_handle(ScanSignature('GatedScan', 5, gate_index=6)))
    assert analyzer.by_operator()['selective_scan'] == selective_scan_flops(
        batch, length, channels, d_state, with_skip=skip, with_gate=gate)


def test_trace_of_repeated_scans_is_one_node_each():
    """Two scans with grad-requiring parameters traced with grad enabled:
    this raised ``unordered_map::at`` (the second call reused the first
    call's scratch buffers inside the traced Function). Each call is one
    node now, and the traced graph computes what the model does."""
    batch, channels, length, d_state = 1, 4, 40, 2
    model = Scans(channels, d_state, calls=2)
    inputs = scan_inputs(batch, channels, length, d_state)
    with torch.enable_grad():
        analyzer = count(model, *inputs)
        assert analyzer.total() == 2 * selective_scan_flops(
            batch, length, channels, d_state)
    with warnings.catch_warnings():  # shape checks, constant in a trace
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        graph, traced = torch.jit._get_trace_graph(model, inputs)
    scans = [n for n in graph.nodes() if n.kind() == 'prim::PythonOp']
    # d_state > 1 runs the time-major scan on CPU (selective_scan_states).
    assert [n.pyname() for n in scans] == ['SelectiveScanStatesFn'] * 2
    torch.testing.assert_close(traced, model(*inputs), rtol=0, atol=0)


_CACHE = {}


class CachedProduct(torch.autograd.Function):
    """``2 x @ w`` through a scratch buffer kept across calls (as the
    chunked scan's workspace on CPU), scaled row by row in place."""

    @staticmethod
    @opaque_to_tracer
    def forward(ctx, x, w):
        shape = (x.shape[0], w.shape[1])
        if _CACHE.get('buf') is None or _CACHE['buf'].shape != shape:
            _CACHE['buf'] = torch.empty(shape)
        buf = _CACHE['buf']
        buf.copy_(x @ w)
        for row in buf.unbind(0):
            row.mul_(2)
        ctx.save_for_backward(x, w)
        return buf.clone()

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return 2 * grad @ w.t(), 2 * x.t() @ grad


def test_opaque_function_is_one_node_without_its_inner_ops():
    """Undecorated, the second call fails to trace (``unordered_map::at``:
    the buffer comes from the first call) and the in-place row updates
    leave the inner matmul in the graph, to be counted beside the node.
    Decorated, each call is its node alone, and it still differentiates."""

    class TwoCalls(nn.Module):

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 3))

        def forward(self, x):
            return CachedProduct.apply(CachedProduct.apply(x, self.w), self.w)

    model, x = TwoCalls(), torch.randn(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        graph, traced = torch.jit._get_trace_graph(model, (x, ))
    kinds = [n.kind() for n in graph.nodes()]
    assert kinds.count('prim::PythonOp') == 2
    assert 'aten::matmul' not in kinds
    expected = model(x)
    torch.testing.assert_close(traced, 4 * x @ model.w @ model.w)
    torch.testing.assert_close(traced, expected, rtol=0, atol=0)
    expected.sum().backward()
    torch.testing.assert_close(
        model.w.grad, 4 * (x.t() @ torch.ones(2, 3) @ model.w.t() +
                           (x @ model.w).t() @ torch.ones(2, 3)))


TRITON_SCANS = """
from test_analysis_flops import Scans, count, scan_inputs
from zeromamba_mm.analysis import selective_scan_flops
model = Scans(6, 3, calls=2, backend='triton')
analyzer = count(model, *scan_inputs(2, 6, 7, 3))
assert analyzer.total() == 2 * selective_scan_flops(2, 7, 6, 3), analyzer.total()
print('counted', analyzer.total())
"""


def test_triton_scan_counts_in_interpreter():
    """The Triton backend's Function gets the same handle (run with
    TRITON_INTERPRET=1, which triton reads at import, in a fresh
    interpreter)."""
    env = dict(
        os.environ,
        TRITON_INTERPRET='1',
        PYTHONPATH=os.pathsep.join(
            [osp.dirname(__file__), REPO,
             os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-c', TRITON_SCANS],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'counted 4704' in proc.stdout


def test_matmul_handle_counts_broadcast_batches():
    """MMEngine counts (H, H) @ (B, C, H, W) as H·H·W; it is B·C·H·H·W."""

    class Products(nn.Module):

        def forward(self, left, x, right, vec):
            return (left @ x @ right).sum() + (vec @ right).sum()

    b, c, h, w = 2, 3, 4, 5
    analyzer = count(Products(), torch.randn(h, h), torch.randn(b, c, h, w),
                     torch.randn(w, w), torch.randn(w))
    assert analyzer.total() == b * c * h * w * h + b * c * h * w * w + w * w


def test_dct_levels_count_their_matrix_products():
    """DCT (``M_H x M_Wᵀ``) then the inverse DCT of each of K masked
    coefficient planes: (1 + K)·B·C·H·W·(H + W); the masks' element-wise
    products cost nothing in this convention."""
    b, c, h, w, k = 2, 3, 8, 6, 4
    analyzer = count(DCTLevels(num_levels=k), torch.randn(b, c, h, w))
    assert analyzer.total() == (1 + k) * b * c * h * w * (h + w)


@pytest.mark.parametrize('conv', [False, True])
def test_2d_scan_counts_both_passes(conv):
    """Per direction: a row pass (B·H sequences of W steps) and a column
    pass (B·W of H), each with its projections (x_proj: E -> R + N,
    dt_proj: R -> E, as batched matmuls), an optional causal depthwise
    conv of width k and a 1-D scan with skip."""
    b, e, h, w, n, r, k = 2, 3, 4, 5, 2, 2, 3
    corners = ('tl', 'tr', 'bl')
    g = len(corners)
    torch.manual_seed(0)

    class Scan2D(nn.Module):

        def __init__(self):
            super().__init__()
            self.p = nn.ParameterList([
                nn.Parameter(torch.randn(*s))
                for s in ((g, r + n, e), (g, e, r), (g, e), (g, e, n), (g, e),
                          (g, r + n, e), (g, e, r), (g, e), (g, e, n), (g, e))
            ])
            self.convs = nn.ParameterList([
                nn.Parameter(torch.randn(g, e, k)),
                nn.Parameter(torch.randn(g, e, k))
            ]) if conv else None

        def forward(self, x):
            p = list(self.p)
            for i in (3, 8):
                p[i] = -torch.exp(p[i])
            extra = {}
            if conv:
                extra = dict(
                    conv1_weight=self.convs[0], conv2_weight=self.convs[1])
            return selective_scan_2d(
                x, *p, corners=corners, backend='torch', **extra)

    analyzer = count(Scan2D(), torch.randn(b, e, h, w))
    tokens = b * h * w * g * e  # per pass: B'·L·(G·E) with B'·L = B·H·W
    per_pass = tokens * ((r + n) + r + 9 * n + 1 + (k if conv else 0))
    assert analyzer.total() == 2 * per_pass
    ops = analyzer.by_operator()
    assert ops['selective_scan'] == 2 * tokens * (9 * n + 1)


def test_get_model_complexity_info_reports_scan_and_uncounted_ops():
    model = Scans(4, 2, gate=True)
    info = get_model_complexity_info(
        model, inputs=scan_inputs(1, 4, 8, 2), show_arch=False)
    assert info['flops'] == selective_scan_flops(1, 8, 4, 2)
    assert info['params'] == 4 * 2 + 4 + 4
    assert info['activations'] == 4 * 8
    assert 'selective_scan' in info['flops_by_operator']
    assert info['uncounted_ops']['aten::silu'] == 1  # the gate
    assert '| model' in info['out_table']
    with pytest.raises(ValueError, match='exactly one of'):
        get_model_complexity_info(model)


def test_inference_path_needs_the_class_count():
    from mmpretrain.models import ImageClassifier

    import zeromamba_mm  # noqa: F401 (registers the heads)
    model = ImageClassifier(
        backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(3, )),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='zeromamba_mm.LinearAttributeHead',
            num_attributes=5,
            in_channels=512))
    with pytest.raises(ValueError, match='--num-classes'):
        use_inference_path(model)
    with pytest.raises(TypeError, match='no extract_feat and no head'):
        use_inference_path(nn.Linear(2, 2))
    use_inference_path(model, num_classes=7)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def load_get_flops():
    spec = importlib.util.spec_from_file_location(
        'tool_get_flops',
        osp.join(REPO, 'tools', 'analysis_tools', 'get_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_VMAMBA = """_base_ = [{base!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1], dims=16,
                            ssm_ratio=2.0, d_state=1, mlp_ratio=4.0)),
    head=dict(in_channels=128))
"""


@pytest.mark.parametrize(
    'config',
    [
        None,  # a tiny VMamba ImageClassifier (the T config with a small arch)
        'configs/zeromamba_demo.py',  # ZeroShotClassifier on VMamba
        'configs/demo/zeromamba-head_v2m-vmamba_zsl_demo.py',  # scan='2d'
        'configs/demo/zeromamba-head_globalmamba-vmamba_zsl_demo.py',  # 'dct'
        'configs/demo/zeromamba-head_globalmamba-vim_zsl_demo.py',  # Vim, DCT
    ])
def test_get_flops_tool_counts_every_family(config, capsys, tmp_path):
    if config is None:
        config = tmp_path / 'tiny_vmamba.py'
        config.write_text(
            TINY_VMAMBA.format(
                base=osp.join(REPO,
                              'configs/vmamba/vmamba-tiny_8xb128_in1k.py')))
    info = load_get_flops().main([osp.join(REPO, config), '--shape', '64'])
    assert math.isfinite(info['flops']) and info['flops'] > 0
    assert info['flops_by_operator']['selective_scan'] > 0
    out = capsys.readouterr().out
    assert 'Input shape: (3, 64, 64)' in out
    assert f'Flops: {info["flops_str"]}' in out


def test_get_flops_tool_builds_heads_without_their_word_vector_file(
        capsys, tmp_path):
    """DRMN's prototypes need word vectors (proto_init='w2v'); a missing
    file is replaced by a placeholder of the config's shape, with a note."""
    config = tmp_path / 'drmn_no_w2v.py'
    config.write_text(f"_base_ = [{osp.join(REPO, 'configs/drmn_demo.py')!r}]"
                      "\nmodel = dict(head=dict(word_vectors='missing.npy'))")
    info = load_get_flops().main([str(config), '--shape', '64'])
    assert math.isfinite(info['flops']) and info['flops'] > 0
    out = capsys.readouterr().out
    assert "model.head.word_vectors='missing.npy' does not exist" in out
    assert 'placeholder word vectors of the same shape (20, 300)' in out


def test_vmamba_small_matches_the_paper():
    """VMamba-S at 224 (batch 1): 8.7 GFLOPs in the VMamba paper."""
    from mmengine.config import Config
    from mmpretrain import get_model

    import zeromamba_mm  # noqa: F401
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/vmamba/vmamba-small_8xb128_in1k.py'))
    model = use_inference_path(get_model(cfg))
    with torch.no_grad():
        flops = count(model, torch.randn(1, 3, 224, 224)).total()
    assert abs(flops / 8.7e9 - 1) < 0.03
