"""OPERA's branch: contrastive loss, composition, gradient routing, EMA."""
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.models.utils import CosineEMA
from mmpretrain.structures import DataSample
from torch import nn

from zeromamba_mm.models.heads import LinearAttributeHead
from zeromamba_mm.models.losses.contrastive import moco_v3_contrastive
from zeromamba_mm.models.train_signals import OPERASignal


def test_contrastive_identity_keys():
    eye = torch.eye(2)
    assert moco_v3_contrastive(eye, eye, 1.0).item() == pytest.approx(
        0.626523, abs=1e-6)
    assert 2 * math.log(1 + math.exp(-1)) == pytest.approx(0.626523, 1e-6)
    assert moco_v3_contrastive(eye, eye, 0.2).item() == pytest.approx(
        0.002686, abs=1e-6)


def test_contrastive_asymmetric_and_loop():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    k = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    assert moco_v3_contrastive(q, k, 1.0).item() == pytest.approx(
        1.147444, abs=1e-6)
    torch.manual_seed(0)
    q, k = torch.randn(5, 3), torch.randn(5, 3)
    tau = 0.3
    qn = q / q.norm(dim=1, keepdim=True)
    kn = k / k.norm(dim=1, keepdim=True)
    ref = 0.0
    for i in range(5):
        logits = [float(qn[i] @ kn[j]) / tau for j in range(5)]
        ref += -logits[i] + math.log(sum(math.exp(v) for v in logits))
    ref = 2 * tau * ref / 5
    assert moco_v3_contrastive(q, k, tau).item() == pytest.approx(ref, 1e-5)


@pytest.mark.parametrize('tau', [0, -1.0, float('inf'), float('nan')])
def test_contrastive_bad_temperature(tau):
    with pytest.raises(ValueError, match='temperature'):
        moco_v3_contrastive(torch.eye(2), torch.eye(2), tau)


def test_ema_schedule_moco_momentum():
    ema = CosineEMA(nn.Linear(1, 1, bias=False), momentum=0.01)
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 10)
    for step, moco_m in ((0, 0.99), (5, 0.995), (10, 1.0)):
        avg, src = torch.zeros(1), torch.ones(1)
        ema.avg_func(avg, src, step)
        # avg = m·0 + (1 − m)·1
        assert 1 - avg.item() == pytest.approx(moco_m, abs=1e-9)


class _Backbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        return (torch.relu(self.conv(x)), )


def _setup(**kwargs):
    torch.manual_seed(0)
    head = LinearAttributeHead(in_channels=6, num_attributes=4)
    head.set_class_semantics(
        nn.functional.normalize(torch.randn(5, 4), dim=1),
        seen_classes=[0, 1, 3])
    model = SimpleNamespace(backbone=_Backbone(), head=head)
    signal = OPERASignal(
        in_channels=6,
        num_attributes=4,
        hid_channels=16,
        proj_channels=8,
        **kwargs)
    samples = []
    for label in [0, 1, 3, 1]:
        s = DataSample().set_gt_label(label)
        s.set_field([torch.randn(3, 8, 8), torch.randn(3, 8, 8)], 'views',
                    field_type='data')
        samples.append(s)
    MessageHub.get_current_instance().update_info('max_iters', 100)
    return model, signal, samples


def _loss(model, signal, samples):
    return signal.loss(model, torch.zeros(4, 3, 8, 8), (), samples)


def test_loss_composition():
    model, signal, samples = _setup(loss_weight=2.0)
    captured = {}
    orig_ctr = moco_v3_contrastive

    def hierarchy(model_, view):
        q, attr = OPERASignal.hierarchy(signal, model_, view)
        captured.setdefault('q', []).append(q)
        captured.setdefault('attr', []).append(attr)
        return q, attr

    signal.hierarchy = hierarchy
    losses = _loss(model, signal, samples)
    with torch.no_grad():
        k1 = signal.momentum_encoder(torch.stack([s.views[0]
                                                  for s in samples]))
        k2 = signal.momentum_encoder(torch.stack([s.views[1]
                                                  for s in samples]))
    q1, q2 = captured['q']
    self_loss = orig_ctr(q1, k2, 1.0) + orig_ctr(q2, k1, 1.0)
    labels = torch.tensor([0, 1, 2, 1])
    seen = model.head.seen_attributes
    ce = sum(
        nn.functional.cross_entropy(a @ seen.t(), labels)
        for a in captured['attr'])
    assert losses['loss_opera_self'].item() == pytest.approx(
        2.0 * 0.5 * self_loss.item(), rel=1e-5)
    assert losses['loss_opera_ce'].item() == pytest.approx(
        2.0 * 0.5 * ce.item(), rel=1e-5)
    parts = signal.combine(torch.tensor(3.0), torch.tensor(5.0),
                           torch.tensor(7.0))
    assert sum(parts.values()).item() == pytest.approx(
        2.0 * (0.5 * 3 + 0.5 * 5 + 0.5 * 7))


