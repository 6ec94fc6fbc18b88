"""zeromamba_mm.checkpoint: safe reading and unwrapping, strict loading with
readable messages, building a model for a full checkpoint without its
pretraining files, and the strict entry point beside mmpretrain's lenient
``get_model(pretrained=)``."""
import os.path as osp
import warnings

import mmpretrain
import pytest
import torch
from mmengine.config import Config, ConfigDict

from zeromamba_mm.apis import get_model, list_plugin_models
from zeromamba_mm.checkpoint import (WORD_VECTORS_FROM_CHECKPOINT,
                                     CheckpointMismatchError,
                                     config_for_loading, load_checkpoint_file,
                                     load_checkpoint_meta, load_model_weights,
                                     strict_load_state_dict)
from zeromamba_mm.utils.safe_load import CheckpointLoadError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LINEAR_DEMO = osp.join(REPO, 'configs', 'demo', 'linear_resnet18_zsl_demo.py')


class _Tiny(torch.nn.Module):

    def __init__(self, hidden: int = 3) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, hidden)
        self.out = torch.nn.Linear(hidden, 1, bias=False)


def test_unwrapping_and_meta(tmp_path):
    state = _Tiny().state_dict()
    layouts = {
        'bare': state,
        'runner': {
            'state_dict': state,
            'meta': {
                'epoch': 3
            }
        },
        'release': {
            'model': state
        },
        'ddp': {
            'state_dict': {
                f'module.{k}': v
                for k, v in state.items()
            }
        },
        'ema': {
            'state_dict_ema': state
        },
    }
    for name, obj in layouts.items():
        path = str(tmp_path / f'{name}.pth')
        torch.save(obj, path)
        loaded = load_checkpoint_file(path)
        assert list(loaded) == list(state), name
        for key, value in state.items():
            assert torch.equal(loaded[key], value)
    assert load_checkpoint_meta(str(tmp_path / 'runner.pth')) == {'epoch': 3}
    assert load_checkpoint_meta(str(tmp_path / 'bare.pth')) == {}
    torch.save({'state_dict': {}}, tmp_path / 'empty.pth')
    with pytest.raises(CheckpointLoadError, match='holds no state dict'):
        load_checkpoint_file(str(tmp_path / 'empty.pth'))


def test_load_model_weights_is_strict_and_names_keys_and_shapes(tmp_path):
    source = _Tiny(hidden=3)
    path = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': source.state_dict(), 'meta': {'x': 1}}, path)
    target = _Tiny(hidden=3)
    assert load_model_weights(target, path) == {'x': 1}
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)

    wider = _Tiny(hidden=5)
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_weights(wider, path)
    message = str(err.value)
    assert f'Checkpoint {path} does not match _Tiny' in message
    assert 'fc.weight: expected (5, 2), found (3, 2)' in message
    assert 'Is this a checkpoint of this config?' in message
    # Nothing was loaded partially.
    assert not torch.equal(wider.out.weight[:, :3], source.out.weight)


def test_config_for_loading_drops_pretraining_inputs_only():
    model = ConfigDict(
        type='X',
        backbone=dict(init_cfg=[
            dict(type='Pretrained', checkpoint='missing.pth'),
            dict(type='Constant', val=1, layer='Conv2d')
        ]),
        neck=dict(init_cfg=dict(type='Pretrained', checkpoint='a.pth')),
        head=dict(
            word_vectors='data/w2v/CUB_attribute.pkl',
            slp=dict(word_vectors=None),
            num_attributes=5))
    out = config_for_loading(model)
    assert out.backbone.init_cfg == [
        dict(type='Constant', val=1, layer='Conv2d')
    ]
    assert out.neck.init_cfg is None
    assert out.head.word_vectors == WORD_VECTORS_FROM_CHECKPOINT
    assert out.head.slp.word_vectors is None
    assert out.head.num_attributes == 5
    # The input is left as it was.
    assert model.neck.init_cfg.checkpoint == 'a.pth'
    assert model.head.word_vectors == 'data/w2v/CUB_attribute.pkl'


