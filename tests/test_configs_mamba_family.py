"""Configs of the Vision Mamba family (GlobalMamba, V2M, Vim): they load,
name the right variants, and every new backbone trains one iteration inside
a ZeroMamba config and inside a plain mmpretrain ImageClassifier (shrunk so
the test stays fast)."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

import zeromamba_mm  # noqa: F401
from zeromamba_mm.registry import MODELS

ROOT = osp.join(osp.dirname(osp.dirname(__file__)), 'configs')
IMAGENET = sorted(
    glob.glob(osp.join(ROOT, 'globalmamba', '[!_]*.py')) +
    glob.glob(osp.join(ROOT, 'v2m', '[!_]*.py')))
DEMOS = [
    'demo/zeromamba-head_globalmamba-vmamba_zsl_demo.py',
    'demo/zeromamba-head_v2m-vmamba_zsl_demo.py',
    'demo/zeromamba-head_globalmamba-vim_zsl_demo.py',
    'demo/zeromamba-head_v2m-vim_zsl_demo.py',
]
MIXING = [
    'mixing/zeromamba-head_v2m-vmamba-s_cub.py',
    'mixing/zeromamba-head_globalmamba-vmamba-s_cub.py',
]
TINY_VMAMBA = dict(
    depths=[1, 1, 1, 1], dims=8, ssm_ratio=2.0, d_state=1, mlp_ratio=2.0)
# Expected variant of every ImageNet config.
EXPECTED = {
    'globalmamba-mstar_vim-tiny_8xb256_in1k.py': ('Vim', 'globalmamba-m*'),
    'globalmamba-tstar_vim-small_8xb256_in1k.py': ('Vim', 'globalmamba-t*'),
    'globalmamba-t_vmamba-tiny_8xb128_in1k.py': ('VMamba', 'tiny', 'dct'),
    'globalmamba-s_vmamba-small_8xb128_in1k.py': ('VMamba', 'small', 'dct'),
    'globalmamba-b_vmamba-base_8xb128_in1k.py': ('VMamba', 'base', 'dct'),
    'v2m-t_vim-tiny_8xb64_in1k.py': ('Vim', 'v2m-t'),
    'v2m-s_vim-small_8xb64_in1k.py': ('Vim', 'v2m-s'),
    'v2m-sstar_vmamba-tiny_8xb128_in1k.py': ('VMamba', 'tiny', '2d'),
    'v2m-bstar_vmamba-small_8xb128_in1k.py': ('VMamba', 'small', '2d'),
}


def shrink(backbone: dict) -> dict:
    """The same variant at toy size (keeps mixer/tokenizer/scan options)."""
    backbone = copy.deepcopy(backbone)
    backbone.pop('init_cfg', None)
    if backbone['type'].endswith('Vim'):
        from zeromamba_mm.models.backbones import Vim
        arch = backbone['arch']
        settings = dict(Vim.arch_zoo[arch]) if isinstance(arch, str) else \
            dict(arch)
        settings.update(embed_dims=16, depth=2, d_state=2)
        backbone.update(arch=settings, img_size=32, patch_size=8)
        return backbone, 16
    backbone['arch'] = TINY_VMAMBA
    backbone['drop_path_rate'] = 0.
    return backbone, 64


def train_one_iteration(model, size, num_classes):
    model.init_weights()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optim = torch.optim.SGD(params, lr=0.1)
    inputs = torch.randn(2, 3, size, size)
    samples = [DataSample().set_gt_label(i) for i in (0, 1)]
    losses = model(inputs, samples, mode='loss')
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
    # Every backbone weight takes part (no unused parameter for DDP) and
    # gets a gradient; the step changes the model.
    for name, p in model.backbone.named_parameters():
        assert p.grad is not None, f'unused weight {name}'
    live = sum(
        bool(p.grad.abs().sum() > 0) for p in params if p.grad is not None)
    assert live > 0.9 * len(params)
    optim.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, params))


@pytest.mark.parametrize('path', IMAGENET, ids=osp.basename)
def test_imagenet_configs_name_their_variant_and_train(path):
    cfg = Config.fromfile(path)
    expected = EXPECTED[osp.basename(path)]
    backbone = cfg.model.backbone
    assert backbone.type == 'zeromamba_mm.' + expected[0]
    assert backbone.arch == expected[1]
    if expected[0] == 'VMamba':
        assert (backbone.get('scan', 'cross'),
                backbone.get('serialization', 'none')).count(expected[2]) == 1
    small, channels = shrink(backbone)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(backbone=small, init_cfg=None)
    model_cfg.head.in_channels = channels
    model_cfg.head.num_classes = 5
    model_cfg.train_cfg = None  # Mixup/CutMix need one-hot of 1000 classes
    # The ImageNet configs run in mmpretrain's scope (default_scope).
    model = MMPRETRAIN_MODELS.build(model_cfg)
    size = 32 if expected[0] == 'Vim' else 64
    train_one_iteration(model, size, 5)


def test_full_size_vim_archs_build_with_paper_sizes():
    from zeromamba_mm.models.backbones import Vim
    counts = {}
    for arch in ('globalmamba-m*', 'v2m-t'):
        model = Vim(arch)
        counts[arch] = sum(p.numel() for p in model.parameters()) / 1e6
    # About 7M parameters, as the papers' tables (GlobalMamba-M*, V2M-T).
    assert all(6 < c < 8 for c in counts.values()), counts
    assert Vim('globalmamba-m*').pos_embed.shape == (1, 256, 192)


def _zsl_cfg(name):
    cfg = Config.fromfile(osp.join(ROOT, name))
    cfg.model.head.word_vectors = None
    return cfg


def _set_semantics(model, attributes):
    target = model if hasattr(model, 'set_class_semantics') else model.head
    target.set_class_semantics(attributes, torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize('name', DEMOS)
@pytest.mark.parametrize(
    'classifier',
    ['zeromamba_mm.ZeroShotClassifier', 'mmpretrain.ImageClassifier'])
def test_zsl_demo_backbones_train_one_iteration(name, classifier):
    cfg = _zsl_cfg(name)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.type = classifier
    small, channels = shrink(model_cfg.backbone)
    model_cfg.backbone = small
    model_cfg.neck.in_channels = channels
    model_cfg.head.in_channels = channels
    model = MODELS.build(model_cfg)
    _set_semantics(
        model,
        torch.nn.functional.normalize(
            torch.rand(6, cfg.model.head.num_attributes), dim=1))
    size = 32 if small['type'].endswith('Vim') else 64
    train_one_iteration(model, size, 6)


@pytest.mark.parametrize('name', MIXING)
def test_mixing_configs_keep_the_paper_recipe(name):
    cfg = _zsl_cfg(name)
    base = _zsl_cfg('zeromamba_cub.py')
    backbone = cfg.model.backbone
    assert backbone.arch == 'small' and backbone.final_norm is False
    assert backbone.init_cfg == base.model.backbone.init_cfg
    assert (backbone.get('scan'),
            backbone.get('serialization')) in (('2d', None), (None, 'dct'))
    for key in ('neck', 'head'):
        assert cfg.model[key] == base.model[key]
    assert cfg.optim_wrapper == base.optim_wrapper
