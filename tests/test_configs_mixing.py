"""configs/mixing: ZeroMamba's neck and head on mmpretrain backbones.

The mixing configs name real mmpretrain ImageNet checkpoints. Here the same
configs load checkpoints of the same layout written by mmpretrain's own
ImageClassifier (smaller depth/arch so the test stays fast), and the
unmodified configs build and run forward.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.classifiers import ZeroShotClassifier
from zeromamba_mm.registry import MODELS

CONFIGS = osp.join(osp.dirname(osp.dirname(__file__)), 'configs', 'mixing')
NUM_ATTRIBUTES = 312  # CUB, as in the configs
# mmpretrain's ImageNet ResNet-18 classifier: the layout of its checkpoints.
RESNET18_IN1K = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=512))


def load_cfg(name: str) -> Config:
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    # The CUB word vectors are not shipped; SLP's V then starts at random.
    cfg.model.head.word_vectors = None
    return cfg


def build_with_semantics(model_cfg: dict) -> ZeroShotClassifier:
    model = MODELS.build(model_cfg)
    model.init_weights()
    attributes = torch.nn.functional.normalize(
        torch.rand(6, NUM_ATTRIBUTES), dim=1)
    model.set_class_semantics(attributes, [0, 1, 2, 3], [4, 5])
    return model.eval()


def save_mmpretrain_checkpoint(classifier_cfg: dict, path: str) -> dict:
    classifier = MMPRETRAIN_MODELS.build(classifier_cfg)
    classifier.init_weights()
    state_dict = classifier.state_dict()
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    return state_dict


def point_to(cfg: Config, path: str) -> None:
    cfg.model.backbone.init_cfg.checkpoint = path
    cfg.model.neck.init_cfg.checkpoint = path


@pytest.mark.parametrize('name,channels,size', [
    ('zeromamba-head_resnet101_cub.py', 2048, 64),
    ('zeromamba-head_vit-b16_cub.py', 768, 448),
])
def test_unmodified_configs_build_and_run(name, channels, size):
    cfg = load_cfg(name)
    for part in ('backbone', 'neck'):
        cfg.model[part].pop('init_cfg')  # checkpoints are not shipped
    model = build_with_semantics(cfg.model)
    assert model.neck.in_channels == model.head.slp.in_channels == channels
    with torch.no_grad():
        attributes = model(torch.randn(1, 3, size, size), mode='tensor')
        (sample, ) = model(torch.randn(1, 3, size, size), mode='predict')
    assert attributes.shape == (1, NUM_ATTRIBUTES)
    assert sample.pred_score.shape == (6, )
    assert torch.isfinite(sample.pred_score).all()


def test_resnet_mixing_loads_mmpretrain_checkpoint(tmp_path):
    cfg = load_cfg('zeromamba-head_resnet101_cub.py')
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = 512
    cfg.model.head.in_channels = 512
    path = str(tmp_path / 'resnet18_in1k.pth')
    saved = save_mmpretrain_checkpoint(RESNET18_IN1K, path)
    point_to(cfg, path)
    model = build_with_semantics(cfg.model)
    assert model.neck.norm is None
    assert torch.equal(model.neck.fc.weight, saved['head.fc.weight'])
    assert torch.equal(model.neck.fc.bias, saved['head.fc.bias'])
    for key in ('conv1.weight', 'layer4.1.conv2.weight', 'layer3.0.bn1.bias'):
        assert torch.equal(model.backbone.state_dict()[key],
                           saved['backbone.' + key]), key
    # The neck reproduces the ImageNet classifier's logits.
    reference = MMPRETRAIN_MODELS.build(RESNET18_IN1K)
    reference.load_state_dict(saved)
    reference.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(images, mode='tensor')
        _, logits = model.neck(model.backbone(images))
    torch.testing.assert_close(logits, expected)


def test_vit_mixing_loads_mmpretrain_checkpoint(tmp_path):
    cfg = load_cfg('zeromamba-head_vit-b16_cub.py')
    cfg.model.backbone.arch = 'deit-tiny'
    cfg.model.backbone.img_size = 64
    cfg.model.neck.in_channels = 192
    cfg.model.head.in_channels = 192
    path = str(tmp_path / 'vit_tiny_in1k.pth')
    saved = save_mmpretrain_checkpoint(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='VisionTransformer', arch='deit-tiny', img_size=64),
            head=dict(
                type='VisionTransformerClsHead',
                num_classes=1000,
                in_channels=192)), path)
    point_to(cfg, path)
    model = build_with_semantics(cfg.model)
    assert torch.equal(model.neck.fc.weight,
                       saved['head.layers.head.weight'])
    assert torch.equal(model.backbone.cls_token, saved['backbone.cls_token'])
    with torch.no_grad():
        x_pre, logits = model.neck(model.backbone(torch.randn(1, 3, 64, 64)))
    assert x_pre.shape == (1, 192, 4, 4) and logits.shape == (1, 1000)


def test_wrong_checkpoint_for_the_neck_is_refused(tmp_path):
    # A VMamba-style neck (norm='ln2d') cannot take a ResNet classifier: the
    # error must say so instead of leaving the norm at random.
    cfg = load_cfg('zeromamba-head_resnet101_cub.py')
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = 512
    cfg.model.neck.norm = 'ln2d'
    cfg.model.head.in_channels = 512
    path = str(tmp_path / 'resnet18_in1k.pth')
    save_mmpretrain_checkpoint(RESNET18_IN1K, path)
    point_to(cfg, path)
    with pytest.raises(KeyError, match='norm=None'):
        build_with_semantics(cfg.model)
