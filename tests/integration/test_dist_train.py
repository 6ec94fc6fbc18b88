"""tools/dist_train.sh with 2 CPU processes trains and evaluates correctly."""
import glob
import json
import os
import os.path as osp
import socket
import sys

import pytest
import torch.distributed as dist

from .conftest import REPO, data_root_options, run_command

SMALL = [
    'model.backbone.base_channels=8',
    'model.backbone.stem_channels=8',
    'model.head.in_channels=64',
    'train_cfg.max_epochs=1',
    'train_cfg.val_interval=1',
    'train_dataloader.batch_size=8',
    # An odd batch size over 2 ranks: the sampler pads the last batch, and the
    # metric must still count every sample exactly once.
    'val_dataloader.batch_size=7',
    'test_dataloader.batch_size=7',
    # An odd number of test samples, so that 2 ranks need a padded sample.
    'val_dataloader.dataset.indices=107',
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_gloo_available(), reason='needs gloo')
def test_two_process_training_counts_every_test_sample_once(
        demo_root, tmp_path):
    from zeromamba_mm.datasets import ZSLDataset
    num_test = len(
        ZSLDataset(
            data_root=demo_root,
            split='test',
            path_preset='DEMO',
            img_prefix='images',
            indices=107))
    assert num_test % 2 == 1, 'pick a dataset size that forces padding'

    work_dir = str(tmp_path / 'dist')
    env = dict(
        os.environ,
        PORT=str(free_port()),
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable,
        PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = run_command(
        [
            'bash', 'tools/dist_train.sh',
            'configs/demo/linear_resnet18_zsl_demo.py', '2', '--work-dir',
            work_dir, '--cfg-options'
        ] + SMALL + data_root_options(demo_root),
        cwd=REPO,
        env=env)
    assert result.returncode == 0, result.stderr[-6000:]
    log = result.stdout + result.stderr
    assert 'Distributed training is not used' not in log
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))

    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    text = ''.join(open(p).read() for p in logs)
    assert 'Distributed training: True' in text
    # 107 samples over 2 ranks -> 54 per rank (one padded) -> 8 batches of 7;
    # a single process would need 16.
    assert 'Epoch(val) [1][8/8]' in text
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    records = [json.loads(line) for p in scalars for line in open(p)]
    val = [r for r in records if 'gzsl/num_samples' in r]
    assert val, 'no validation metrics were logged'
    assert val[-1]['gzsl/num_samples'] == num_test
    for key in ('zsl/top1', 'gzsl/U', 'gzsl/S', 'gzsl/H'):
        assert 0.0 <= val[-1][key] <= 100.0
