"""Every file a user hands in is read without running code from it.

Each malicious file holds an object whose ``__reduce__`` returns
``(os.system, ('touch MARKER',))``: a plain unpickle creates MARKER. Every
entry point that reads a user file must refuse it, name the file, and leave
no marker.
"""
import os
import pickle

import numpy as np
import pytest
import torch

from zeromamba_mm.utils.safe_load import (CheckpointLoadError,
                                          CheckpointNotFoundError,
                                          UnsafeFileError, load_npy,
                                          load_numpy_pickle, load_torch_file)

LAYOUTS = ('meta', 'message_hub', 'top_level', 'legacy', 'raw_pickle')


class Payload:
    """Runs ``touch MARKER`` when unpickled by a plain unpickler."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def write_malicious(path: str, layout: str, marker: str) -> str:
    """Write a checkpoint-looking file with the payload in ``layout``."""
    evil = Payload(marker)
    state_dict = {'fc.weight': torch.zeros(2, 2)}
    if layout == 'meta':
        torch.save({'meta': {'epoch': 1, 'x': evil}, 'state_dict': state_dict},
                   path)
    elif layout == 'message_hub':
        torch.save(
            {
                'meta': {},
                'state_dict': state_dict,
                'message_hub': {
                    'log_scalars': {},
                    'runtime_info': {
                        'epoch': evil
                    },
                    'resumed_keys': {}
                }
            }, path)
    elif layout == 'top_level':
        torch.save(evil, path)
    elif layout == 'legacy':
        torch.save({
            'meta': evil,
            'state_dict': state_dict
        },
                   path,
                   _use_new_zipfile_serialization=False)
    elif layout == 'raw_pickle':
        with open(path, 'wb') as f:
            pickle.dump({'state_dict': state_dict, 'meta': evil}, f)
    else:
        raise ValueError(layout)
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'MARKER'
    yield str(path)
    assert not path.exists(), 'the payload ran'


@pytest.mark.parametrize('layout', LAYOUTS)
def test_load_torch_file_refuses_every_layout(tmp_path, marker, layout):
    path = write_malicious(str(tmp_path / f'{layout}.pth'), layout, marker)
    with pytest.raises(UnsafeFileError) as info:
        load_torch_file(path)
    message = str(info.value)
    assert path in message
    assert 'posix.system' in message or 'os.system' in message
    # Really refused: a plain unpickle of the same file runs the payload.
    assert not os.path.exists(marker)


def test_payload_is_armed(tmp_path):
    marker = str(tmp_path / 'MARKER')
    path = write_malicious(str(tmp_path / 'x.pth'), 'meta', marker)
    torch.load(path, weights_only=False)
    assert os.path.exists(marker)


def test_refused_getattr_and_other_globals(tmp_path):
    from mmengine.logging import HistoryBuffer

    class Sneaky:

        def __reduce__(self):
            # getattr is admitted only for HistoryBuffer's statistics
            # methods; reaching anything else through it is refused.
            return (getattr, (HistoryBuffer, '__init__'))

    path = str(tmp_path / 'getattr.pth')
    torch.save({'meta': Sneaky()}, path)
    with pytest.raises(UnsafeFileError, match='getattr.pth.*getattr'):
        load_torch_file(path)

    path = str(tmp_path / 'copy.pth')
    import copy
    torch.save({'state_dict': {}, 'cfg': copy.copy}, path)
    with pytest.raises(UnsafeFileError, match=r'copy\.pth.*copy\.copy'):
        load_torch_file(path)


def test_runner_checkpoint_contents_load(tmp_path):
    """What MMEngine writes into its checkpoints is admitted."""
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('test_safe_load')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25)
    hub.update_info('eta', np.float64(3.5))
    hub.update_info('ids', np.arange(3))
    checkpoint = {
        'meta': {
            'epoch': 2,
            'dataset_meta': {
                'classes': ('a', 'b')
            },
            'gamma': np.float32(0.7)
        },
        'state_dict': {
            'w': torch.arange(4.)
        },
        'message_hub': hub.state_dict(),
        'optimizer': {
            'state': {
                0: {
                    'step': torch.tensor(3.)
                }
            },
            'param_groups': [{
                'lr': 0.1,
                'betas': (0.9, 0.99)
            }]
        },
    }
    path = str(tmp_path / 'runner.pth')
    torch.save(checkpoint, path)
    loaded = load_torch_file(path)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(0.375)
    assert buffer.current() == 0.25
    assert loaded['message_hub']['runtime_info']['eta'] == np.float64(3.5)
    np.testing.assert_array_equal(
        loaded['message_hub']['runtime_info']['ids'], np.arange(3))
    assert loaded['meta']['gamma'] == np.float32(0.7)
    torch.testing.assert_close(loaded['state_dict']['w'], torch.arange(4.))


def test_broken_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match='absent.pth'):
        load_torch_file(str(tmp_path / 'absent.pth'))
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        load_torch_file(str(tmp_path / 'absent.pth'))
    good = str(tmp_path / 'good.pth')
    torch.save({'w': torch.zeros(1000)}, good)
    data = open(good, 'rb').read()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointLoadError,
                       match='truncated.pth.*corrupt or truncated'):
        load_torch_file(str(truncated))
    noise = tmp_path / 'noise.pth'
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointLoadError, match='noise.pth'):
        load_torch_file(str(noise))
    with pytest.raises(CheckpointNotFoundError, match='is a directory'):
        load_torch_file(str(tmp_path))


@pytest.mark.parametrize('protocol', [0, 2, 5])
@pytest.mark.parametrize('where', ['top_level', 'in_dict', 'object_array'])
def test_numpy_pickles_refuse_payloads(tmp_path, marker, protocol, where):
    evil = Payload(marker)
    obj = {
        'top_level': evil,
        'in_dict': {
            'vectors': np.zeros(3),
            'x': evil
        },
        'object_array': np.array([evil, 1], dtype=object),
    }[where]
    path = tmp_path / 'w2v.pkl'
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    with pytest.raises(UnsafeFileError, match='w2v.pkl.*global'):
        load_numpy_pickle(path)


def test_numpy_files(tmp_path):
    array = np.arange(6.).reshape(2, 3)
    (tmp_path / 'a.pkl').write_bytes(pickle.dumps(array, protocol=2))
    np.testing.assert_array_equal(load_numpy_pickle(tmp_path / 'a.pkl'),
                                  array)
    np.save(tmp_path / 'a.npy', array)
    np.testing.assert_array_equal(load_npy(tmp_path / 'a.npy'), array)
    np.save(tmp_path / 'o.npy', np.array([{}], dtype=object))
    with pytest.raises(CheckpointLoadError, match='o.npy'):
        load_npy(tmp_path / 'o.npy')


@pytest.mark.parametrize('layout', LAYOUTS)
def test_pretrained_init_cfg_refuses(tmp_path, marker, layout):
    from zeromamba_mm.models import VMamba
    from zeromamba_mm.models.necks import ZeroMambaNeck
    path = write_malicious(str(tmp_path / f'{layout}.pth'), layout, marker)
    pretrained = dict(type='Pretrained', checkpoint=path)
    backbone = VMamba(
        dict(depths=[1], dims=[8], d_state=1, ssm_ratio=1.0, mlp_ratio=1.0),
        out_indices=(0, ),
        init_cfg=pretrained)
    with pytest.raises(UnsafeFileError, match=f'{layout}.pth'):
        backbone.init_weights()
    neck = ZeroMambaNeck(in_channels=8, imagenet_classes=4,
                         init_cfg=pretrained)
    with pytest.raises(UnsafeFileError, match=f'{layout}.pth'):
        neck.init_weights()


@pytest.mark.parametrize('layout', LAYOUTS)
def test_converters_refuse(tmp_path, marker, layout, capsys):
    import importlib.util
    import os.path as osp
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    path = write_malicious(str(tmp_path / f'{layout}.pth'), layout, marker)
    for name in ('vmamba_to_mmpretrain', 'zeromamba_to_mmpretrain'):
        spec = importlib.util.spec_from_file_location(
            name, osp.join(repo, 'tools', 'model_converters', f'{name}.py'))
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
        dst = str(tmp_path / f'{name}.pth')
        assert tool.main([path, dst]) == 1
        err = capsys.readouterr().err
        assert f'{layout}.pth' in err and 'posix.system' in err
        assert not osp.exists(dst)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_word_vectors_refuse(tmp_path, marker, layout):
    from zeromamba_mm.utils import load_word_vectors
    path = write_malicious(str(tmp_path / f'{layout}.pkl'), layout, marker)
    # A raw pickle names the refused global; a torch file given as .pkl is
    # refused as not being a pickled numpy array.
    expected = UnsafeFileError if layout == 'raw_pickle' else \
        CheckpointLoadError
    with pytest.raises(expected, match=f'{layout}.pkl'):
        load_word_vectors(path)
