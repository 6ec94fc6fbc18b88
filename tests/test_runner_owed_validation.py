"""OwedValidationHook: a resumed run gets the validation its checkpoint
lacks, wherever the checkpoint lies (short real runs of the toy runner)."""
import glob
import os.path as osp
import shutil

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.registry import METRICS

from _toy_runner import toy_runner  # noqa: I100
from test_runner_recovery import (_KilledDuringValidation,
                                  _KillDuringValidation, _RecordValidations)
from zeromamba_mm.engine.hooks.owed_validation_hook import VALIDATED_KEY
from zeromamba_mm.utils import load_torch_file



class _Scores(Hook):
    """Sets the metric's score of the epoch being validated."""

    def __init__(self, scores: dict) -> None:
        self.scores = scores

    def before_val_epoch(self, runner) -> None:
        ToyScheduledMetric.score = self.scores[runner.epoch]


@METRICS.register_module(force=True)
class ToyScheduledMetric(BaseMetric):
    """``toy/acc`` given per epoch (``_Scores``): the best epoch is known.

    MMEngine saves the epoch's checkpoint again after a new best, so only a
    validation that is *not* a new best is missing from ``epoch_N.pth``.
    """
    default_prefix = 'toy'
    score = None

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return dict(acc=ToyScheduledMetric.score)


class _KilledInTraining(Exception):
    pass


class _KillAtEpochStart(Hook):
    """Stops the run when training of epoch ``epoch`` (1-based) begins."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise _KilledInTraining


def run(work_dir, scores, max_epochs=2, hooks=(), **kwargs):
    records = _RecordValidations()
    runner = toy_runner(
        str(work_dir),
        max_epochs=max_epochs,
        metric='ToyScheduledMetric',
        custom_hooks=[_Scores(scores), records, *hooks],
        **kwargs)
    return runner, records


def best_files(work_dir):
    return sorted(
        osp.basename(p) for p in glob.glob(osp.join(str(work_dir), 'best_*')))


def assert_same_weights(runner, expected):
    for key, value in expected.model.state_dict().items():
        torch.testing.assert_close(
            runner.model.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize('killed_epoch', [1, 2])
def test_resume_path_in_another_dir_reruns_the_killed_validation(
        tmp_path, killed_epoch):
    scores = {1: 1.0, 2: 3.0}
    full, straight = run(tmp_path / 'full', scores)
    full.train()
    part, _ = run(
        tmp_path / 'part',
        scores,
        hooks=[_KillDuringValidation(killed_epoch)])
    with pytest.raises(_KilledDuringValidation):
        part.train()
    # --resume PATH into a new work dir, which holds no record.
    resumed, records = run(
        tmp_path / 'other',
        scores,
        resume=True,
        load_from=str(tmp_path / 'part' / f'epoch_{killed_epoch}.pth'))
    resumed.train()
    assert records.records == straight.records[killed_epoch - 1:]
    assert best_files(tmp_path / 'other') == best_files(tmp_path / 'full') \
        == ['best_toy_acc_epoch_2.pth']


def test_finished_validation_reruns_when_training_continues(tmp_path):
    """The interrupted run finished epoch 2's validation (not a new best, so
    epoch_2.pth was not saved again); the plateau scheduler's step after it
    is not in the checkpoint: skipping it trains epoch 3 at the old rate."""
    scores = {1: 3.0, 2: 1.0, 3: 1.0}
    plateau = dict(
        type='ReduceOnPlateauLR',
        monitor='toy/acc',
        rule='greater',
        factor=0.5,
        patience=0)
    full, straight = run(
        tmp_path / 'full', scores, max_epochs=3, param_scheduler=plateau)
    full.train()
    part, _ = run(
        tmp_path / 'part',
        scores,
        max_epochs=3,
        param_scheduler=plateau,
        hooks=[_KillAtEpochStart(3)])
    with pytest.raises(_KilledInTraining):
        part.train()
    epoch_2 = load_torch_file(str(tmp_path / 'part' / 'epoch_2.pth'))
    assert epoch_2['meta'][VALIDATED_KEY] is False
    resumed, records = run(
        tmp_path / 'part',
        scores,
        max_epochs=3,
        param_scheduler=plateau,
        resume=True)
    resumed.train()
    assert records.records == straight.records[1:]
    assert resumed.optim_wrapper.get_lr() == full.optim_wrapper.get_lr() \
        == dict(lr=[0.025])
    assert_same_weights(resumed, full)
    assert best_files(tmp_path / 'part') == ['best_toy_acc_epoch_1.pth']


def test_last_epoch_uses_the_record_next_to_the_checkpoint(tmp_path):
    scores = {1: 3.0, 2: 1.0}  # epoch 2: not a new best
    done, _ = run(tmp_path / 'done', scores)
    done.train()
    # The record next to the checkpoint says the validation finished.
    again, records = run(
        tmp_path / 'elsewhere',
        scores,
        resume=True,
        load_from=str(tmp_path / 'done' / 'epoch_2.pth'))
    again.train()
    assert records.records == []
    # A copy without its record: the validation runs (cannot tell).
    shutil.copy(tmp_path / 'done' / 'epoch_2.pth', tmp_path / 'copy.pth')
    copied, records = run(
        tmp_path / 'from_copy',
        scores,
        resume=True,
        load_from=str(tmp_path / 'copy.pth'))
    copied.train()
    assert records.records == [(2, {'toy/acc': 1.0})]
    assert copied.message_hub.get_info('best_score') == 3.0


def test_a_best_checkpoint_holds_its_validation(tmp_path):
    scores = {1: 3.0, 2: 1.0, 3: 2.0}
    full, _ = run(tmp_path / 'full', scores, max_keep_ckpts=3)
    full.train()
    best = tmp_path / 'full' / 'best_toy_acc_epoch_1.pth'

    def validated(name):
        return load_torch_file(str(tmp_path / 'full' / name))['meta'][
            VALIDATED_KEY]

    # epoch_1.pth was saved again after its validation's new best.
    assert validated('best_toy_acc_epoch_1.pth') is True
    assert validated('epoch_1.pth') is True
    assert validated('epoch_2.pth') is False
    # Resumed from the best checkpoint with a longer schedule: epoch 1's
    # validation is in its state and does not run again.
    resumed, records = run(
        tmp_path / 'on',
        scores,
        max_epochs=3,
        resume=True,
        load_from=str(best))
    resumed.train()
    assert [epoch for epoch, _ in records.records] == [2, 3]
    assert resumed.message_hub.get_info('best_score') == 3.0
