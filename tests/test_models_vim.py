"""Vim / GlobalMamba / V2M backbone against plain re-derivations."""
import pytest
import torch
import torch.nn.functional as F
from test_ops_selective_scan_2d import naive_2d

from zeromamba_mm.checkpoint import CheckpointMismatchError
from zeromamba_mm.models.backbones.vim import Vim
from zeromamba_mm.models.backbones.vim_layers import (Mamba2DMixer,
                                                      MambaMixer, VimBlock)
from zeromamba_mm.ops import selective_scan


def naive_scan(u, delta, A, B, C, D, z, delta_bias):
    """mamba-ssm's ``selective_scan_ref`` semantics as a loop: softplus
    steps, ``h = exp(dA) h + d B u``, ``y = (C.h + D u) * silu(z)``.
    u, delta, z: (b, E, L); B, C: (b, N, L); A: (E, N)."""
    delta = F.softplus(delta + delta_bias[:, None])
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(u.shape[-1]):
        d = delta[..., t, None]
        h = torch.exp(d * A) * h + d * B[:, None, :, t] * u[..., t, None]
        y = (h * C[:, None, :, t]).sum(-1) + D * u[..., t]
        ys.append(y * F.silu(z[..., t]))
    return torch.stack(ys, -1)


def test_z_gated_scan_follows_mamba_ssm_reference():
    torch.manual_seed(0)
    b, e, n, length = 2, 3, 4, 7
    u, delta, z = (
        torch.randn(b, e, length, dtype=torch.float64) for _ in range(3))
    A = -torch.rand(e, n, dtype=torch.float64) - 0.1
    B, C = (torch.randn(b, n, length, dtype=torch.float64) for _ in range(2))
    D, bias = torch.randn(
        e, dtype=torch.float64), torch.randn(
            e, dtype=torch.float64)
    got = selective_scan(
        u,
        delta,
        A,
        B,
        C,
        D=D,
        z=z,
        delta_bias=bias,
        delta_softplus=True,
        backend='torch')
    torch.testing.assert_close(got, naive_scan(u, delta, A, B, C, D, z, bias))


def naive_branch(branch, x, z):
    """One direction of a Mamba mixer, token by token. x, z: (b, E, L)."""
    k = branch.conv1d.weight.shape[-1]
    xp = F.pad(x, (k - 1, 0))
    w = branch.conv1d.weight[:, 0]
    u = torch.stack([(xp[..., t:t + k] * w).sum(-1) + branch.conv1d.bias
                     for t in range(x.shape[-1])], -1)
    u = F.silu(u)
    rank = branch.dt_proj.in_features
    n = branch.A_log.shape[1]
    dbl = torch.einsum('bel,ke->bkl', u, branch.x_proj.weight)
    dt, B, C = dbl[:, :rank], dbl[:, rank:rank + n], dbl[:, rank + n:]
    delta = torch.einsum('brl,er->bel', dt, branch.dt_proj.weight)
    return naive_scan(u, delta, -torch.exp(branch.A_log), B, C, branch.D, z,
                      branch.dt_proj.bias)


@pytest.mark.parametrize('direction', ['forward', 'bidirectional'])
def test_mamba_mixer_matches_rederivation(direction):
    torch.manual_seed(1)
    mixer = MambaMixer(8, d_state=3, dt_rank=2, direction=direction).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    xz = x @ mixer.in_proj.weight.T
    xi, z = xz[..., :16].transpose(1, 2), xz[..., 16:].transpose(1, 2)
    y = naive_branch(mixer.fwd, xi, z)
    if direction == 'bidirectional':
        y_b = naive_branch(mixer.bwd, xi.flip(-1), z.flip(-1)).flip(-1)
        y = (y + y_b) / 2
    want = y.transpose(1, 2) @ mixer.out_proj.weight.T
    torch.testing.assert_close(mixer(x), want)
    # The block is a pre-norm residual with RMSNorm.
    block = VimBlock(8, direction, mixer_cfg=dict(d_state=3)).double()
    normed = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(
        block(x, None), x + block.mixer(normed * block.norm.weight, None))


