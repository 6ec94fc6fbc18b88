"""The model zoo: model-index.yml / metafiles, mmpretrain's model hub, and
package-scoped configs (``zeromamba_mm::...``)."""
import os.path as osp
import re

import mmpretrain
import pytest
import torch
from mmengine.config import Config
from modelindex.load_model_index import load

import zeromamba_mm  # noqa: F401  (registers the models)
from zeromamba_mm import model_zoo

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

VMAMBA = {
    'vmamba-tiny_3rdparty_in1k': ('vssm1_tiny_0230s_ckpt_epoch_264.pth',
                                  82.6),
    'vmamba-small_3rdparty_in1k': ('vssm_small_0229_ckpt_epoch_222.pth',
                                   83.6),
    'vmamba-base_3rdparty_in1k': ('vssm_base_0229_ckpt_epoch_237.pth',
                                  83.9),
}
DATASETS = ('cub', 'sun', 'awa2')
# Architectures without released weights (the papers' ImageNet numbers).
MAMBA_FAMILY = ('globalmamba-mstar_vim-tiny_in1k',
                'globalmamba-tstar_vim-small_in1k',
                'globalmamba-t_vmamba-tiny_in1k',
                'globalmamba-s_vmamba-small_in1k',
                'globalmamba-b_vmamba-base_in1k', 'v2m-t_vim-tiny_in1k',
                'v2m-s_vim-small_in1k', 'v2m-sstar_vmamba-tiny_in1k',
                'v2m-bstar_vmamba-small_in1k')


def _index():
    index = load(osp.join(REPO, 'model-index.yml'))
    index.build_models_with_collections()
    return {m.name: m for m in index.models}


def test_list_models_finds_every_entry():
    zeromamba = mmpretrain.list_models('*zeromamba*')
    assert sorted(zeromamba) == sorted(
        f'zeromamba_vmamba-small_3rdparty_{d}-448px-{k}' for d in DATASETS
        for k in ('zsl', 'gzsl'))
    assert sorted(mmpretrain.list_models('vmamba*')) == sorted(VMAMBA)
    # Registering twice is a no-op, not a name clash.
    family = mmpretrain.list_models('globalmamba*') + mmpretrain.list_models(
        'v2m*')
    assert sorted(family) == sorted(MAMBA_FAMILY)
    assert sorted(model_zoo.register_models()) == sorted(
        list(VMAMBA) + zeromamba + list(MAMBA_FAMILY))


def test_metafiles_match_the_configs_and_release_files():
    models = _index()
    for name, (release, top1) in VMAMBA.items():
        model = models[name]
        assert model.weights == release
        assert model.data['Converted From']['Weights'] == release
        assert model.results[0].metrics == {'Top 1 Accuracy': top1}
        assert osp.isfile(osp.join(REPO, model.config))
    for dataset in DATASETS:
        config = osp.join(REPO, f'configs/zeromamba_{dataset}.py')
        # The config's comment states the paper's T1 | U / S / H.
        with open(config) as f:
            reported = re.search(
                r'T1 \| U / S / H: (\d+\.\d) \| (\d+\.\d) / (\d+\.\d) / '
                r'(\d+\.\d)',
                f.read())
        t1, u, s, h = map(float, reported.groups())
        zsl = models[f'zeromamba_vmamba-small_3rdparty_{dataset}-448px-zsl']
        gzsl = models[f'zeromamba_vmamba-small_3rdparty_{dataset}-448px-gzsl']
        assert zsl.results[0].metrics == {'ZSL Top 1 Accuracy': t1}
        assert gzsl.results[0].metrics == {
            'GZSL Unseen Accuracy': u,
            'GZSL Seen Accuracy': s,
            'GZSL H': h
        }
        assert zsl.weights == f'{dataset.upper()}_bestCZSL.pth'
        assert gzsl.weights == f'{dataset.upper()}_bestGZSL.pth'
        for model in (zsl, gzsl):
            assert model.config == f'configs/zeromamba_{dataset}.py'
            converter = model.data['Converted From']['Converter']
            assert osp.isfile(osp.join(REPO, converter))


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def test_get_model_by_name_builds_the_metafile_model(tmp_path):
    metadata = _index()['vmamba-tiny_3rdparty_in1k'].metadata
    model = mmpretrain.get_model('vmamba-tiny_3rdparty_in1k')
    assert type(model).__name__ == 'ImageClassifier'
    assert _num_params(model) == metadata.parameters
    # pretrained= takes a local (converted) file.
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    torch.save({'state_dict': state}, tmp_path / 'vmamba-tiny.pth')
    loaded = mmpretrain.get_model(
        'vmamba-tiny_3rdparty_in1k',
        pretrained=str(tmp_path / 'vmamba-tiny.pth'))
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_get_model_zeromamba_by_name():
    name = 'zeromamba_vmamba-small_3rdparty_cub-448px-gzsl'
    metadata = _index()[name].metadata
    # The released checkpoint carries SLP's V: no word-vector file needed.
    model = mmpretrain.get_model(name, head=dict(word_vectors=None))
    assert type(model).__name__ == 'ZeroShotClassifier'
    assert _num_params(model) == metadata.parameters
    assert model._metainfo.name == name


def test_unknown_name_lists_where_to_look():
    with pytest.raises(ValueError, match='list_models'):
        mmpretrain.get_model('zeromamba_no_such_model')


def test_package_scoped_base_from_anywhere(tmp_path,
                                           plugin_configs_installed):
    user = tmp_path / 'elsewhere' / 'my_config.py'
    user.parent.mkdir()
    user.write_text(
        "_base_ = ['zeromamba_mm::_base_/datasets/zsl_demo.py',\n"
        "          'zeromamba_mm::_base_/default_runtime.py']\n"
        "train_cfg = dict(by_epoch=True, max_epochs=1)\n")
    cfg = Config.fromfile(str(user))
    local = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/zsl_demo.py'))
    dataset = dict(cfg.train_dataloader.dataset)
    # mmengine marks dicts from another package with their scope.
    assert dataset.pop('_scope_') == 'zeromamba_mm'
    assert dataset == local.train_dataloader.dataset.to_dict()
    assert cfg.custom_imports.imports == ['zeromamba_mm']
