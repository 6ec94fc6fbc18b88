"""The command-line tools refuse unsafe, foreign and broken inputs clearly.

tools/test.py CKPT, tools/train.py --resume PATH and load_from= are given
each malicious layout (see ``test_safe_load``), checkpoints of another
architecture, truncated and random files; the tools' probes (a second run
into a used work dir, a --cfg-options typo, a busy port) are refused with
what to do instead.
"""
import importlib.util
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from test_safe_load import LAYOUTS, write_malicious

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'demo', 'linear_resnet18_zsl_demo.py')
SMALL = [
    'model.backbone.base_channels=8', 'model.backbone.stem_channels=8',
    'model.head.in_channels=64', 'train_cfg.max_epochs=1',
    'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
    'test_dataloader.num_workers=0'
]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    from zeromamba_mm.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, seed=0, images_per_class=3)
    return root


def options(root: str) -> list:
    return SMALL + [
        f'{phase}_dataloader.dataset.data_root={root}'
        for phase in ('train', 'val', 'test')
    ]


def run_tool(monkeypatch, name: str, argv: list) -> int:
    tool = load_tool(name)
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv)
    try:
        tool.main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


def run_test_tool(monkeypatch, tmp_path, root, checkpoint, *extra):
    return run_tool(monkeypatch, 'test', [
        CONFIG, checkpoint, '--work-dir',
        str(tmp_path / 'test_work'), *extra, '--cfg-options'
    ] + options(root))


def small_model_state(base_channels: int = 8) -> dict:
    from zeromamba_mm.registry import MODELS
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.base_channels = base_channels
    cfg.model.backbone.stem_channels = base_channels
    cfg.model.head.in_channels = base_channels * 8
    return MODELS.build(cfg.model).state_dict()


@pytest.mark.parametrize('layout', LAYOUTS)
def test_test_tool_refuses_malicious_checkpoints(monkeypatch, capsys,
                                                 tmp_path, data_root, layout):
    marker = str(tmp_path / 'MARKER')
    path = write_malicious(str(tmp_path / f'{layout}.pth'), layout, marker)
    assert run_test_tool(monkeypatch, tmp_path, data_root, path) == 1
    err = capsys.readouterr().err
    assert f'Refusing to load {path}' in err and 'posix.system' in err
    assert 'Traceback' not in err
    assert not osp.exists(marker)


@pytest.mark.parametrize('how', ['resume', 'load_from'])
def test_train_tool_refuses_malicious_checkpoints(monkeypatch, capsys,
                                                  tmp_path, data_root, how):
    marker = str(tmp_path / 'MARKER')
    path = write_malicious(str(tmp_path / 'evil.pth'), 'message_hub', marker)
    work_dir = str(tmp_path / 'work')
    if how == 'resume':
        argv = [CONFIG, '--work-dir', work_dir, '--resume', path,
                '--cfg-options'] + options(data_root)
    else:
        argv = [CONFIG, '--work-dir', work_dir, '--cfg-options',
                f'load_from={path}'] + options(data_root)
    assert run_tool(monkeypatch, 'train', argv) == 1
    err = capsys.readouterr().err
    assert f'Refusing to load {path}' in err and 'posix.system' in err
    assert not osp.exists(marker)
    assert not osp.exists(osp.join(work_dir, 'epoch_1.pth'))


def test_test_tool_is_strict_and_names_the_data(monkeypatch, capsys, tmp_path,
                                                data_root):
    import torchvision
    resnet = str(tmp_path / 'resnet18.pth')
    torch.save(torchvision.models.resnet18().state_dict(), resnet)
    assert run_test_tool(monkeypatch, tmp_path, data_root, resnet) == 1
    err = capsys.readouterr().err
    assert f'Checkpoint {resnet} does not match ZeroShotClassifier' in err
    assert 'missing from checkpoint: backbone.conv1.weight' in err
    assert 'unexpected in checkpoint: conv1.weight (64, 3, 7, 7)' in err

    wider = str(tmp_path / 'wider.pth')
    torch.save({'state_dict': small_model_state(16)}, wider)
    assert run_test_tool(monkeypatch, tmp_path, data_root, wider) == 1
    err = capsys.readouterr().err
    assert 'backbone.conv1.conv.weight: expected (4, 3, 3, 3), found ' \
           '(8, 3, 3, 3)' in err or 'wrong shape' in err
    assert wider in err

    # --partial-load is the explicit way to evaluate anyway.
    assert run_test_tool(monkeypatch, tmp_path, data_root, wider,
                         '--partial-load') == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith('Testing on: '))
    assert f'data_root={data_root}' in line and 'split=test' in line
    # The size it announces is the number of samples the metric counted.
    counted = re.search(r'gzsl/num_samples: (\d+)', out).group(1)
    assert f', {counted} samples, 24 classes' in line

    matching = str(tmp_path / 'matching.pth')
    torch.save({'state_dict': small_model_state(8)}, matching)
    show_dir = tmp_path / 'show'
    assert run_test_tool(monkeypatch, tmp_path, data_root, matching,
                         '--show-dir', str(show_dir), '--interval', '4') == 0
    out = capsys.readouterr().out
    assert 'Results: ZSL T1' in out
    # --show-dir (mmpretrain's way): every 4th test sample is painted.
    painted = list(show_dir.glob('*.png'))
    assert len(painted) == len(range(0, int(counted), 4)), painted


