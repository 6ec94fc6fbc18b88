"""A training run prints no warning a user can do nothing about, names the
device and distributed backend it uses, and shows evaluation progress.

Each test trains one epoch of a tiny model in a subprocess (a fresh
interpreter: import-time warnings count), on demo data in ``tmp_path``.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.device import get_device

from zeromamba_mm.datasets.demo_data import make_demo_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
WARNING = re.compile('warn', re.IGNORECASE)
PHASES = ('train', 'val', 'test')

#: The own-data template, copied outside the repository as the docs say,
#: pointed at the demo data and shrunk to a tiny VMamba.
OWN_DATA_CONFIG = """
_base_ = ['zeromamba_mm::own_data/zeromamba_own_data.py']
data_root = '{root}'
dataset_overrides = dict(
    data_root=data_root, path_preset='DEMO', path_rule=None)
img_size = 32
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64],
                  ssm_ratio=1.0, d_state=1, dt_rank='auto', mlp_ratio=2.0),
        init_cfg=None),
    neck=dict(in_channels=64, imagenet_classes=16, init_cfg=None),
    head=dict(in_channels=64, imagenet_classes=16, num_attributes=20,
              mlp_hidden=16),
    data_preprocessor=dict(num_classes=24))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(dataset_overrides, pipeline=pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(dataset_overrides, pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1)
"""


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('quiet_demo'))
    make_demo_data(root, seed=0, images_per_class=3)
    return root


def train(config: str, work_dir: str, cwd: str, options=()) -> str:
    """Run tools/train.py; return its stdout and stderr together."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    command = [
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir
    ]
    if options:
        command += ['--cfg-options', *options]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def check_quiet(output: str) -> None:
    noisy = [line for line in output.splitlines() if WARNING.search(line)]
    assert noisy == [], '\n'.join(noisy[:10])
    device = get_device()
    assert f'    device: {device}' in output
    if not torch.cuda.is_available():
        assert "    dist_cfg: {'backend': 'gloo'}" in output
        assert '    GPU number: 0' in output
    # Validation progress before its metrics (ProgressLoggerHook).
    progress = re.findall(r'Epoch\(val\) \[1\]\[(\d+)/(\d+)\]', output)
    assert len({done for done, _ in progress}) >= 2, progress


def test_demo_training_is_quiet(tmp_path, demo_root):
    options = [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        f'model.head.word_vectors={demo_root}/attribute_w2v.npy'
    ] + [
        f'{phase}_dataloader.dataset.data_root={demo_root}' for phase in PHASES
    ] + [f'{phase}_dataloader.batch_size=8' for phase in ('val', 'test')]
    output = train(
        osp.join(REPO, 'configs', 'zeromamba_demo.py'),
        str(tmp_path / 'work'),
        cwd=str(tmp_path),
        options=options)
    check_quiet(output)


def test_copied_own_data_template_is_quiet(tmp_path, demo_root):
    config = tmp_path / 'my_config.py'
    config.write_text(OWN_DATA_CONFIG.format(root=demo_root))
    output = train(str(config), str(tmp_path / 'work'), cwd=str(tmp_path))
    check_quiet(output)
    assert 'Failed to search registry' not in output
