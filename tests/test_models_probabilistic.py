"""The PDML-inspired probabilistic region head and its Gaussian pieces."""
import math

import pytest
import torch
from mmpretrain.structures import DataSample
from torch import nn

from zeromamba_mm.models.heads import ProbabilisticRegionHead
from zeromamba_mm.models.losses.gaussian import (kl_to_standard_normal,
                                                 reparameterize,
                                                 wasserstein2_sq_diag)


def test_w2_and_kl_values():
    w2 = wasserstein2_sq_diag(
        torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]),
        torch.tensor([3.0, 4.0]), torch.tensor([2.0, 1.0]))
    assert w2.item() == pytest.approx(26.0)
    assert kl_to_standard_normal(torch.tensor([1.0]),
                                 torch.tensor([0.0])).item() == \
        pytest.approx(0.5)
    # σ² = e: ½(e − 1 − 1)
    assert kl_to_standard_normal(torch.tensor([0.0]),
                                 torch.tensor([1.0])).item() == \
        pytest.approx(0.359141, abs=1e-6)


def test_reparameterize_fixed_noise_reproducible():
    mean, log_var = torch.randn(2, 3), torch.randn(2, 3)
    noise = torch.randn(4, 2, 3)
    a = reparameterize(mean, log_var, 4, noise)
    assert torch.equal(a, reparameterize(mean, log_var, 4, noise))
    assert torch.allclose(a, mean + torch.exp(0.5 * log_var) * noise)
    torch.manual_seed(5)
    b = reparameterize(mean, log_var, 4)
    torch.manual_seed(5)
    assert torch.equal(b, reparameterize(mean, log_var, 4))


def test_ce_shift_invariance_and_additive_variance_pitfall():
    z = torch.randn(3, 5)
    y = torch.tensor([0, 3, 1])
    ce = nn.functional.cross_entropy
    assert torch.allclose(ce(z, y), ce(z + 2.5, y))
    # an additive variance term (W2² to Dirac prototypes) gets no gradient
    mean = torch.randn(3, 4)
    std = torch.rand(3, 4, requires_grad=True)
    protos = torch.randn(5, 4)
    w2 = wasserstein2_sq_diag(mean[:, None], std[:, None], protos[None],
                              torch.zeros_like(protos)[None])
    ce(-w2, y).backward()
    assert std.grad.abs().max() < 1e-6


def _head(**kwargs):
    torch.manual_seed(0)
    head = ProbabilisticRegionHead(
        head=dict(
            type='zeromamba_mm.LinearAttributeHead',
            in_channels=6,
            num_attributes=4,
            attr_loss=dict(type='zeromamba_mm.AttributeRegressionLoss')),
        in_channels=6,
        **dict(dict(num_samples=3), **kwargs))
    head.set_class_semantics(
        nn.functional.normalize(torch.randn(5, 4), dim=1),
        seen_classes=[0, 2, 3])
    return head


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def _feats():
    # (region map, pooled vector): the linear base head reads the last.
    x = torch.randn(2, 6, 2, 3)
    return (x, x.mean(dim=(2, 3)))


def test_region_gaussians_are_region_plus_pooled():
    head = _head()
    feats = _feats()
    mean, log_var = head.region_gaussians(feats)
    assert mean.shape == (2, 6, 4)
    x = feats[0]
    r = 4  # region (h=1, w=1) in a 2x3 map
    joint = torch.cat([x[1, :, 1, 1], x[1].mean(dim=(1, 2))])
    assert torch.allclose(mean[1, r], head.mean_proj(joint), atol=1e-6)
    assert torch.allclose(log_var, torch.full_like(log_var, -4.0))


def test_region_loss_loop_rederivation():
    head = _head(kl_weight=0.1)
    mean = torch.randn(2, 3, 4)
    log_var = torch.randn(2, 3, 4) * 0.3
    noise = torch.randn(3, 2, 3, 4)
    labels = [2, 3]
    losses = head.region_losses(mean, log_var, _samples(labels), noise)
    seen = head.seen_attributes
    local = {2: 1, 3: 2}
    ce = l1 = 0.0
    n = 0
    for k in range(3):
        for b in range(2):
            for r in range(3):
                z = mean[b, r] + torch.exp(0.5 * log_var[b, r]) * noise[k, b,
                                                                        r]
                s = seen @ z
                ce += float(torch.logsumexp(s, 0) - s[local[labels[b]]])
                l1 += float((z - head.class_attributes[labels[b]]).abs()
                            .mean())
                n += 1
    assert losses['loss_region_ce'].item() == pytest.approx(ce / n, 1e-5)
    assert losses['loss_region_attr'].item() == pytest.approx(l1 / n, 1e-5)
    kl = 0.5 * (mean**2 + log_var.exp() - log_var - 1).sum(-1).mean()
    assert losses['loss_region_kl'].item() == pytest.approx(
        0.1 * kl.item(), 1e-5)


def test_sigma_to_zero_recovers_deterministic_head():
    head = _head()
    mean = torch.randn(2, 3, 4)
    log_var = torch.full((2, 3, 4), -math.inf)
    noise = torch.randn(3, 2, 3, 4)
    labels = [0, 3]
    losses = head.region_losses(mean, log_var, _samples(labels), noise)
    flat = mean.reshape(6, 4)
    det = head.base._get_loss(
        flat, _samples([0, 0, 0, 3, 3, 3]))
    assert torch.allclose(losses['loss_region_ce'], det['loss_ce'])
    assert torch.allclose(losses['loss_region_attr'], det['loss_attr'])


def test_variance_gets_gradient_and_prediction_unchanged():
    head = _head()
    feats = _feats()
    losses = head.loss(feats, _samples([0, 2]))
    losses['loss_region_ce'].backward()
    assert head.log_var_proj.bias.grad.abs().sum() > 0
    assert head.log_var_proj.weight.grad.abs().sum() > 0
    assert {'loss_ce', 'loss_attr', 'loss_region_ce', 'loss_region_attr',
            'loss_region_kl'} <= set(losses)
    assert torch.equal(head.predict_scores(feats),
                       head.base.predict_scores(feats))


def test_bad_input():
    with pytest.raises(ValueError, match='num_samples'):
        _head(num_samples=0)
    with pytest.raises(ValueError, match='kl_weight'):
        _head(kl_weight=-1.0)
    head = _head()
    with pytest.raises(ValueError, match='region map'):
        head.loss((torch.randn(2, 6), ), _samples([0, 2]))
    with pytest.raises(ValueError, match='in_channels'):
        head.region_gaussians((torch.randn(2, 5, 2, 2), ))