def test_test_tool_broken_files(monkeypatch, capsys, tmp_path, data_root):
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': small_model_state(8)}, good)
    data = open(good, 'rb').read()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 3])
    noise = tmp_path / 'noise.pth'
    noise.write_bytes(os.urandom(5000))
    for path in (truncated, noise):
        assert run_test_tool(monkeypatch, tmp_path, data_root, str(path)) == 1
        err = capsys.readouterr().err
        assert f'Cannot read checkpoint {path}: the file is corrupt or ' \
               'truncated' in err
        assert 'Traceback' not in err


def test_second_run_into_a_used_work_dir_is_refused(
        monkeypatch, capsys, tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_3.pth').write_bytes(b'first run')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_3.pth'))
    code = run_tool(monkeypatch, 'train', [
        CONFIG, '--work-dir',
        str(work_dir), '--cfg-options', 'train_dataloader.dataset.'
        f'data_root={tmp_path}', f'val_dataloader.dataset.data_root={tmp_path}'
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert f'work dir {work_dir} already holds a run' in err
    assert 'epoch_3.pth' in err and '--resume' in err and '--work-dir' in err
    assert (work_dir / 'epoch_3.pth').read_bytes() == b'first run'

    common = load_tool('_common')
    cfg = Config(dict(work_dir=str(work_dir)))
    common.refuse_existing_run(cfg, resume='auto')  # allowed
    common.refuse_existing_run(Config(dict(work_dir=str(tmp_path / 'new'))),
                               resume=None)


def test_resume_path_must_exist(monkeypatch, capsys, tmp_path):
    tool = load_tool('train')
    missing = str(tmp_path / 'nope.pth')
    monkeypatch.setattr(sys, 'argv', ['train.py', CONFIG, '--resume', missing])
    args = tool.parse_args()
    with pytest.raises(SystemExit) as info:
        tool.merge_args(Config.fromfile(CONFIG), args)
    assert info.value.code == 2
    assert 'nope.pth: no such checkpoint' in capsys.readouterr().err


@pytest.mark.parametrize('name', ['train', 'test'])
def test_cfg_options_typo_is_refused(monkeypatch, capsys, tmp_path, name):
    tool = load_tool(name)
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    argv = [CONFIG] + ([str(ckpt)] if name == 'test' else []) + [
        '--cfg-options', 'trian_cfg.max_epochs=1', 'train_cfg.max_epochs=2'
    ]
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv)
    args = tool.parse_args()
    with pytest.raises(SystemExit) as info:
        tool.merge_args(Config.fromfile(CONFIG), args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "no top-level key 'trian_cfg'" in err
    assert "Did you mean 'train_cfg'" in err
    assert 'train_cfg.max_epochs' not in err  # valid keys pass

    # Keys mmengine's runner reads may be added even when absent.
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv[:-2] +
                        ['find_unused_parameters=True'])
    args = tool.parse_args()
    cfg = tool.merge_args(Config.fromfile(CONFIG), args)
    assert cfg.find_unused_parameters is True


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_dist_scripts_report_a_busy_port(script):
    with socket.socket() as busy:
        busy.bind(('', 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = [CONFIG, '2'] if script == 'dist_train.sh' else \
            [CONFIG, 'ckpt.pth', '2']
        result = subprocess.run(['bash', f'tools/{script}'] + args,
                                cwd=REPO,
                                env=dict(os.environ, PORT=str(port),
                                         PYTHON=sys.executable),
                                capture_output=True,
                                text=True,
                                timeout=1800)
    assert result.returncode == 2
    assert f'Port {port} is in use' in result.stderr
    assert f'PORT={port + 1}' in result.stderr


def test_word_vector_shape_is_checked_at_start(capsys, tmp_path):
    import numpy as np
    vectors = str(tmp_path / 'w2v.npy')
    np.save(vectors, np.ones((20, 300)))
    common = load_tool('_common')
    head = dict(type='zeromamba_mm.ZeroMambaHead', num_attributes=16,
                word_vectors=vectors)
    with pytest.raises(SystemExit) as info:
        common.check_config_inputs(
            Config(dict(model=dict(head=head))), phases=())
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f'model.head.word_vectors: Word vectors in {vectors} have 20 ' \
           'rows' in err
    assert 'num_attributes=16' in err
    assert 'set model.head.word_vectors to a file of shape (16, 300)' in err
    assert 'or to None' in err
    head.update(num_attributes=20)
    common.check_config_inputs(Config(dict(model=dict(head=head))), phases=())
