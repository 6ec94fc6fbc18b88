"""tools/train.py and tools/test.py fold command-line options into configs."""
import importlib.util
import os.path as osp
import sys

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'zeromamba_cub.py')


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merged(monkeypatch, name: str, argv: list) -> Config:
    tool = load_tool(name)
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv)
    args = tool.parse_args()
    return tool.merge_args(Config.fromfile(args.config), args)


def test_train_workers_from_cfg_options(monkeypatch, tmp_path):
    cfg = merged(monkeypatch, 'train', [
        CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', 'train_dataloader.num_workers=0'
    ])
    # The paper config asks for persistent workers; without workers the
    # DataLoader would refuse them.
    assert cfg.train_dataloader.num_workers == 0
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.num_workers == 8
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.work_dir == str(tmp_path)


def test_train_flags(monkeypatch):
    cfg = merged(monkeypatch, 'train',
                 [CONFIG, '--no-persistent-workers', '--no-pin-memory'])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].persistent_workers is False
        assert cfg[loader].pin_memory is False
    assert cfg.work_dir == osp.join('./work_dirs', 'zeromamba_cub')


def test_test_workers_from_cfg_options(monkeypatch, tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    cfg = merged(monkeypatch, 'test', [
        CONFIG,
        str(checkpoint), '--cfg-options', 'test_dataloader.num_workers=0'
    ])
    assert cfg.test_dataloader.persistent_workers is False
    assert cfg.load_from == str(checkpoint)


def test_test_missing_checkpoint(monkeypatch, capsys, tmp_path):
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(SystemExit) as info:
        merged(monkeypatch, 'test', [CONFIG, missing])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f'error: checkpoint {missing} does not exist' in err
    assert 'work dir' in err
