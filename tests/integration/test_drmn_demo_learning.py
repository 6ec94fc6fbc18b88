"""DRMN learns on the demo data: a short run of configs/drmn_demo.py.

The full demo model (MFF, DAB + ACA, SIT, global branch, self-calibration)
on the reduced demo data of ``conftest.demo_root``, a few epochs in-process.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from .conftest import REPO

EPOCHS = 5
NUM_UNSEEN = 6


class _Losses(Hook):
    """Collect the training loss of every iteration."""

    def __init__(self):
        self.losses = []

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.losses.append(float(torch.as_tensor(outputs['loss']).detach()))


def test_drmn_demo_learns(demo_root, tmp_path, restore_default_scope):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'drmn_demo.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = demo_root
    cfg.model.head.word_vectors = osp.join(demo_root, 'attribute_w2v.npy')
    cfg.train_dataloader.batch_size = 16
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.train_cfg.val_interval = EPOCHS
    cfg.param_scheduler.T_max = EPOCHS
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    losses = _Losses()
    runner.register_hook(losses)
    runner.train()
    per_epoch = len(losses.losses) // EPOCHS
    first = np.mean(losses.losses[:per_epoch])
    last = np.mean(losses.losses[-per_epoch:])
    assert last < 0.6 * first, (first, last)
    metrics = runner.test()
    chance = 100 / NUM_UNSEEN
    assert metrics['zsl/top1'] > 2.5 * chance, metrics
    assert metrics['gzsl/H_best_gamma'] > 1.5 * chance, metrics
