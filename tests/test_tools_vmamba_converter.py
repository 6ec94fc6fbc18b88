"""tools/model_converters/vmamba_to_mmpretrain.py on the golden checkpoint."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.apis import get_model

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.backbones import VMamba

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'vmamba_to_mmpretrain.py')
DATA = osp.join(ROOT, 'tests', 'data', 'vmamba')
CKPT = osp.join(DATA, 'vmamba_dev_s2_ckpt.pth')
IO = osp.join(DATA, 'vmamba_dev_s2_io.pth')


def load_tool():
    spec = importlib.util.spec_from_file_location('vmamba_to_mmpretrain', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def golden():
    return torch.load(IO, weights_only=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    dst = str(tmp_path_factory.mktemp('conv') / 'vmamba_dev_mmpretrain.pth')
    assert load_tool().main([CKPT, dst]) == 0
    return dst


def test_output_layout(converted, golden):
    ckpt = torch.load(converted, weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    meta, sd = ckpt['meta'], ckpt['state_dict']
    assert meta['arch']['depths'] == golden['arch']['depths']
    assert meta['arch']['dims'] == golden['arch']['dims']
    assert meta['arch']['ssm_ratio'] == golden['arch']['ssm_ratio']
    assert meta['num_classes'] == 5
    assert meta['converted_from'] == 'vmamba_dev_s2_ckpt.pth'
    prefixes = {k.split('.')[0] for k in sd}
    assert prefixes == {'backbone', 'head'}
    assert sd['head.fc.weight'].shape == (5, 128)
    assert sd['backbone.norm_out.weight'].shape == (128, )
    official = torch.load(CKPT, weights_only=True)['model']
    assert len(sd) == len(official)
    assert torch.equal(sd['backbone.patch_embed.5.weight'],
                       official['patch_embed.5.weight'])


def test_round_trip_get_model_reproduces_logits(converted, golden):
    cfg = Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='zeromamba_mm.VMamba', arch=golden['arch']),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=5, in_channels=128))))
    model = get_model(cfg, pretrained=converted)
    with torch.no_grad():
        logits = model(golden['input'], mode='tensor')
    assert (logits - golden['logits']).abs().max() <= 1e-4


def test_round_trip_init_cfg(converted, golden):
    model = VMamba(
        golden['arch'],
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=converted))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        (stage4, ) = model(golden['input'])
    assert (stage4 - golden['stage4']).abs().max() <= 1e-4


def test_refuses_to_overwrite(converted, tmp_path):
    before = open(converted, 'rb').read()
    proc = subprocess.run([sys.executable, TOOL, CKPT, converted],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    assert proc.returncode == 1
    assert 'already exists' in proc.stderr and '--force' in proc.stderr
    assert open(converted, 'rb').read() == before
    dst = str(tmp_path / 'again.pth')
    open(dst, 'wb').write(b'old')
    assert load_tool().main([CKPT, dst, '--force']) == 0
    assert 'state_dict' in torch.load(dst, weights_only=True)


def test_errors(tmp_path, converted, capsys):
    tool = load_tool()
    assert tool.main(
        [str(tmp_path / 'missing.pth'),
         str(tmp_path / 'out.pth')]) == 1
    assert 'missing.pth' in capsys.readouterr().err
    # Already converted: nothing to do, said plainly.
    assert tool.main([converted, str(tmp_path / 'out.pth')]) == 1
    assert 'already in mmpretrain layout' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'out.pth')


@pytest.mark.parametrize(
    'converter', ['vmamba_to_mmpretrain.py', 'zeromamba_to_mmpretrain.py'])
def test_directory_output_is_refused_and_leaves_nothing(
        tmp_path, capsys, converter):
    spec = importlib.util.spec_from_file_location(
        converter[:-3], osp.join(ROOT, 'tools', 'model_converters', converter))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = tmp_path / 'adir'
    out_dir.mkdir()
    assert tool.main([CKPT, str(out_dir), '--force']) == 1
    err = capsys.readouterr().err
    assert f'DST {out_dir} is a directory' in err
    assert 'Traceback' not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['adir']
    assert list(out_dir.iterdir()) == []


def test_full_disk_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    import errno
    tool = load_tool()

    def save_half(obj, path):
        with open(path, 'wb') as f:
            f.write(b'half a checkpoint')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(tool.torch, 'save', save_half)
    dst = tmp_path / 'out.pth'
    assert tool.main([CKPT, str(dst)]) == 1
    err = capsys.readouterr().err
    assert f'No space left on the disk of {tmp_path}' in err
    assert list(tmp_path.iterdir()) == []
