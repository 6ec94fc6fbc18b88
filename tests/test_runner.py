"""ZSLRunner and SafeCheckpointHook: safe and strict reading, exact resume,
crash-safe saving, and an mmengine that importing zeromamba_mm leaves alone.
"""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from _toy_runner import ToyModel, toy_runner  # noqa: I100
from test_safe_load import LAYOUTS, write_malicious
from zeromamba_mm.models.utils import CheckpointMismatchError
from zeromamba_mm.utils import UnsafeFileError, load_torch_file

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY = osp.join(REPO, 'tests', '_toy_runner.py')


def test_import_leaves_mmengine_untouched():
    script = textwrap.dedent('''
        import mmengine.dist.utils as dist_utils
        from mmengine.runner import Runner
        from mmengine.runner.checkpoint import CheckpointLoader
        before = dict(
            schemes=dict(CheckpointLoader._schemes),
            resume=Runner.resume,
            load_checkpoint=Runner.load_checkpoint,
            wrap_model=Runner.wrap_model,
            setup_env=Runner.setup_env,
            save_checkpoint=Runner.save_checkpoint,
            init_dist_pytorch=dist_utils._init_dist_pytorch)
        import zeromamba_mm  # noqa
        after = dict(
            schemes=dict(CheckpointLoader._schemes),
            resume=Runner.resume,
            load_checkpoint=Runner.load_checkpoint,
            wrap_model=Runner.wrap_model,
            setup_env=Runner.setup_env,
            save_checkpoint=Runner.save_checkpoint,
            init_dist_pytorch=dist_utils._init_dist_pytorch)
        changed = [k for k in before if k != 'schemes'
                   and before[k] is not after[k]]
        changed += [f'scheme {s!r}' for s in set(before['schemes'])
                    | set(after['schemes'])
                    if before['schemes'].get(s) is not after['schemes'].get(s)]
        assert Runner.resume.__module__ == 'mmengine.runner.runner'
        print('CHANGED', changed)
    ''')
    result = subprocess.run([sys.executable, '-c', script],
                            cwd=REPO,
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'CHANGED []' in result.stdout, result.stdout


def _weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_resume_is_exact_and_safe_hook_keeps_one_best(tmp_path):
    full = toy_runner(str(tmp_path / 'full'), max_epochs=3)
    full.train()
    expected = _weights(full)

    part = toy_runner(str(tmp_path / 'part'), max_epochs=1)
    part.train()
    # The checkpoint this project writes resumes through safe_load.
    resumed = toy_runner(
        str(tmp_path / 'part'),
        max_epochs=3,
        resume=True,
        load_from=str(tmp_path / 'part' / 'epoch_1.pth'))
    resumed.train()
    for key, value in expected.items():
        torch.testing.assert_close(
            resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert resumed.epoch == full.epoch == 3
    # The message hub came back from the checkpoint (HistoryBuffer through
    # the restricted unpickler): the loss history of epoch 1 is there.
    history, _ = resumed.message_hub.get_scalar('train/loss').data
    expected_history, _ = full.message_hub.get_scalar('train/loss').data
    assert len(expected_history) == 12
    np.testing.assert_array_equal(history, expected_history)

    names = sorted(os.listdir(tmp_path / 'full'))
    # max_keep_ckpts=1: only the last epoch, one best, no temporary file.
    assert [n for n in names if n.endswith('.pth')] == [
        'best_toy_acc_epoch_3.pth', 'epoch_3.pth'
    ]
    assert not [n for n in names if '.tmp' in n]
    last = open(tmp_path / 'full' / 'last_checkpoint').read()
    assert last == str(tmp_path / 'full' / 'epoch_3.pth')
    assert load_torch_file(last)['meta']['epoch'] == 3


@pytest.mark.parametrize('layout', LAYOUTS)
def test_load_from_and_resume_refuse_malicious_files(tmp_path, layout):
    marker = str(tmp_path / 'MARKER')
    path = write_malicious(str(tmp_path / f'{layout}.pth'), layout, marker)
    runner = toy_runner(str(tmp_path / 'work'), max_epochs=1)
    with pytest.raises(UnsafeFileError, match=f'{layout}.pth'):
        runner.load_checkpoint(path)
    with pytest.raises(UnsafeFileError, match=f'{layout}.pth'):
        runner.resume(path)
    assert not osp.exists(marker)


def test_strict_load_names_the_file_and_keys(tmp_path):
    other = torch.nn.Linear(3, 1)  # other input width: mis-shaped fc
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {'fc.weight': other.weight,
                               'extra.bias': other.bias}}, path)
    runner = toy_runner(str(tmp_path / 'work'), max_epochs=1)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.load_checkpoint(path, strict=True)
    message = str(info.value)
    assert path in message
    assert 'fc.weight: expected (1, 4), found (1, 3)' in message
    assert 'missing from checkpoint: fc.bias' in message
    assert 'unexpected in checkpoint: extra.bias' in message
    assert '--partial-load' in message

    # Partial loading (mmengine's default) loads what matches: nothing
    # here but no error; a matching file loads exactly.
    before = _weights(runner)
    runner.load_checkpoint(path, strict=False)
    good = ToyModel()
    with torch.no_grad():
        good.fc.weight.add_(1.0)
    torch.save({'state_dict': good.state_dict()}, path)
    runner.load_checkpoint(path, strict=True)
    torch.testing.assert_close(runner.model.fc.weight, good.fc.weight)
    assert not torch.equal(before['fc.weight'], good.fc.weight)


def test_auto_resume_without_checkpoint_says_so(tmp_path):
    runner = toy_runner(str(tmp_path / 'work'), max_epochs=1, resume=True)
    runner.train()
    log = open(glob.glob(str(tmp_path / 'work' / '*' / '*.log'))[0]).read()
    assert 'nothing to resume, starting a new run' in log
    assert 'resumed from the latest checkpoint None' not in log
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def _kill_mid_save(work_dir: str, runner: str, kill_at: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.Popen([sys.executable, TOY, work_dir, runner, kill_at],
                            cwd=REPO,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('WRITING'):
                break
        else:
            raise AssertionError('the save never started:\n' +
                                 ''.join(lines[-40:]))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def _loadable(path: str) -> bool:
    try:
        load_torch_file(path)
        return True
    except Exception:
        return False


@pytest.mark.parametrize('kill_at', ['last', 'best'])
def test_kill_during_save_keeps_good_checkpoints(tmp_path, kill_at):
    work_dir = str(tmp_path / 'work')
    _kill_mid_save(work_dir, 'zsl', kill_at)
    last = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    assert _loadable(last), f'last_checkpoint -> {last} is not loadable'
    bests = glob.glob(osp.join(work_dir, 'best_*.pth'))
    assert bests and all(_loadable(p) for p in bests)
    # No half-written file under a checkpoint's name.
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        assert _loadable(path), path
    expected_last = 'epoch_1.pth' if kill_at == 'last' else 'epoch_2.pth'
    assert osp.basename(last) == expected_last


def test_kill_during_save_loses_the_checkpoint_with_mmengine(tmp_path):
    """The same crash with MMEngine's Runner and CheckpointHook (what the
    test above guards against): the previous checkpoint was removed first
    and the new one is truncated under its final name."""
    work_dir = str(tmp_path / 'work')
    _kill_mid_save(work_dir, 'mmengine', 'last')
    last = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    assert not _loadable(last)
    assert not _loadable(osp.join(work_dir, 'epoch_2.pth'))
