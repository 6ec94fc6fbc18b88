"""The Mamba mixers' causal depthwise conv1d against F.conv1d."""
import pytest
import torch
import torch.nn.functional as F

from zeromamba_mm.models.backbones.vim_layers import channel_linear
from zeromamba_mm.ops import causal_depthwise_conv1d


def plain_conv(x, weight, bias):
    """Mamba's conv as its released code runs it: pad K - 1 on the left."""
    taps = weight.shape[-1]
    return F.conv1d(F.pad(x, (taps - 1, 0)), weight, bias, groups=x.shape[1])


def test_conv_values_by_hand():
    # y[t] = b + w0 x[t-2] + w1 x[t-1] + w2 x[t], zeros before t = 0.
    x = torch.tensor([[[1., 2., 3., 4.]]], dtype=torch.float64)
    w = torch.tensor([[[10., 100., 1000.]]], dtype=torch.float64)
    got = causal_depthwise_conv1d(x, w, torch.tensor([0.5]).double())
    want = [[[1000.5, 2100.5, 3210.5, 4320.5]]]
    assert got.tolist() == want


@pytest.mark.parametrize('length', [1, 2, 3, 4, 5, 17])
@pytest.mark.parametrize('with_bias', [True, False])
def test_conv_matches_conv1d_with_gradients(length, with_bias):
    torch.manual_seed(length)
    kw = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 6, length, **kw)
    weight = torch.randn(6, 1, 4, **kw)
    bias = torch.randn(6, **kw) if with_bias else None
    got = causal_depthwise_conv1d(x, weight, bias)
    want = plain_conv(x, weight, bias)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    g = torch.randn_like(want)
    inputs = [t for t in (x, weight, bias) if t is not None]
    grads = torch.autograd.grad(got, inputs, g)
    wants = torch.autograd.grad(want, inputs, g)
    for a, b in zip(grads, wants):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_conv_of_strided_float32_input():
    # The mixers pass x as a channel slice of the in-projection's output.
    torch.manual_seed(0)
    xz = torch.randn(3, 2 * 32, 50)
    x = xz[:, :32]
    weight, bias = torch.randn(32, 1, 4), torch.randn(32)
    got = causal_depthwise_conv1d(x, weight, bias)
    want = plain_conv(x.double(), weight.double(), bias.double())
    assert got.is_contiguous()
    assert (got.double() - want).abs().max() <= 1e-5


@pytest.mark.filterwarnings('ignore::FutureWarning')
def test_trace_records_one_conv1d():
    # FLOP counting and ONNX export trace the model: one conv operator.
    x, weight, bias = torch.randn(1, 4, 9), torch.randn(4, 1,
                                                        4), torch.randn(4)
    traced = torch.jit.trace(
        lambda a: causal_depthwise_conv1d(a, weight, bias), x)
    kinds = [node.kind() for node in traced.graph.nodes()]
    assert 'aten::_convolution' in kinds and 'aten::addcmul_' not in kinds
    torch.testing.assert_close(traced(x), plain_conv(x, weight, bias))


def test_channel_linear_is_a_linear_layer_over_channels():
    torch.manual_seed(1)
    weight = torch.randn(5, 7, dtype=torch.float64)
    tokens = torch.randn(3, 11, 7, dtype=torch.float64)  # (B, L, C_in)
    got = channel_linear(weight, tokens.transpose(1, 2))
    assert got.shape == (3, 5, 11) and got.is_contiguous()
    torch.testing.assert_close(got, F.linear(tokens, weight).transpose(1, 2))


def test_bfloat16_input_accumulates_in_float32():
    # As conv1d under autocast: x's dtype out, rounded once at the end
    # (within half a bf16 unit in the last place of the exact sum).
    torch.manual_seed(2)
    x = torch.randn(2, 8, 30).bfloat16()
    weight, bias = torch.randn(8, 1, 4), torch.randn(8)
    got = causal_depthwise_conv1d(x, weight, bias)
    want = plain_conv(x.double(), weight.double(), bias.double())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), want, rtol=2**-8, atol=1e-6)
