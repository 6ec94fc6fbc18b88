"""MFFNeck: DRMN's multi-level feature fusion."""
import pytest
import torch
import torch.nn.functional as F

from zeromamba_mm.models.necks import MFFNeck


def _feats(b=2):
    torch.manual_seed(0)
    return (torch.randn(b, 6, 8, 8), torch.randn(b, 10, 4, 4))


@pytest.mark.parametrize('fuse', ['add', 'concat'])
def test_mff_equals_last_stage_at_init(fuse):
    neck = MFFNeck(in_channels=(6, 10), fuse=fuse)
    feats = _feats()
    for mode in (neck.train, neck.eval):
        mode()
        (out, ) = neck(feats)
        assert torch.equal(out, feats[1])


def test_mff_add_matches_the_equation_and_learns():
    neck = MFFNeck(in_channels=(6, 10), fuse='add')
    with torch.no_grad():
        neck.norm.weight.uniform_(0.5, 1.5)
        neck.norm.bias.uniform_(-1, 1)
        neck.norm.running_mean.uniform_(-1, 1)
        neck.norm.running_var.uniform_(0.5, 2)
    neck.eval()
    early, last = _feats()
    (out, ) = neck((early, last))
    # F = S_l + BN(W P), P = 2x2 average pool of S_e, BN with running stats.
    pooled = torch.zeros(2, 6, 4, 4)
    for i in range(4):
        for j in range(4):
            pooled[:, :, i, j] = early[:, :, 2 * i:2 * i + 2,
                                       2 * j:2 * j + 2].mean(dim=(2, 3))
    w = neck.proj.weight[:, :, 0, 0]
    proj = torch.einsum('oc,bchw->bohw', w, pooled)
    bn = neck.norm
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    expected = last + (proj - bn.running_mean[:, None, None]
                       ) * scale[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)

    # Zero-initialised BN still receives gradient, so the fusion can grow.
    neck = MFFNeck(in_channels=(6, 10))
    neck.train()
    (out, ) = neck(_feats())
    (out * torch.randn_like(out)).sum().backward()
    assert neck.norm.weight.grad.abs().sum() > 0


def test_mff_concat_matches_the_equation():
    neck = MFFNeck(in_channels=(6, 10), fuse='concat')
    with torch.no_grad():
        neck.norm.weight.fill_(1.0)
    neck.eval()
    early, last = _feats()
    (out, ) = neck((early, last))
    pooled = F.avg_pool2d(early, 2)
    proj = torch.einsum('oc,bchw->bohw', neck.proj.weight[:, :, 0, 0], pooled)
    mixed = torch.einsum('oc,bchw->bohw', neck.mix.weight[:, :, 0, 0],
                         torch.cat([last, proj], dim=1))
    bn = neck.norm
    expected = last + (mixed - bn.running_mean[:, None, None]
                       ) / torch.sqrt(bn.running_var + bn.eps)[:, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_use_mff_false_is_the_last_stage_without_parameters():
    neck = MFFNeck(in_channels=(6, 10), use_mff=False)
    assert not list(neck.parameters())
    feats = _feats()
    assert neck(feats)[0] is feats[1]


def test_missing_stages_name_out_indices():
    neck = MFFNeck(in_channels=(6, 10))
    with pytest.raises(ValueError, match='out_indices'):
        neck((torch.randn(2, 10, 4, 4), ))
    with pytest.raises(ValueError, match='out_indices'):
        neck((torch.randn(2, 7, 8, 8), torch.randn(2, 10, 4, 4)))
    with pytest.raises(ValueError, match='out_indices'):
        MFFNeck(in_channels=(10, ))
    with pytest.raises(ValueError, match="'add', 'concat'"):
        MFFNeck(in_channels=(6, 10), fuse='sum')
