"""SelectedGammaHook: select γ on validation, keep it with the checkpoint,
hand it to the test metric (the runner is stood in for by plain objects)."""
from types import SimpleNamespace

import numpy as np
import pytest

from zeromamba_mm.engine.hooks import SelectedGammaHook
from zeromamba_mm.engine.hooks.selected_gamma_hook import META_KEY
from zeromamba_mm.evaluation import GZSLMetric, gzsl_accuracy
from zeromamba_mm.registry import HOOKS


def fake_runner(val_metrics=(), test_metrics=(), epoch=0):
    loop = lambda metrics: SimpleNamespace(  # noqa: E731
        evaluator=SimpleNamespace(metrics=list(metrics)))
    return SimpleNamespace(
        val_loop=loop(val_metrics), test_loop=loop(test_metrics), epoch=epoch)


def test_keeps_the_gamma_of_the_best_h_and_restores_it():
    assert HOOKS.get('SelectedGammaHook') is SelectedGammaHook
    hook = SelectedGammaHook()
    val = GZSLMetric(protocol='clean', score_space='raw', prefix='val')
    history = [(1, 40.0, 0.5), (2, 55.0, 0.25), (3, 55.0, 0.9), (4, 30.0, 2.)]
    saved = {}
    for epoch, h, gamma in history:
        runner = fake_runner([val], epoch=epoch)
        hook.after_val_epoch(runner, {
            'val/gzsl/H': h,
            'val/gzsl/gamma': gamma,
            'val/zsl/top1': 1.0
        })
        checkpoint = {'meta': {'epoch': epoch}}
        hook.before_save_checkpoint(runner, checkpoint)
        saved[epoch] = checkpoint
    # Ties keep the earlier epoch ('>' as CheckpointHook's rule='greater').
    assert saved[4]['meta'][META_KEY] == dict(
        gamma=0.25, score_space='raw', val_H=55.0, epoch=2)
    assert saved[1]['meta'][META_KEY]['gamma'] == 0.5

    # A fresh process: the test run loads the checkpoint, then tests.
    tester = SelectedGammaHook()
    test = GZSLMetric(protocol='clean', gamma='selected', score_space='raw')
    runner = fake_runner(test_metrics=[test])
    tester.after_load_checkpoint(runner, saved[2])
    tester.before_test(runner)
    assert test.selected_gamma == 0.25
    assert 'epoch 2' in test.selected_gamma_source

    # The metric then uses it.
    scores = np.array([[2.0, 0.5, 1.0], [0.1, 1.0, 0.95], [0.3, 0.2, 0.1]])
    target = np.array([0, 2, 1])
    test.dataset_meta = dict(seen_classes=[0, 1], unseen_classes=[2])
    out = test.compute_metrics([
        dict(pred_score=s, gt_label=int(t), sample_idx=i, img_path=None)
        for i, (s, t) in enumerate(zip(scores, target))
    ])
    ref = gzsl_accuracy(scores, target, [0, 1], [2], 0.25, 'raw')
    assert out['gzsl/H'] == pytest.approx(100 * ref['H'])
    assert out['gzsl/gamma'] == 0.25


def test_score_space_mismatch_and_missing_selection():
    hook = SelectedGammaHook()
    test = GZSLMetric(protocol='clean', gamma='selected', score_space='raw')
    runner = fake_runner(test_metrics=[test])
    with pytest.raises(RuntimeError, match='gamma=<float>'):
        hook.before_test(runner)
    hook.after_load_checkpoint(
        runner, {
            'meta': {
                META_KEY:
                dict(gamma=0.3, score_space='softmax', val_H=1.0, epoch=1)
            }
        })
    with pytest.raises(ValueError, match="score_space='softmax'"):
        hook.before_test(runner)


def test_paper_protocol_is_left_alone():
    hook = SelectedGammaHook()
    val = GZSLMetric(gamma=0.3)  # paper protocol
    runner = fake_runner([val], [GZSLMetric(gamma=0.3)], epoch=1)
    hook.after_val_epoch(runner, {'gzsl/H': 50.0, 'gzsl/gamma': 0.3})
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint == {'meta': {}}
    hook.after_load_checkpoint(runner, {'meta': {}})
    hook.before_test(runner)  # nothing to hand over, no error
    assert hook.selected is None
