"""IDML's introspective similarity and the introspective head."""
import math

import pytest
import torch

from zeromamba_mm.models.heads import IntrospectiveHead
from zeromamba_mm.models.losses.introspective import (
    IntrospectiveSimilarity, introspective_distance_figure,
    introspective_scores_classification, introspective_similarity_retrieval,
    pairwise_sq_distances)

T = torch.tensor


@pytest.mark.parametrize('alpha,beta,value,grad', [
    (1.0, 0.0, 1.0, 1.0),
    (1.0, 1.0, 0.367879, 0.735759),
    (2.0, 1.0, 1.213061, 0.909796),
    (0.5, 1.0, 0.067668, 0.406006),
])
def test_figure_form_values_and_derivative(alpha, beta, value, grad):
    a = T(alpha, dtype=torch.float64, requires_grad=True)
    d = introspective_distance_figure(a, T(beta, dtype=torch.float64))
    d.backward()
    assert d.item() == pytest.approx(value, abs=1e-6)
    assert a.grad.item() == pytest.approx(grad, abs=1e-6)
    # the closed form (1 + β/α)·exp(−β/α)
    closed = (1 + beta / alpha) * math.exp(-beta / alpha)
    assert a.grad.item() == pytest.approx(closed, abs=1e-12)


def test_figure_form_gradient_damping():
    alpha = T([1.3], dtype=torch.float64)
    grads = []
    for beta in [0.0, 0.2, 0.5, 1.0, 3.0]:
        a = alpha.clone().requires_grad_(True)
        introspective_distance_figure(a, T([beta],
                                           dtype=torch.float64)).backward()
        grads.append(a.grad.item())
    assert grads[0] == pytest.approx(1.0)
    assert all(g <= 1.0 + 1e-12 for g in grads)
    assert all(x > y for x, y in zip(grads, grads[1:]))
    # raising the uncertainty always lowers the distance
    b = T([0.7], dtype=torch.float64, requires_grad=True)
    introspective_distance_figure(alpha, b).backward()
    assert b.grad.item() == pytest.approx(-math.exp(-0.7 / 1.3))


def test_retrieval_form_values():
    f = introspective_similarity_retrieval
    assert f(T(0.5), T(1.0), T(1.0)).item() == pytest.approx(0.816060, 1e-6)
    # not the identity at β = 0
    assert f(T(0.5), T(0.0), T(1.0)).item() == pytest.approx(0.775336, 1e-6)
    assert f(T(0.5), T(6.0), T(2.0)).item() == pytest.approx(0.816060, 1e-6)


def test_classification_form_values_and_gradient():
    f = introspective_scores_classification
    assert f(T(2.0), T(0.0), T(3.0)).item() == pytest.approx(2.0, abs=0)
    assert f(T(2.0), T(3.0), T(3.0)).item() == pytest.approx(1.818731, 1e-6)
    z = T(2.0, dtype=torch.float64, requires_grad=True)
    f(z, T(3.0, dtype=torch.float64), T(3.0, dtype=torch.float64)).backward()
    assert z.grad.item() == pytest.approx(math.exp(-3 / 15), 1e-12)
    assert z.grad.item() < 1


def test_epsilon_guards_zero_distance():
    # a prediction equal to a prototype: the code would divide by zero
    out = introspective_scores_classification(T([[1.0]]), T([[2.0]]),
                                              T([[0.0]]))
    assert torch.isfinite(out).all()
    d = introspective_distance_figure(T([0.0]), T([1.0]))
    assert torch.isfinite(d).all() and d.item() == 0


def test_ranking_invariance_zero_uncertainty_prototypes():
    torch.manual_seed(0)
    alpha = torch.rand(3, 7) * 4 + 0.05
    beta = torch.rand(3, 1) * 2
    dist = introspective_distance_figure(alpha, beta)
    assert torch.equal(dist.argsort(dim=1), alpha.argsort(dim=1))


def test_module_identity_at_zero_uncertainty_and_loop():
    torch.manual_seed(1)
    pred = torch.randn(4, 5)
    cls = torch.nn.functional.normalize(torch.randn(6, 5), dim=1)
    sim = IntrospectiveSimilarity()
    assert torch.equal(sim(pred, torch.zeros(4), cls), pred @ cls.t())
    beta = torch.rand(4)
    out = sim(pred, beta, cls)
    for b in range(4):
        for c in range(6):
            z = float(pred[b] @ cls[c])
            d = float(((pred[b] - cls[c])**2).sum())
            ref = 1 - (1 - z) * math.exp(-float(beta[b]) / (5 * d))
            assert out[b, c].item() == pytest.approx(ref, rel=1e-5)
    ref_d = torch.einsum('bca,bca->bc', pred[:, None] - cls[None],
                         pred[:, None] - cls[None])
    assert torch.allclose(pairwise_sq_distances(pred, cls), ref_d)