def test_forward_mixer_is_causal():
    torch.manual_seed(2)
    mixer = MambaMixer(8, direction='forward').double()
    x = torch.randn(1, 9, 8, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(mixer(x)[0, 4].sum(), x)
    assert g[0, 5:].abs().sum() == 0 and g[0, :5].abs().sum() > 0


@pytest.mark.parametrize('share', [True, False])
def test_2d_mixer_matches_rederivation(share):
    torch.manual_seed(3)
    mixer = Mamba2DMixer(
        4, d_state=2, dt_rank=1, d_conv=2, share_params=share).double()
    h, w = 3, 5
    x = torch.randn(2, h * w, 4, dtype=torch.float64)
    xz = (x @ mixer.in_proj.weight.T).transpose(1, 2).reshape(2, 16, h, w)
    u, z = xz[:, :8], xz[:, 8:]

    def params(branches, i):
        return dict(
            x_proj=torch.stack([b.x_proj.weight for b in branches]),
            dt_proj=torch.stack([b.dt_proj.weight for b in branches]),
            dt_bias=torch.stack([b.dt_proj.bias for b in branches]),
            A=torch.stack([-torch.exp(b.A_log) for b in branches]),
            D=torch.stack([b.D for b in branches]),
            conv_weight=torch.stack([b.conv1d.weight[:, 0] for b in branches]),
            conv_bias=torch.stack([b.conv1d.bias for b in branches]))

    p = {}
    for i, branches in ((1, mixer.pass1), (2, mixer.pass2)):
        q = params(branches, i)
        if share:
            q = {k: v.expand(4, *v.shape[1:]) for k, v in q.items()}
        p.update({
            f'x_proj{i}': q['x_proj'],
            f'dt_proj{i}': q['dt_proj'],
            f'dt_bias{i}': q['dt_bias'],
            f'A{i}': q['A'],
            f'D{i}': q['D'],
            f'conv{i}_weight': q['conv_weight'],
            f'conv{i}_bias': q['conv_bias']
        })
    y = naive_2d(u, z, p, ('tl', 'tr', 'bl', 'br'), 'row') * 0.5
    want = y.flatten(2).transpose(1, 2) @ mixer.out_proj.weight.T
    torch.testing.assert_close(mixer(x, (h, w)), want)


def tiny(arch, **kwargs):
    settings = dict(Vim.arch_zoo[arch], embed_dims=16, depth=2, d_state=2)
    return Vim(settings, img_size=32, patch_size=8, **kwargs)


def test_backbone_tokens_cls_and_outputs():
    torch.manual_seed(4)
    model = tiny('globalmamba-m*', out_indices=(0, 1)).eval()
    # 32 / 8 with K = 4 levels: grids 1, 1, 2, 4 -> 1 + 1 + 4 + 16 tokens.
    assert model.pos_grids == [(1, 1), (1, 1), (2, 2), (4, 4)]
    assert model.pos_embed.shape == (1, 23, 16)
    x = torch.randn(2, 3, 32, 32)
    tokens, _ = model.tokenize(x)
    seq = torch.cat(
        [tokens[:, :11],
         model.cls_token.expand(2, -1, -1), tokens[:, 11:]],
        1) + model.pos_embed
    for layer in model.layers:
        seq = layer(seq, (4, 4))
    out0, out1 = model(x)
    last = model.norm_f(seq)
    patch = torch.cat([last[:, :11], last[:, 12:]], 1)[:, -16:]
    torch.testing.assert_close(out1,
                               patch.transpose(1, 2).reshape(2, 16, 4, 4))
    assert out0.shape == (2, 16, 4, 4)
    pooled = tiny('globalmamba-m*', out_type='pooled')
    pooled.load_state_dict(model.state_dict())
    torch.testing.assert_close(pooled.eval()(x)[0], last[:, 11])
    mean = tiny('v2m-t', out_type='pooled').eval()
    maps = tiny('v2m-t').eval()
    maps.load_state_dict(mean.state_dict())
    torch.testing.assert_close(mean(x)[0], maps(x)[0].flatten(2).mean(-1))


def test_other_sizes_interpolate_pos_embed_and_bad_sizes_fail():
    model = tiny('vim-tiny')
    assert model(torch.randn(1, 3, 48, 32))[0].shape == (1, 16, 6, 4)
    dct = tiny('globalmamba-m*')
    assert dct(torch.randn(1, 3, 64, 64))[0].shape == (1, 16, 8, 8)
    with pytest.raises(ValueError, match='divisible by the patch size 8'):
        model(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match='divisible by the patch size 8'):
        dct(torch.randn(1, 3, 30, 32))


def test_bad_names_and_combinations():
    with pytest.raises(KeyError, match='v2m-t'):
        Vim('vim-huge')
    with pytest.raises(ValueError, match="'bidirectional'"):
        tiny('vim-tiny', mixer='zigzag')
    with pytest.raises(ValueError, match="'patch', 'dct'"):
        tiny('vim-tiny', tokenizer='wavelet')
    with pytest.raises(ValueError, match='class token'):
        tiny('v2m-t', pooling='cls')
    with pytest.raises(ValueError, match="cls_token='none'"):
        tiny('v2m-t', cls_token='middle')
    with pytest.raises(ValueError, match='one token grid'):
        tiny('v2m-t', tokenizer='dct')
    with pytest.raises(KeyError, match='unknown keys'):
        Vim(dict(embed_dims=8, depth=1, width=3))
    with pytest.raises(ValueError, match="'row'"):
        tiny('v2m-t', mixer_cfg=dict(axis_order='spiral'))


def test_checkpoint_of_another_variant_fails_strictly(tmp_path):
    v2m = tiny('v2m-t')
    path = str(tmp_path / 'v2m.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v
                for k, v in v2m.state_dict().items()
            }
        }, path)
    same = tiny('v2m-t', init_cfg=dict(type='Pretrained', checkpoint=path))
    same.init_weights()
    for k, v in v2m.state_dict().items():
        torch.testing.assert_close(same.state_dict()[k], v)
    other = tiny('vim-tiny', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError, match='layers.0.mixer'):
        other.init_weights()
