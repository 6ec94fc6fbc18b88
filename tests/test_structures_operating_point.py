"""OperatingPoint: validation, meta round trip (also the legacy record), and
the one resolution order (checkpoint, config's test metric, default)."""
import ast
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

import zeromamba_mm
from zeromamba_mm.evaluation import (DEFAULT_SCORE_SPACE, SCORE_SPACES,
                                     resolve_operating_point)
from zeromamba_mm.evaluation.metrics.gzsl_metric import GZSLMetric
from zeromamba_mm.structures import OperatingPoint
from zeromamba_mm.structures.operating_point import LEGACY_META_KEY, META_KEY

PACKAGE = osp.dirname(zeromamba_mm.__file__)


def test_validated_once_with_clear_errors():
    point = OperatingPoint(np.float32(0.5), 'raw', 'clean', 'a test')
    assert point.gamma == 0.5 and type(point.gamma) is float
    with pytest.raises(ValueError, match='finite.*a test'):
        OperatingPoint(math.nan, selected_on='a test')
    with pytest.raises(ValueError, match='finite'):
        OperatingPoint(math.inf)
    with pytest.raises(TypeError, match='number'):
        OperatingPoint('0.3')
    with pytest.raises(TypeError, match='number'):
        OperatingPoint(True)
    with pytest.raises(ValueError, match=r"score_space must be one of .*'x'"):
        OperatingPoint(0.0, 'x')
    with pytest.raises(ValueError, match='protocol must be one of'):
        OperatingPoint(0.0, protocol='oracle')
    # One default score space for metric and inference.
    assert GZSLMetric().score_space == DEFAULT_SCORE_SPACE
    assert OperatingPoint(0.0).score_space == DEFAULT_SCORE_SPACE
    assert DEFAULT_SCORE_SPACE in SCORE_SPACES


def test_meta_round_trip_is_weights_only_safe(tmp_path):
    point = OperatingPoint(0.7, 'softmax', 'paper', 'config test_evaluator')
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(meta={META_KEY: point.to_meta()}), path)
    meta = torch.load(path, weights_only=True)['meta']
    assert OperatingPoint.from_checkpoint_meta(meta) == point
    assert OperatingPoint.from_meta(point.to_meta()) == point
    assert OperatingPoint.from_checkpoint_meta({}) is None
    assert OperatingPoint.from_checkpoint_meta(None) is None
    with pytest.raises(ValueError, match='needs a dict with gamma'):
        OperatingPoint.from_meta({'score_space': 'raw'}, source='x.pth')


def test_legacy_selected_gamma_is_read():
    meta = {
        LEGACY_META_KEY:
        dict(gamma=0.4, score_space='raw', val_H=51.5, epoch=7)
    }
    point = OperatingPoint.from_checkpoint_meta(meta, source='old.pth')
    assert (point.gamma, point.score_space, point.protocol) == (0.4, 'raw',
                                                                'clean')
    assert 'epoch 7' in point.selected_on and '51.50' in point.selected_on
    assert 'old.pth' in point.selected_on
    # The new key wins over the legacy one.
    meta[META_KEY] = OperatingPoint(0.1).to_meta()
    assert OperatingPoint.from_checkpoint_meta(meta).gamma == 0.1


def test_overrides_say_who_set_them():
    point = OperatingPoint(0.7, 'softmax', 'paper', 'the checkpoint')
    assert point.with_overrides() is point
    new = point.with_overrides(gamma=0.0, by='--gamma')
    assert (new.gamma, new.score_space) == (0.0, 'softmax')
    assert new.selected_on.startswith('γ set by --gamma')
    assert 'the checkpoint' in new.selected_on
    with pytest.raises(ValueError):
        point.with_overrides(score_space='logit')


def _cfg(**metric):
    return Config(
        dict(test_evaluator=dict(type='zeromamba_mm.GZSLMetric', **metric)))


def test_resolution_order():
    stored = OperatingPoint(0.55, 'softmax', 'clean', 'validation, epoch 3')
    meta = {META_KEY: stored.to_meta()}
    paper = _cfg(gamma=0.3, score_space='raw')
    # 1. the checkpoint's point, whatever the config says
    point = resolve_operating_point(paper, meta, source='b.pth')
    assert (point.gamma, point.score_space,
            point.protocol) == (0.55, 'softmax', 'clean')
    assert point.selected_on == 'validation, epoch 3, kept in b.pth'
    # 2. else the config's test metric's
    point = resolve_operating_point(paper, {}, source='w.pth')
    assert (point.gamma, point.score_space, point.protocol) == (0.3, 'raw',
                                                                'paper')
    assert 'w.pth keeps no operating point' in point.selected_on
    # 3. else γ = 0 in the default space
    point = resolve_operating_point(Config(dict()), None)
    assert (point.gamma, point.score_space) == (0.0, DEFAULT_SCORE_SPACE)
    # A metric whose γ is known only with a checkpoint: a clear error ...
    for gamma in ('selected', 'sweep'):
        with pytest.raises(ValueError, match='--gamma'):
            resolve_operating_point(
                _cfg(protocol='clean', gamma=gamma), {}, source='w.pth')
    # ... unless γ is given.
    point = resolve_operating_point(
        _cfg(protocol='clean', gamma='selected'), {},
        gamma=0.2,
        overridden_by='--gamma')
    assert point.gamma == 0.2 and '--gamma' in point.selected_on
    # Overrides apply on top of the checkpoint's point.
    point = resolve_operating_point(paper, meta, score_space='raw')
    assert (point.gamma, point.score_space) == (0.55, 'raw')


def _imports(path):
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package path
                parts = osp.relpath(path, osp.dirname(PACKAGE)).split(
                    os.sep)[:-node.level]
                yield '.'.join(parts + ([node.module] if node.module else []))
            else:
                yield node.module or ''


def test_evaluation_does_not_import_visualization():
    root = osp.join(PACKAGE, 'evaluation')
    files = [
        osp.join(folder, name) for folder, _, names in os.walk(root)
        for name in names if name.endswith('.py')
    ]
    assert len(files) >= 6
    for path in files:
        for module in _imports(path):
            assert not module.startswith('zeromamba_mm.visualization'), (
                path, module)
    # And the check can fail: visualization does import evaluation.
    curves = osp.join(PACKAGE, 'visualization', 'curves.py')
    assert any(
        m.startswith('zeromamba_mm.evaluation') for m in _imports(curves))
