"""The paper configs build and train on tiny fixtures laid out as they expect.

Each fixture mirrors the real layout of docs/data_preparation.md (split files
under ``xlsa17/data/<DS>``, images under the dataset's folder, original
``/BS/...`` paths in ``res101.mat``) with the real attribute counts, so the
configs' paths, presets and attribute dimensions are all exercised.
"""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import scipy.io as sio
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS

from zeromamba_mm.datasets import PATH_PRESETS
from .recompute import load_dump, recompute

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER = {
    # config: (dataset, attributes, lambda, gamma)
    'zeromamba_cub.py': ('CUB', 312, 1.0, 0.30),
    'zeromamba_sun.py': ('SUN', 102, 0.2, 0.35),
    'zeromamba_awa2.py': ('AWA2', 85, 0.0, 0.98),
}
TINY_VMAMBA = dict(
    depths=[1, 1, 1, 1], dims=16, ssm_ratio=2.0, d_state=1, dt_rank='auto',
    mlp_ratio=4.0)


def cell(strings):
    out = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        out[i, 0] = s
    return out


def write_fixture(root, cfg, dataset, num_attributes, num_classes=6,
                  per_class=3):
    """Write split files and JPEGs where ``cfg``'s dataset looks for them."""
    ds_cfg = cfg.train_dataloader.dataset
    rng = np.random.default_rng(0)
    att = rng.random((num_attributes, num_classes))
    att /= np.linalg.norm(att, axis=0, keepdims=True)
    names = [f'{i:03d}.class_{i}' for i in range(num_classes)]
    files, labels = [], []
    for c, name in enumerate(names):
        for k in range(per_class):
            rel = f'{name}/img_{k}.jpg'
            files.append(PATH_PRESETS[dataset] + rel)
            labels.append(c + 1)
            path = osp.join(root, ds_cfg.img_prefix, rel)
            os.makedirs(osp.dirname(path), exist_ok=True)
            cv2.imwrite(path, rng.integers(0, 255, (40, 50, 3), np.uint8))
    labels = np.array(labels)
    seen = labels <= 4  # classes 1-4 seen, 5-6 unseen (1-based)
    index = np.arange(1, len(labels) + 1, dtype=np.uint16)
    first = np.zeros(len(labels), bool)
    first[::per_class] = True
    split_dir = osp.join(root, osp.dirname(ds_cfg.split_file))
    os.makedirs(split_dir, exist_ok=True)
    sio.savemat(
        osp.join(root, ds_cfg.split_file),
        dict(
            att=att,
            original_att=att,
            allclasses_names=cell(names),
            trainval_loc=index[seen & ~first].reshape(-1, 1),
            test_seen_loc=index[seen & first].reshape(-1, 1),
            test_unseen_loc=index[~seen].reshape(-1, 1)))
    sio.savemat(
        osp.join(root, ds_cfg.image_list_file),
        dict(image_files=cell(files), labels=labels.reshape(-1, 1)))


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(PAPER))
def test_paper_config_recipe_and_one_training_epoch(config, tmp_path,
                                                    restore_default_scope):
    dataset, num_attributes, lam, gamma = PAPER[config]
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))

    # The recipe as published.
    assert cfg.model.head.num_attributes == num_attributes
    if lam:
        assert cfg.model.head.attr_loss.loss_weight == lam
    else:
        assert cfg.model.head.attr_loss is None
    assert cfg.val_evaluator.gamma == gamma
    assert cfg.val_evaluator.score_space == 'softmax'
    assert cfg.model.backbone.arch == 'small'
    assert cfg.model.backbone.final_norm is False
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.optim_wrapper.optimizer.momentum == 0.9
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-3
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['mlp_local'][
        'lr_mult'] == 0.1
    assert cfg.param_scheduler.milestones == [10, 20, 30, 40]
    assert cfg.param_scheduler.gamma == 0.5
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_dataloader.sampler.shuffle is True
    resize = [t for t in cfg.train_pipeline if t.type == 'Resize'][0]
    assert tuple(resize.scale) == (448, 448)

    # A small arch and a tiny fixture; everything else is the paper config.
    root = str(tmp_path / 'data')
    write_fixture(root, cfg, dataset, num_attributes)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
        cfg[loader].batch_size = 2
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.model.backbone.arch = TINY_VMAMBA
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.in_channels = 128
    cfg.model.neck.init_cfg = None
    cfg.model.head.in_channels = 128
    cfg.model.head.word_vectors = None
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1
    dump = str(tmp_path / 'predictions.pkl')
    metric_cfg = dict(cfg.test_evaluator)
    cfg.test_evaluator = [
        metric_cfg, dict(type='DumpResults', out_file_path=dump)
    ]

    # As tools/train.py: the config's runner_type (zeromamba_mm.ZSLRunner).
    runner = RUNNERS.build(cfg)
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
    assert any(k.startswith('backbone.') for k in changed)
    assert any(k.startswith('head.slp.mlp_local') for k in changed)
    assert any(k.startswith('head.grl') for k in changed)
    metrics = runner.test()
    assert metrics['gzsl/num_samples'] == 10  # 4 test_seen + 6 test_unseen
    # The metric's figures are those re-derived from the dumped predictions
    # by their definitions (plain loops).
    meta = runner.test_dataloader.dataset.metainfo
    expected = recompute(
        load_dump(dump), meta['seen_classes'], meta['unseen_classes'],
        metric_cfg['gamma'], metric_cfg['score_space'])
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-4), key


def test_missing_vmamba_checkpoint_is_a_readable_error(tmp_path):
    from .conftest import run_tool
    result = run_tool([
        'tools/train.py', 'configs/zeromamba_cub.py', '--work-dir',
        str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}',
        f'val_dataloader.dataset.data_root={tmp_path}'
    ],
                      check=False)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert 'vssm_small_0229_ckpt_epoch_222.pth' in result.stderr