def test_every_model_zoo_name_builds_without_data_files(tmp_path, monkeypatch):
    # From a folder with no data/ and no checkpoints/: word vectors and
    # pretraining files only initialise what a checkpoint replaces.
    monkeypatch.chdir(tmp_path)
    names = list_plugin_models()
    assert len(names) == 18
    built = []
    # On the meta device: the constructors run (and would read any file),
    # the weight initialisation costs nothing.
    with torch.device('meta'):
        for name in names:
            built.append(type(mmpretrain.get_model(name)).__name__)
    assert set(built) == {'ImageClassifier', 'ZeroShotClassifier'}
    assert built.count('ZeroShotClassifier') == 6


def test_drmn_builds_for_loading_without_word_vectors(tmp_path, monkeypatch):
    from zeromamba_mm.registry import MODELS
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'drmn_cub.py'))
    with pytest.raises(FileNotFoundError, match='CUB_attribute.pkl'):
        # Training still needs them: no silent fallback.
        MODELS.build(cfg.model)
    model = MODELS.build(config_for_loading(cfg.model))
    assert type(model).__name__ == 'ZeroShotClassifier'


def _small_linear_cfg(base_channels: int) -> Config:
    cfg = Config.fromfile(LINEAR_DEMO)
    cfg.model.backbone.base_channels = base_channels
    cfg.model.backbone.stem_channels = base_channels
    cfg.model.head.in_channels = base_channels * 8
    return cfg


def test_plugin_get_model_is_strict_where_mmpretrain_is_not(tmp_path):
    narrow = get_model(_small_linear_cfg(8))
    wider = str(tmp_path / 'wider.pth')
    torch.save({'state_dict': get_model(_small_linear_cfg(16)).state_dict()},
               wider)
    # mmpretrain's get_model (mmengine's non-strict load_checkpoint) only
    # warns and keeps random weights, as docs/mixing.md says.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        lenient = mmpretrain.get_model(_small_linear_cfg(8), pretrained=wider)
    assert type(lenient).__name__ == 'ZeroShotClassifier'
    with pytest.raises(CheckpointMismatchError) as err:
        get_model(_small_linear_cfg(8), pretrained=wider)
    assert 'backbone.stem.0.conv.weight: expected (4, 3, 3, 3), found ' \
           '(8, 3, 3, 3)' in str(err.value) or 'wrong shape' in str(
               err.value)
    assert wider in str(err.value)

    matching = str(tmp_path / 'matching.pth')
    torch.save(
        {
            'state_dict': narrow.state_dict(),
            'meta': {
                'dataset_meta': {
                    'classes': ['a']
                }
            }
        }, matching)
    loaded = get_model(_small_linear_cfg(8), pretrained=matching)
    for key, value in narrow.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded._dataset_meta == {'classes': ['a']}


class _LazyCopy(torch.nn.Module):
    """Takes ``copy.*`` keys in its load hook (as OPERA's momentum copy,
    created at the first training step)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)
        self.pending = None

    def _load_from_state_dict(self, state_dict, prefix, *args):
        self.pending = {
            k: v
            for k, v in state_dict.items() if k.startswith(prefix + 'copy.')
        }
        state_dict = {
            k: v
            for k, v in state_dict.items() if k not in self.pending
        }
        super()._load_from_state_dict(state_dict, prefix, *args)


def test_strict_load_leaves_keys_to_the_modules_load_hook():
    source = _LazyCopy().state_dict()
    with_copy = dict(source, **{'copy.weight': torch.ones(2, 2)})
    target = _LazyCopy()
    strict_load_state_dict(target, with_copy, source='run.pth')
    assert list(target.pending) == ['copy.weight']
    assert torch.equal(target.fc.weight, source['fc.weight'])
    with pytest.raises(CheckpointMismatchError) as err:
        strict_load_state_dict(
            _LazyCopy(),
            dict(with_copy, **{'stray.weight': torch.ones(1)}),
            source='run.pth')
    assert 'unexpected in checkpoint: stray.weight (1,)' in str(err.value)
    assert 'copy.weight' not in str(err.value)