def test_module_other_forms():
    pred = T([[1.0, 0.0]])
    cls = T([[0.6, 0.8], [1.0, 0.0]])
    fig = IntrospectiveSimilarity(form='figure', scale=2.0)
    d = pairwise_sq_distances(pred, cls)
    assert torch.allclose(
        fig(pred, T([0.5]), cls), -2 * d * torch.exp(-0.5 / d.clamp(1e-6)))
    ret = IntrospectiveSimilarity(form='retrieval', scale=3.0)
    cos = T([[0.6, 1.0]])
    ref = 3 * (1 - (1 - cos) * torch.exp(-(0.5 + 4) / (5 * d.clamp(1e-6))))
    assert torch.allclose(ret(pred, T([0.5]), cls), ref)


@pytest.mark.parametrize('kwargs,word', [
    (dict(form='cosine'), 'form'),
    (dict(gamma=0), 'gamma'),
    (dict(scale=-1.0), 'scale'),
    (dict(eps=float('nan')), 'eps'),
])
def test_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        IntrospectiveSimilarity(**kwargs)


def _head(**kwargs):
    head = IntrospectiveHead(
        head=dict(
            type='zeromamba_mm.LinearAttributeHead',
            in_channels=8,
            num_attributes=5,
            attr_loss=dict(
                type='zeromamba_mm.AttributeRegressionLoss',
                loss_weight=0.5)),
        in_channels=8,
        uncertainty_dim=6,
        **kwargs)
    torch.manual_seed(2)
    cls = torch.nn.functional.normalize(torch.randn(7, 5), dim=1)
    head.set_class_semantics(cls, seen_classes=[0, 1, 2, 4])
    return head, cls


def _samples(labels):
    from mmpretrain.structures import DataSample
    return [DataSample().set_gt_label(int(y)) for y in labels]


def test_head_uncertainty_gets_gradient_and_not_normalised():
    head, cls = _head()
    torch.manual_seed(3)
    feats = (torch.randn(4, 8), )
    with torch.no_grad():
        head.uncertainty.bias.fill_(0.5)  # keep the ReLU open
    u = head.uncertainty_embedding(feats)
    assert not torch.allclose(u.norm(dim=1), torch.ones(4))
    losses = head.loss(feats, _samples([0, 1, 4, 2]))
    losses['loss_ce'].backward()
    assert head.uncertainty.weight.grad.abs().sum() > 0
    # the collapse the note describes: a unit u gives a constant β
    beta = torch.nn.functional.normalize(u, dim=1).pow(2).sum(1)
    assert torch.allclose(beta, torch.ones(4))


def test_head_zero_uncertainty_equals_plain_head_and_predict():
    head, cls = _head()
    with torch.no_grad():
        head.uncertainty.weight.zero_()
        head.uncertainty.bias.fill_(-1.0)  # ReLU -> u = 0
    feats = (torch.randn(3, 8), )
    samples = _samples([0, 4, 2])
    ours = head.loss(feats, samples)
    plain = head.base.loss(feats, samples)
    assert torch.equal(ours['loss_ce'], plain['loss_ce'])
    assert torch.equal(ours['loss_attr'], plain['loss_attr'])
    assert torch.equal(head.predict_scores(feats),
                       head.base.predict_scores(feats))
    assert torch.allclose(head.predict_scores(feats),
                          head.base.fc(feats[0]) @ cls.t())


def test_head_training_scores_introspective_test_plain_and_switch():
    head, cls = _head()
    with torch.no_grad():
        head.uncertainty.bias.fill_(1.0)
    feats = (torch.randn(3, 8), )
    pred = head.base(feats)
    plain = pred @ cls.t()
    assert torch.equal(head.predict_scores(feats), plain)
    intro = head.introspective_scores(feats)
    assert not torch.allclose(intro, plain)
    head.test_introspective = True
    assert torch.equal(head.predict_scores(feats), intro)
    # the training CE is the CE of the introspective seen scores
    seen = torch.tensor([0, 1, 2, 4])
    target = torch.tensor([1, 3, 2])  # seen-local of [1, 4, 2]
    ref = torch.nn.functional.cross_entropy(intro[:, seen], target)
    got = head.loss(feats, _samples([1, 4, 2]))['loss_ce']
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


def test_head_errors():
    with pytest.raises(ValueError, match='activation'):
        _head(activation='tanh')
    head, _ = _head()
    with pytest.raises(ValueError, match='in_channels'):
        head.uncertainty_embedding((torch.randn(2, 9), ))
    with pytest.raises(ValueError, match='pooled'):
        head.uncertainty_embedding((torch.randn(2, 8, 3), ))
    with pytest.raises(TypeError, match='head'):
        IntrospectiveHead(head='ZeroMambaHead', in_channels=8)