def _grads(module):
    return [p.grad for p in module.parameters()]


def test_gradient_routing():
    model, signal, samples = _setup()
    losses = _loss(model, signal, samples)
    losses['loss_opera_self'].backward(retain_graph=True)
    assert all(g is None or g.abs().sum() == 0
               for g in _grads(signal.full_projector))
    assert any(g is not None and g.abs().sum() > 0
               for g in _grads(signal.predictor))
    assert all(not p.requires_grad
               for p in signal.momentum_encoder.parameters())
    assert all(p.grad is None for p in signal.momentum_encoder.parameters())
    for module in (signal, model.backbone):
        module.zero_grad(set_to_none=True)
    losses['loss_opera_ce'].backward()
    for module in (signal.full_projector, signal.predictor,
                   signal.projector, model.backbone):
        assert any(g is not None and g.abs().sum() > 0
                   for g in _grads(module)), module


def test_momentum_copy_follows_ema_rule_only():
    model, signal, samples = _setup()
    _loss(model, signal, samples)  # creates the copy (= online weights)
    ema_w = signal.momentum_encoder.module[0].backbone.conv.weight
    assert torch.equal(ema_w, model.backbone.conv.weight)
    old = ema_w.clone()
    with torch.no_grad():
        model.backbone.conv.weight.add_(1.0)
    _loss(model, signal, samples)  # steps = 1 of max_iters = 100
    m_upd = 0.01 * (1 + math.cos(math.pi * 1 / 100)) / 2
    assert torch.allclose(
        ema_w, old + m_upd * (model.backbone.conv.weight - old), atol=1e-6)


def test_momentum_copy_survives_state_dict_round_trip():
    model, signal, samples = _setup()
    _loss(model, signal, samples)
    _loss(model, signal, samples)
    state = signal.state_dict()
    assert any(k.startswith('momentum_encoder.') for k in state)
    _, fresh, _ = _setup()
    fresh.load_state_dict(state, strict=True)
    assert fresh.momentum_encoder is None
    fresh.update_momentum_encoder(model)
    assert int(fresh.momentum_encoder.steps) == 3
    saved = {
        k[len('momentum_encoder.'):]: v
        for k, v in state.items() if k.startswith('momentum_encoder.')
    }
    # the restored copy continued from the saved one, not from the online
    restored = fresh.momentum_encoder.module[0].backbone.conv.weight
    assert not torch.equal(restored, model.backbone.conv.weight) or \
        torch.equal(saved['module.0.backbone.conv.weight'],
                    model.backbone.conv.weight)


def test_bad_input():
    model, signal, samples = _setup()
    with pytest.raises(ValueError, match='temperature'):
        OPERASignal(6, 4, temperature=0.0)
    with pytest.raises(ValueError, match='momentum'):
        OPERASignal(6, 4, momentum=1.5)
    with pytest.raises(ValueError, match='loss_weight'):
        OPERASignal(6, 4, loss_weight=-1)
    for s in samples:
        s.views = s.views + [s.views[0]]
    with pytest.raises(ValueError, match='num_views'):
        _loss(model, signal, samples)
    bare = [DataSample().set_gt_label(0) for _ in range(2)]
    with pytest.raises(ValueError, match='MultiView'):
        _loss(model, signal, bare)
    model_bad = SimpleNamespace(
        backbone=nn.Conv2d(3, 5, 1), head=model.head)
    _, signal2, samples2 = _setup()
    with pytest.raises(ValueError, match='in_channels'):
        _loss(model_bad, signal2, samples2)
