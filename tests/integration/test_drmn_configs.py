"""Every DRMN config builds and trains on a tiny fixture with a small arch.

The fixtures are the ones of the ZeroMamba paper-config test (real layout and
attribute counts); only the backbone is shrunk, its ImageNet checkpoint
dropped and the word vectors written next to the data.
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from .conftest import run_tool
from .test_paper_configs import REPO, TINY_VMAMBA, write_fixture

DRMN = {
    # config: (dataset, attributes, seen classes, scale, beta, lambda_cal,
    #          gamma, epochs)
    'drmn_cub.py': ('CUB', 312, 150, 20.0, 0.1, 0.1, 0.7, 20),
    'drmn_sun.py': ('SUN', 102, 645, 25.0, 0.3, 1e-4, 0.7, 20),
    'drmn_awa2.py': ('AWA2', 85, 40, 20.0, 0.0, 0.1, 3.5, 12),
    'drmn_vmamba-s_cub.py': ('CUB', 312, 150, 20.0, 0.1, 0.1, 0.7, 20),
}


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(DRMN))
def test_drmn_config_recipe_and_one_training_epoch(config, tmp_path,
                                                   restore_default_scope):
    (dataset, num_attributes, num_seen, scale, beta, lambda_cal, gamma,
     epochs) = DRMN[config]
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    head = cfg.model.head
    assert head.type == 'zeromamba_mm.DRMNHead'
    assert head.num_attributes == num_attributes
    assert head.num_seen_classes == num_seen
    assert (head.scale, head.beta) == (scale, beta)
    assert head.lambda_cal == lambda_cal
    assert head.lambda_gc == 1.0 and head.cal_detach_backbone
    assert head.use_sit and head.use_aca and head.use_global
    assert cfg.model.neck.type == 'zeromamba_mm.MFFNeck'
    assert cfg.model.neck.get('use_mff', True)
    assert cfg.val_evaluator.gamma == gamma
    assert cfg.val_evaluator.score_space == 'raw'
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['backbone'][
        'lr_mult'] == 0.1
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.train_dataloader.batch_size == 32
    resize = [t for t in cfg.train_pipeline if t.type == 'Resize'][0]
    assert tuple(resize.scale) == (448, 448)
    if 'vmamba' in config:
        assert cfg.model.backbone.arch == 'small'
        assert tuple(cfg.model.backbone.out_indices) == (2, 3)
        cfg.model.backbone.arch = TINY_VMAMBA
        channels = (64, 128)
    else:
        assert cfg.model.backbone.depth == 101
        assert tuple(cfg.model.backbone.out_indices) == (2, 3)
        assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
        cfg.model.backbone.update(depth=18, base_channels=8, stem_channels=8)
        channels = (32, 64)

    # A tiny fixture and a small arch; everything else is the config.
    root = str(tmp_path / 'data')
    write_fixture(root, cfg, dataset, num_attributes)
    w2v = osp.join(root, 'w2v.npy')
    np.save(w2v, np.random.default_rng(0).normal(size=(num_attributes, 300)))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
        cfg[loader].batch_size = 2
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.in_channels = channels
    cfg.model.head.update(
        in_channels=channels[-1], num_seen_classes=4, word_vectors=w2v)
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1

    runner = Runner.from_cfg(cfg)
    before = {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }
    model = runner.train()
    assert runner.iter == 4  # 8 trainval images, batch 2
    changed = [
        k for k, v in model.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    for part in ('backbone.', 'neck.', 'head.dab.', 'head.sit.',
                 'head.global_fc.'):
        assert any(k.startswith(part) for k in changed), part
    # Backbone at a tenth of the heads' learning rate.
    groups = runner.optim_wrapper.param_groups
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    base = max(g['initial_lr'] for g in groups)
    for group in groups:
        if group['params'] and id(group['params'][0]) in backbone_ids:
            assert group['initial_lr'] == pytest.approx(0.1 * base)
    metrics = runner.test()
    assert metrics['gzsl/num_samples'] == 10
    for key in ('zsl/top1', 'gzsl/U', 'gzsl/S', 'gzsl/H'):
        assert 0.0 <= metrics[key] <= 100.0


def test_missing_resnet_checkpoint_is_a_readable_error(tmp_path):
    result = run_tool([
        'tools/train.py', 'configs/drmn_cub.py', '--work-dir',
        str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}',
        f'val_dataloader.dataset.data_root={tmp_path}'
    ],
                      check=False)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert 'resnet101_8xb32_in1k_20210831-539c63f8.pth' in result.stderr
