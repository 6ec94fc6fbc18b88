"""Resuming after epoch 1 reproduces an uninterrupted run exactly."""
import glob
import json
import os.path as osp

import torch

from .conftest import data_root_options, run_tool

CONFIG = 'configs/demo/linear_resnet18_zsl_demo.py'
# A small, fast variant of the demo baseline with a step schedule whose
# learning rate changes inside the run.
SMALL = [
    'model.backbone.base_channels=8',
    'model.backbone.stem_channels=8',
    'model.head.in_channels=64',
    'param_scheduler.milestones=[1]',
    'param_scheduler.gamma=0.5',
    # The run is 'interrupted' by stopping it at max_epochs=1; mmengine clips
    # a scheduler's open end to max_epochs, so pin it to the full run's end.
    'param_scheduler.end=2',
    'train_cfg.val_interval=1',
    'train_dataloader.batch_size=16',
    'default_hooks.logger.interval=5',
]


def train(work_dir, root, max_epochs, resume=False):
    args = ['tools/train.py', CONFIG, '--work-dir', work_dir]
    if resume:
        args.append('--resume')
    options = SMALL + data_root_options(root) + [
        f'train_cfg.max_epochs={max_epochs}'
    ]
    run_tool(args + ['--cfg-options'] + options)


def last_val_metrics(work_dir):
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                        'scalars.json')))
    records = []
    for path in scalars:
        with open(path) as f:
            records += [json.loads(line) for line in f]
    return [r for r in records if 'gzsl/H' in r][-1]


def test_resume_matches_uninterrupted_run(demo_root, tmp_path):
    straight = str(tmp_path / 'straight')
    resumed = str(tmp_path / 'resumed')
    train(straight, demo_root, max_epochs=2)
    train(resumed, demo_root, max_epochs=1)
    assert osp.isfile(osp.join(resumed, 'epoch_1.pth'))
    train(resumed, demo_root, max_epochs=2, resume=True)

    a = torch.load(osp.join(straight, 'epoch_2.pth'), weights_only=False)
    b = torch.load(osp.join(resumed, 'epoch_2.pth'), weights_only=False)
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(
            b['state_dict'][key], value, rtol=0, atol=1e-6, msg=key)
    # Training really changed the weights between the epochs.
    first = torch.load(osp.join(resumed, 'epoch_1.pth'), weights_only=False)
    assert not torch.equal(first['state_dict']['head.fc.weight'],
                           b['state_dict']['head.fc.weight'])

    metrics_a = last_val_metrics(straight)
    metrics_b = last_val_metrics(resumed)
    assert metrics_a['step'] == metrics_b['step'] == 2
    for key in ('gzsl/T1', 'gzsl/U', 'gzsl/S', 'gzsl/H', 'gzsl/AUSUC'):
        assert abs(metrics_a[key] - metrics_b[key]) < 1e-6, key


def test_test_tool_evaluates_a_checkpoint(demo_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    train(work_dir, demo_root, max_epochs=1)
    out = str(tmp_path / 'preds.pkl')
    result = run_tool([
        'tools/test.py', CONFIG,
        osp.join(work_dir, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out', out, '--cfg-options'
    ] + SMALL + data_root_options(demo_root))
    log = result.stdout + result.stderr
    assert 'gzsl/T1' in log and 'gzsl/H' in log
    assert osp.isfile(out)
    # --out never overwrites what the user has.
    again = run_tool([
        'tools/test.py', CONFIG,
        osp.join(work_dir, 'epoch_1.pth'), '--out', out, '--cfg-options'
    ] + SMALL + data_root_options(demo_root), check=False)
    assert again.returncode != 0 and 'exists' in again.stderr


def test_missing_data_gives_a_readable_message(tmp_path):
    result = run_tool([
        'tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options'
    ] + data_root_options(str(tmp_path / 'nowhere')), check=False)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert 'data_root' in result.stderr and 'nowhere' in result.stderr
