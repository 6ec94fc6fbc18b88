"""OperatingPointHook (formerly SelectedGammaHook): record the operating point
the metric publishes in every checkpoint, hand it to the test metric (the
runner is stood in for by plain objects)."""
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.config import Config

from zeromamba_mm.engine.hooks import OperatingPointHook, SelectedGammaHook
from zeromamba_mm.evaluation import GZSLMetric, gzsl_accuracy
from zeromamba_mm.registry import HOOKS
from zeromamba_mm.structures import OperatingPoint
from zeromamba_mm.structures.operating_point import LEGACY_META_KEY, META_KEY

SCORES = np.array([[2.0, 0.5, 1.0], [0.1, 1.0, 0.95], [0.3, 0.2, 0.1]])
TARGET = np.array([0, 2, 1])
META = dict(seen_classes=[0, 1], unseen_classes=[2])


def fake_runner(test_metrics=(), epoch=0, cfg=None):
    """No val loop: the hook must learn the point from the metrics alone."""
    return SimpleNamespace(
        test_loop=SimpleNamespace(
            evaluator=SimpleNamespace(metrics=list(test_metrics))),
        epoch=epoch,
        cfg=cfg,
        message_hub=SimpleNamespace(runtime_info={}))


def results(metric, scores=SCORES, target=TARGET):
    metric.dataset_meta = META
    return metric.compute_metrics([
        dict(pred_score=s, gt_label=int(t), sample_idx=i, img_path=None)
        for i, (s, t) in enumerate(zip(scores, target))
    ])


def test_registered_under_both_names():
    assert HOOKS.get('OperatingPointHook') is OperatingPointHook
    assert HOOKS.get('SelectedGammaHook') is OperatingPointHook
    assert SelectedGammaHook is OperatingPointHook


def test_clean_protocol_keeps_the_gamma_of_the_best_h():
    hook = OperatingPointHook()
    hook.before_run(fake_runner())  # no config: no fixed test γ
    val = GZSLMetric(protocol='clean', score_space='raw', prefix='val')
    history = [(1, 40.0, 0.5), (2, 55.0, 0.25), (3, 55.0, 0.9), (4, 30.0, 2.)]
    saved = {}
    for epoch, h, gamma in history:
        runner = fake_runner(epoch=epoch)
        # What the metric publishes (the γ it swept), with H of this epoch.
        published = results(val)
        point = published.pop('gzsl/operating_point')
        assert point['selected_on'] == 'swept on this validation split'
        metrics = {
            'val/gzsl/H': h,
            'val/gzsl/gamma': gamma,
            'val/gzsl/operating_point': dict(point, gamma=gamma)
        }
        runner.message_hub.runtime_info['val/val/gzsl/operating_point'] = 1
        hook.after_val_epoch(runner, metrics)
        # Taken out of the metrics and the hub: the log shows numbers only.
        assert 'val/gzsl/operating_point' not in metrics
        assert runner.message_hub.runtime_info == {}
        checkpoint = {'meta': {'epoch': epoch}}
        hook.before_save_checkpoint(runner, checkpoint)
        saved[epoch] = checkpoint
    # Ties keep the earlier epoch ('>' as CheckpointHook's rule='greater').
    stored = OperatingPoint.from_meta(saved[4]['meta'][META_KEY])
    assert (stored.gamma, stored.score_space, stored.protocol) == (0.25, 'raw',
                                                                   'clean')
    assert 'epoch 2' in stored.selected_on and '55.00' in stored.selected_on
    assert saved[1]['meta'][META_KEY]['gamma'] == 0.5
    # Plain types only (a weights-only torch.load reads them).
    assert all(
        type(v) in (float, str) for v in saved[4]['meta'][META_KEY].values())

    # A fresh process: the test run loads the checkpoint, then tests.
    tester = OperatingPointHook()
    test = GZSLMetric(protocol='clean', gamma='selected', score_space='raw')
    runner = fake_runner([test])
    tester.after_load_checkpoint(runner, saved[2])
    tester.before_test(runner)
    out = results(test)
    ref = gzsl_accuracy(SCORES, TARGET, [0, 1], [2], 0.25, 'raw')
    assert out['gzsl/H'] == pytest.approx(100 * ref['H'])
    assert out['gzsl/gamma'] == 0.25


def test_paper_protocol_records_the_test_metric_point():
    cfg = Config(
        dict(
            test_evaluator=dict(
                type='zeromamba_mm.GZSLMetric',
                gamma=0.7,
                score_space='softmax')))
    hook = OperatingPointHook()
    runner = fake_runner(cfg=cfg, epoch=1)
    hook.before_run(runner)
    metrics = results(GZSLMetric(gamma=0.3))  # validation at another γ
    hook.after_val_epoch(runner, metrics)
    assert 'gzsl/operating_point' not in metrics
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    point = OperatingPoint.from_meta(checkpoint['meta'][META_KEY])
    assert (point.gamma, point.score_space, point.protocol) == (0.7, 'softmax',
                                                                'paper')
    assert 'config' in point.selected_on
    hook.before_test(fake_runner([GZSLMetric(gamma=0.3)]))  # nothing to do


def test_legacy_meta_mismatch_and_missing_selection():
    hook = OperatingPointHook()
    test = GZSLMetric(protocol='clean', gamma='selected', score_space='raw')
    runner = fake_runner([test])
    with pytest.raises(RuntimeError, match='gamma=<float>'):
        hook.before_test(runner)
    legacy = dict(gamma=0.3, score_space='raw', val_H=1.0, epoch=1)
    hook.after_load_checkpoint(runner, {'meta': {LEGACY_META_KEY: legacy}})
    hook.before_test(runner)
    assert test.selected_point.gamma == 0.3
    assert 'epoch 1' in test.selected_point.selected_on
    hook.after_load_checkpoint(runner, {
        'meta': {
            META_KEY: OperatingPoint(0.3, 'softmax', 'clean', 'x').to_meta()
        }
    })
    with pytest.raises(ValueError, match="score_space='softmax'"):
        hook.before_test(runner)
