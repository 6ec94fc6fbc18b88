"""Each training signal trains on the demo data; prediction is unaffected.

For the IDML, OPERA and PDML-inspired demo configs: a few optimiser steps
on one batch of the (reduced) demo data lower the training loss, and the
model's predictions equal those of the plain ZeroMamba demo model loaded
with the state dict minus the training-only branches (strictly, every
remaining tensor bit-identical).
"""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope

from zeromamba_mm.models.heads import HeadWrapper
from zeromamba_mm.models.train_signals import plain_state_dict
from zeromamba_mm.registry import DATASETS, MODELS

PARTS = {
    'idml': 'configs/demo/zeromamba_demo_idml.py',
    'opera': 'configs/demo/zeromamba_demo_opera.py',
    'pdml': 'configs/demo/zeromamba_demo_pdml.py',
}
PLAIN = 'configs/zeromamba_demo.py'


def _config(path, root):
    cfg = Config.fromfile(path)
    head = cfg.model.head
    head = head.head if 'head' in head else head
    head.word_vectors = f'{root}/attribute_w2v.npy'
    init_default_scope(cfg.default_scope)
    return cfg


def _batch(cfg, root, size=4):
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=root))
    step = len(dataset) // size
    return dataset, pseudo_collate([dataset[i * step] for i in range(size)])


def _set_semantics(model, dataset):
    meta = dataset.metainfo
    model.set_class_semantics(
        meta['class_attributes'], seen_classes=meta['seen_classes'])


def _total(losses):
    return sum(v for k, v in losses.items() if 'loss' in k)


@pytest.mark.parametrize('part', sorted(PARTS))
def test_part_trains_and_leaves_prediction_unchanged(part, demo_root,
                                                     restore_default_scope):
    torch.manual_seed(0)
    cfg = _config(PARTS[part], demo_root)
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset, raw = _batch(cfg, demo_root)
    _set_semantics(model, dataset)
    MessageHub.get_current_instance().update_info('max_iters', 100)
    model.train()
    data = model.data_preprocessor(raw, training=True)

    def evaluate():
        torch.manual_seed(123)
        np.random.seed(123)
        with torch.no_grad():
            return _total(model.loss(**data)).item()

    # (for OPERA, evaluating also runs one EMA step: a training step too)
    before = evaluate()
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(3):
        losses = model.loss(**data)
        optim.zero_grad()
        _total(losses).backward()
        optim.step()
        if part == 'opera':
            assert all(
                not p.requires_grad
                for p in model.train_signals[0].momentum_encoder.parameters())
    after = evaluate()
    assert np.isfinite(after) and after < before, (before, after)

    # prediction without the training-only branches
    model.eval()
    test_set = DATASETS.build(
        dict(cfg.val_dataloader.dataset, data_root=demo_root))
    test_raw = pseudo_collate([test_set[i] for i in range(0, 60, 10)])
    test_data = model.data_preprocessor(test_raw, training=False)
    with torch.no_grad():
        ours = [s.pred_score for s in model.predict(**test_data)]
    plain_cfg = _config(PLAIN, demo_root)
    plain = MODELS.build(plain_cfg.model)
    state = plain_state_dict(model)
    plain.load_state_dict(state, strict=True)
    reference = model.state_dict()
    for key, value in plain.state_dict().items():
        src = key
        if isinstance(model.head, HeadWrapper) and key.startswith('head.'):
            src = 'head.base.' + key[len('head.'):]
        assert torch.equal(value, reference[src]), key
    _set_semantics(plain, test_set)
    plain.eval()
    plain_data = plain.data_preprocessor(test_raw, training=False)
    with torch.no_grad():
        theirs = [s.pred_score for s in plain.predict(**plain_data)]
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
