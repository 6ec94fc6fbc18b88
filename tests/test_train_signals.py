"""Mixup twin pass, the multi-view preprocessor, plain state dicts."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmpretrain.structures import DataSample

from zeromamba_mm.models.heads import IntrospectiveHead, LinearAttributeHead
from zeromamba_mm.models.train_signals import (MixupTwinSignal,
                                               MultiViewClsDataPreprocessor,
                                               mix_batch, plain_state_dict)


def test_mix_batch_mixup_and_cutmix():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float).view(2, 1, 4, 4)
    perm = torch.tensor([1, 0])
    mixed, lam = mix_batch(x, 0.3, perm)
    assert lam == 0.3
    assert torch.allclose(mixed, 0.3 * x + 0.7 * x[perm])
    np.random.seed(0)
    mixed, lam = mix_batch(x, 0.75, perm, 'cutmix')
    pasted = (mixed != x).float().mean().item()
    assert lam == pytest.approx(1 - pasted)
    assert torch.equal(mixed[mixed != x], x[perm][mixed != x])


def _model():
    torch.manual_seed(0)
    head = LinearAttributeHead(
        in_channels=12,
        num_attributes=4,
        attr_loss=dict(type='zeromamba_mm.AttributeRegressionLoss'))
    head.set_class_semantics(
        torch.nn.functional.normalize(torch.randn(5, 4), dim=1),
        seen_classes=[0, 1, 3])
    proj = torch.nn.Linear(12, 12)
    return SimpleNamespace(
        head=head, extract_feat=lambda x: (proj(x.flatten(1)), ))


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def test_twin_pass_mixes_both_losses_the_same_way():
    model = _model()
    inputs = torch.randn(4, 3, 2, 2)
    labels = torch.tensor([0, 1, 3, 1])
    signal = MixupTwinSignal(loss_weight=0.5)
    perm = torch.tensor([2, 0, 3, 1])
    mixed, lam = mix_batch(inputs, 0.3, perm)
    out = signal.mixed_loss(model, mixed, lam, labels, labels[perm],
                            _samples(labels))
    pred = model.head(model.extract_feat(mixed))
    seen = model.head.seen_attributes
    local = torch.tensor([0, 1, 2, 1])
    scores = pred @ seen.t()
    ce = torch.nn.functional.cross_entropy
    ref_ce = 0.3 * ce(scores, local) + 0.7 * ce(scores, local[perm])
    attrs = model.head.class_attributes
    ref_l1 = 0.3 * (pred - attrs[labels]).abs().mean() + 0.7 * (
        pred - attrs[labels[perm]]).abs().mean()
    assert out['loss_mix_ce'].item() == pytest.approx(
        0.5 * ref_ce.item(), 1e-5)
    assert out['loss_mix_attr'].item() == pytest.approx(
        0.5 * ref_l1.item(), 1e-5)
    # not the L1 to the mixed target (what soft labels would give)
    mixed_target = 0.3 * attrs[labels] + 0.7 * attrs[labels[perm]]
    assert out['loss_mix_attr'].item() != pytest.approx(
        0.5 * (pred - mixed_target).abs().mean().item(), 1e-3)
    full = signal.loss(model, inputs, (), _samples(labels))
    assert set(full) == {'loss_mix_ce', 'loss_mix_attr'}


@pytest.mark.parametrize('kwargs,word', [
    (dict(mode='mix'), 'mode'),
    (dict(alpha=0), 'alpha'),
    (dict(loss_weight=-1), 'loss_weight'),
    (dict(prefix='mix'), 'prefix'),
])
def test_twin_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        MixupTwinSignal(**kwargs)


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
def test_multi_view_preprocessor(collate):
    pre = MultiViewClsDataPreprocessor(
        mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 2.0], to_rgb=True)
    items = []
    for label in (0, 3):
        views = [torch.randint(0, 255, (3, 4, 4), dtype=torch.uint8)]
        views += [torch.randint(0, 255, (3, 2, 2), dtype=torch.uint8)] * 2
        items.append(
            dict(inputs=views, data_samples=DataSample().set_gt_label(label)))
    out = pre(collate(items), training=True)
    mean = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)
    for i, item in enumerate(items):
        clean = (item['inputs'][0].flip(0).float() - mean) / 2
        assert torch.allclose(out['inputs'][i], clean)
        sample = out['data_samples'][i]
        assert len(sample.views) == 2
        assert torch.allclose(sample.views[1],
                              (item['inputs'][2].flip(0).float() - mean) / 2)
    # single view (test pipeline): unchanged behaviour
    single = [
        dict(inputs=item['inputs'][0], data_samples=DataSample())
        for item in items
    ]
    out = pre(collate(single))
    assert out['inputs'].shape == (2, 3, 4, 4)
    assert 'views' not in out['data_samples'][0]


def test_plain_state_dict_of_wrapping_head():
    head = IntrospectiveHead(
        head=dict(
            type='zeromamba_mm.LinearAttributeHead',
            in_channels=3,
            num_attributes=2),
        in_channels=3)
    model = torch.nn.Module()
    model.head = head
    model.train_signals = torch.nn.ModuleList([torch.nn.Linear(1, 1)])
    state = plain_state_dict(model)
    assert set(state) == {'head.fc.weight', 'head.fc.bias'}
    assert torch.equal(state['head.fc.weight'], head.base.fc.weight)
