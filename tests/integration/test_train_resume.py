"""Resuming after epoch 1 reproduces an uninterrupted run exactly.

The run augments (RandomFlip), uses drop path in the main process, and loads
with 2 persistent workers: the setting in which mmengine's own seeding
replays epoch 0's augmentation stream after a resume. Without the per-sample
seeds of ``EpochAwareSampler`` (``sampler=DefaultSampler``) or without the
per-iteration reseeding of ``EpochSeedHook`` the weights after epoch 2
differ.
"""
import glob
import json
import os.path as osp

import torch

from .conftest import REPO, data_root_options, run_tool

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

# The demo baseline plus what users train with: a random flip, drop path and
# two persistent dataloader workers.
AUGMENTING = f"""
_base_ = [{osp.join(REPO, CONFIG)!r}]
model = dict(backbone=dict(drop_path_rate=0.3))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    num_workers=2,
    persistent_workers=True,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
"""


def train(config, work_dir, root, max_epochs, resume=False):
    args = ['tools/train.py', config, '--work-dir', work_dir]
    if resume:
        args.append('--resume')
    options = SMALL + data_root_options(root) + [
        f'train_cfg.max_epochs={max_epochs}'
    ]
    run_tool(args + ['--cfg-options'] + options)


def val_records(work_dir):
    scalars = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    records = []
    for path in scalars:
        with open(path) as f:
            records += [json.loads(line) for line in f]
    return [r for r in records if 'gzsl/H' in r]


def metric_values(record):
    """The zero-shot metrics of a log record (names may grow: compare all
    ``zsl/`` and ``gzsl/`` numbers)."""
    return {
        k: v
        for k, v in record.items()
        if k.startswith(('zsl/', 'gzsl/')) and isinstance(v, (int, float))
    }


def load(path):
    # The runner's own checkpoints (they hold mmengine's message hub).
    return torch.load(path, map_location='cpu', weights_only=False)


def test_resume_matches_uninterrupted_run(demo_root, tmp_path):
    config = tmp_path / 'augmenting.py'
    config.write_text(AUGMENTING)
    straight = str(tmp_path / 'straight')
    resumed = str(tmp_path / 'resumed')
    train(str(config), straight, demo_root, max_epochs=2)
    train(str(config), resumed, demo_root, max_epochs=1)
    assert osp.isfile(osp.join(resumed, 'epoch_1.pth'))
    train(str(config), resumed, demo_root, max_epochs=2, resume=True)

    a = load(osp.join(straight, 'epoch_2.pth'))
    b = load(osp.join(resumed, 'epoch_2.pth'))
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(
            b['state_dict'][key], value, rtol=0, atol=1e-6, msg=key)
    # Training really changed the weights in the resumed epoch.
    first = load(osp.join(resumed, 'epoch_1.pth'))
    assert not torch.equal(first['state_dict']['head.fc.weight'],
                           b['state_dict']['head.fc.weight'])

    metrics_a = val_records(straight)[-1]
    metrics_b = val_records(resumed)[-1]
    assert metrics_a['step'] == metrics_b['step'] == 2
    values_a, values_b = metric_values(metrics_a), metric_values(metrics_b)
    assert 'gzsl/H' in values_a and values_a.keys() == values_b.keys()
    for key, value in values_a.items():
        assert abs(value - values_b[key]) < 1e-6, key


def test_test_tool_evaluates_a_checkpoint(demo_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    train(CONFIG, work_dir, demo_root, max_epochs=1)
    out = str(tmp_path / 'preds.pkl')
    test_dir = str(tmp_path / 'test')
    run_tool([
        'tools/test.py', CONFIG,
        osp.join(work_dir, 'epoch_1.pth'), '--work-dir', test_dir, '--out',
        out, '--cfg-options'
    ] + SMALL + data_root_options(demo_root))
    # The test tool's numbers are those the training run logged for the same
    # checkpoint on the same data.
    logs = glob.glob(osp.join(test_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        tested = metric_values(json.loads(f.readlines()[-1]))
    validated = metric_values(val_records(work_dir)[-1])
    # (Counts such as gzsl/num_samples may be logged in one mode only.)
    common = tested.keys() & validated.keys()
    assert {'gzsl/U', 'gzsl/S', 'gzsl/H'} <= common
    assert sum(validated[k] for k in ('gzsl/U', 'gzsl/S')) > 0
    for key in common:
        assert abs(tested[key] - validated[key]) < 1e-6, key
    assert osp.getsize(out) > 0
    # --out never overwrites what the user has.
    before = open(out, 'rb').read()
    again = run_tool(
        [
            'tools/test.py', CONFIG,
            osp.join(work_dir, 'epoch_1.pth'), '--out', out, '--cfg-options'
        ] + SMALL + data_root_options(demo_root),
        check=False)
    assert again.returncode != 0 and out in again.stderr
    assert open(out, 'rb').read() == before


def test_missing_data_gives_a_readable_message(tmp_path):
    missing = str(tmp_path / 'nowhere')
    result = run_tool(
        [
            'tools/train.py', CONFIG, '--work-dir',
            str(tmp_path), '--cfg-options'
        ] + data_root_options(missing),
        check=False)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert missing in result.stderr and 'data_root' in result.stderr
