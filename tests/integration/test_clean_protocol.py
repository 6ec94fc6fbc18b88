"""The clean protocol end to end: train on ``clean_train``, select the epoch
and γ on ``clean_val``, test once on the test sets with the selected γ.

``OperatingPointHook`` (formerly ``SelectedGammaHook``) keeps the γ of the
best validation H in the best checkpoint's meta; a fresh test runner loading that checkpoint hands it to
the test metric (``gamma='selected'``), without any message-hub state.
"""
import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from zeromamba_mm.structures import OperatingPoint
from zeromamba_mm.structures.operating_point import META_KEY
from .conftest import REPO

CONFIG = osp.join(REPO, 'configs', 'zeromamba_demo_clean.py')


def make_config(root: str, work_dir: str) -> Config:
    cfg = Config.fromfile(CONFIG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    cfg.model.head.word_vectors = osp.join(root, 'attribute_w2v.npy')
    # A smaller VMamba and 32x32 inputs: the protocol, not the accuracy, is
    # under test.
    cfg.model.backbone.arch.update(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])
    cfg.model.neck.update(in_channels=64, imagenet_classes=16)
    cfg.model.head.update(in_channels=64, imagenet_classes=16, mlp_hidden=32)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for transform in cfg[loader].dataset.pipeline:
            if transform['type'] == 'Resize':
                transform['scale'] = (32, 32)
    cfg.train_cfg.max_epochs = 2
    cfg.train_cfg.val_interval = 1
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0)]
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    if not any(h['type'].endswith(('SelectedGammaHook',
                                   'OperatingPointHook'))
               for h in cfg.custom_hooks):
        cfg.custom_hooks.append(dict(type='zeromamba_mm.OperatingPointHook'))
    return cfg


def build_runner(cfg: Config) -> Runner:
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def val_records(work_dir: str) -> list:
    (scalars, ) = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if 'gzsl/gamma' in r]


def test_train_select_on_clean_val_then_test_once(demo_root, tmp_path,
                                                  restore_default_scope):
    from zeromamba_mm.utils.safe_load import load_torch_file
    work_dir = str(tmp_path / 'clean')
    train_cfg = make_config(demo_root, work_dir)
    runner = build_runner(train_cfg)
    runner.train()
    val = val_records(work_dir)
    assert len(val) == 2
    # Validation is on clean_val: no test classes, γ swept there.
    best = max(val, key=lambda r: r['gzsl/H'])  # first maximum, as '>'
    (ckpt, ) = glob.glob(osp.join(work_dir, 'best_gzsl_H_epoch_*.pth'))
    epoch = int(ckpt.rsplit('_', 1)[1][:-len('.pth')])
    assert best['step'] == epoch
    meta = load_torch_file(ckpt, map_location='cpu')['meta']
    selected = OperatingPoint.from_meta(meta[META_KEY])
    assert selected.gamma == pytest.approx(best['gzsl/gamma'])
    assert f'gzsl/H {best["gzsl/H"]:.2f}' in selected.selected_on
    assert f'epoch {epoch},' in selected.selected_on
    assert (selected.score_space, selected.protocol) == ('softmax', 'clean')
    # The test classes were never evaluated during training.
    val_meta = runner.val_dataloader.dataset.metainfo
    test_classes = set(
        runner.test_dataloader.dataset.metainfo['unseen_classes'].tolist())
    assert not test_classes & set(val_meta['unseen_classes'].tolist())

    # A separate test run: a fresh runner and message hub, the best
    # checkpoint, one evaluation on the test sets with the selected γ.
    MessageHub.get_instance('clean_protocol_test_hub')
    test_cfg = make_config(demo_root, str(tmp_path / 'clean_test'))
    test_cfg.load_from = ckpt
    tester = build_runner(test_cfg)
    metrics = tester.test()
    assert metrics['gzsl/gamma'] == pytest.approx(selected.gamma)
    dataset = tester.test_dataloader.dataset
    assert metrics['gzsl/num_samples'] == len(dataset)
    assert {'gzsl/H', 'gzsl/U', 'gzsl/S', 'zsl/top1',
            'gzsl/AUSUC'} <= set(metrics)
    # No oracle keys under the clean protocol.
    assert 'gzsl/best_gamma' not in metrics


def test_selected_without_a_checkpoint_gamma_fails(demo_root, tmp_path,
                                                   restore_default_scope):
    cfg = make_config(demo_root, str(tmp_path / 'none'))
    runner = build_runner(cfg)
    with pytest.raises(RuntimeError, match="gamma='selected'.*gamma=<float>"):
        runner.test()  # untrained, no checkpoint: nothing was selected
