"""ZSLRunner recovers what interruptions take: a validation killed half-way
runs again after the resume, a save killed half-way leaves no temporary file
for long, a full disk leaves no partial checkpoint, and two runs started in
the same second never share a logger."""
import errno
import glob
import os
import os.path as osp
import subprocess
import sys
import time
import types

import mmengine.runner.runner as mmengine_runner
import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook

from _toy_runner import toy_runner  # noqa: I100
from zeromamba_mm.engine.hooks.owed_validation_hook import STATE_NAME
from zeromamba_mm.utils import DiskFullError, load_torch_file


class _KilledDuringValidation(Exception):
    pass


class _KillDuringValidation(Hook):
    """Stops the run half-way through the validation of one epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_val_iter(self,
                       runner,
                       batch_idx,
                       data_batch=None,
                       outputs=None) -> None:
        if runner.epoch == self.epoch and batch_idx == 1:
            raise _KilledDuringValidation


class _RecordValidations(Hook):
    """Records (epoch, metrics) of every validation."""

    def __init__(self) -> None:
        self.records = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.records.append((runner.epoch, dict(metrics)))


@pytest.mark.parametrize('killed_epoch', [1, 2])
def test_validation_killed_half_way_runs_after_resume(tmp_path, killed_epoch):
    straight = _RecordValidations()
    full = toy_runner(
        str(tmp_path / 'full'),
        max_epochs=2,
        metric='ToyErrorMetric',
        custom_hooks=[straight])
    full.train()

    work_dir = tmp_path / 'part'
    part = toy_runner(
        str(work_dir),
        max_epochs=2,
        metric='ToyErrorMetric',
        custom_hooks=[_KillDuringValidation(killed_epoch)])
    with pytest.raises(_KilledDuringValidation):
        part.train()
    assert open(work_dir /
                'last_checkpoint').read().endswith(f'epoch_{killed_epoch}.pth')

    resumed_records = _RecordValidations()
    resumed = toy_runner(
        str(work_dir),
        max_epochs=2,
        metric='ToyErrorMetric',
        resume=True,
        custom_hooks=[resumed_records])
    resumed.train()
    # The interrupted validation ran first, then the remaining epochs: the
    # same validations with the same metrics as the uninterrupted run.
    assert resumed_records.records == straight.records[killed_epoch - 1:]
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(
            resumed.model.state_dict()[key], value, rtol=0, atol=0)
    # The best checkpoint is that of the uninterrupted run.
    best_full = sorted(
        osp.basename(p) for p in glob.glob(str(tmp_path / 'full' / 'best_*')))
    best_resumed = sorted(
        osp.basename(p) for p in glob.glob(str(work_dir / 'best_*')))
    assert best_resumed == best_full and best_full
    # A validation that finished is not repeated by the next resume.
    again = _RecordValidations()
    toy_runner(
        str(work_dir),
        max_epochs=2,
        metric='ToyErrorMetric',
        resume=True,
        custom_hooks=[again]).train()
    assert again.records == []
    assert osp.isfile(work_dir / STATE_NAME)


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    # A process that has ended: its PID is free (not reused this instant).
    dead = subprocess.run(
        [sys.executable, '-c', 'import os; print(os.getpid())'],
        capture_output=True,
        text=True).stdout.strip()
    stale = work_dir / f'.epoch_1.pth.tmp-{dead}'
    stale.write_bytes(b'half a checkpoint')
    live = work_dir / f'.epoch_1.pth.tmp-{os.getppid()}'
    live.write_bytes(b'being written by a live process')
    # Not the project's temporaries: other names, a folder, a link.
    others = [
        work_dir / f'epoch_1.pth.tmp-{dead}', work_dir / f'.notes.tmp{dead}',
        work_dir / f'.data.tmp-{dead}x'
    ]
    for other in others:
        other.write_text('a user file')
    folder = work_dir / f'.cache.tmp-{dead}'
    folder.mkdir()
    link = work_dir / f'.link.tmp-{dead}'
    link.symlink_to(others[0])
    toy_runner(str(work_dir), max_epochs=1).train()
    assert not stale.exists()
    assert live.exists()
    assert all(other.exists() for other in others)
    assert folder.is_dir() and link.is_symlink()
    assert load_torch_file(str(work_dir / 'epoch_1.pth'))['meta']['epoch'] == 1


def test_full_disk_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    work_dir = tmp_path / 'work'
    original = LocalBackend.put

    def put(self, obj, filepath):
        if 'epoch_2' in str(filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:100])  # what fitted before the disk was full
            raise OSError(errno.ENOSPC, 'No space left on device')
        return original(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)
    runner = toy_runner(str(work_dir), max_epochs=2)
    with pytest.raises(DiskFullError) as info:
        runner.train()
    assert f'No space left on the disk of {work_dir}' in str(info.value)
    assert 'epoch_2.pth' in str(info.value)
    names = os.listdir(work_dir)
    assert 'epoch_2.pth' not in names
    assert not [n for n in names if '.tmp' in n], names
    # The previous checkpoint is intact and still the last one.
    last = open(work_dir / 'last_checkpoint').read()
    assert last.endswith('epoch_1.pth')
    assert load_torch_file(last)['meta']['epoch'] == 1


def test_runners_started_in_the_same_second_share_nothing(
        tmp_path, monkeypatch):
    second = time.time()
    frozen = types.SimpleNamespace(
        time=lambda: second, strftime=time.strftime, localtime=time.localtime)
    monkeypatch.setattr(mmengine_runner, 'time', frozen)
    first = toy_runner(
        str(tmp_path / 'a'), max_epochs=1, experiment_name='same')
    other = toy_runner(
        str(tmp_path / 'b'), max_epochs=1, experiment_name='same')
    assert first.timestamp.split('_')[:2] == other.timestamp.split('_')[:2]
    assert first.experiment_name != other.experiment_name
    assert first.logger is not other.logger
    assert first.message_hub is not other.message_hub
    assert first.visualizer is not other.visualizer
    # One process, one work dir: still two log folders and log files.
    third = toy_runner(
        str(tmp_path / 'a'), max_epochs=1, experiment_name='same')
    assert third.log_dir != first.log_dir
    files = [
        h.baseFilename for r in (first, other, third)
        for h in r.logger.handlers if hasattr(h, 'baseFilename')
    ]
    assert len(files) == len(set(files)) == 3
    # The first run's log stays its own after the others were built.
    first.logger.info('first run line')
    third.logger.info('third run line')
    log_of = {
        r: open(glob.glob(osp.join(r.log_dir, '*.log'))[0]).read()
        for r in (first, third)
    }
    assert 'first run line' in log_of[first]
    assert 'third run line' not in log_of[first]
    assert 'third run line' in log_of[third]
