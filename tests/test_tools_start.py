"""Starting tools/train.py and tools/test.py: one run per work dir, a failed
start leaves nothing that blocks the retry, and every bad input stops with
one message naming it and the fix (exit 2 for usage errors), no traceback.
"""
import importlib.util
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config

from test_tools_safety import (CONFIG, REPO, load_tool, options, run_test_tool,
                               run_tool, small_model_state)

GATED = osp.join(REPO, 'tests', '_gated_train.py')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    from zeromamba_mm.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, seed=0, images_per_class=3)
    return root


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _wait(condition, what: str, limit: float = 600):
    """Wait for an event (not for a time): ``limit`` only stops a hang."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f'gave up waiting for {what}')
        time.sleep(0.1)


def test_two_starts_together_one_refused_and_a_killed_run_blocks_nothing(
        tmp_path, data_root):
    work_dir = tmp_path / 'work'
    gate = tmp_path / 'gate'
    train = [
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--cfg-options'
    ] + options(data_root)
    starts = []
    for i in range(2):
        out = open(tmp_path / f'out{i}', 'w')
        err = open(tmp_path / f'err{i}', 'w')
        proc = subprocess.Popen(
            [sys.executable, GATED, str(gate)] + train,
            cwd=REPO,
            env=_env(),
            stdout=out,
            stderr=err)
        starts.append((proc, tmp_path / f'out{i}', tmp_path / f'err{i}'))

    def claimed(start):
        return start[1].read_text().startswith('CLAIMED')

    try:
        # Each start either claims the work dir (and waits at the gate) or
        # ends; wait until both did one or the other.
        _wait(
            lambda: all(claimed(s) or s[0].poll() is not None for s in starts),
            'both starts')
        winners = [s for s in starts if claimed(s)]
        assert len(winners) == 1, [s[2].read_text()[-2000:] for s in starts]
        (winner, ) = winners
        (loser, ) = [s for s in starts if s is not winner]
        assert loser[0].wait(timeout=1800) == 2
        err = loser[2].read_text()
        assert f'the work dir {work_dir} is in use by another run ' \
               f'(PID {winner[0].pid})' in err, err
        assert 'Traceback' not in err
    finally:
        for proc, _, _ in starts:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)  # kill -9 the claimed run
            proc.wait(timeout=1800)

    # The killed run's lock went with it: a retry claims the work dir.
    lock = work_dir / '.zeromamba_run.lock'
    assert lock.read_text().strip() == str(winner[0].pid)  # a stale PID
    # A save it had started: a temporary file of a dead PID.
    stale = work_dir / f'.epoch_1.pth.tmp-{winner[0].pid}'
    stale.write_bytes(b'half a checkpoint')
    common = load_tool('_common')
    with common.claim_work_dir(
            Config(dict(work_dir=str(work_dir))), resume=None):
        assert lock.read_text().strip() == str(os.getpid())
    assert not stale.exists()


def test_failed_start_does_not_block_the_retry(monkeypatch, capsys, tmp_path,
                                               data_root):
    work_dir = tmp_path / 'work'
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'not a checkpoint')
    argv = [CONFIG, '--work-dir',
            str(work_dir), '--cfg-options'] + options(data_root)
    # The runner is built (config dumped), then load_from is refused.
    assert run_tool(monkeypatch, 'train', argv + [f'load_from={broken}']) == 1
    assert f'Cannot read checkpoint {broken}' in capsys.readouterr().err
    assert osp.isfile(work_dir / osp.basename(CONFIG))  # the dump is no run
    common = load_tool('_common')
    assert common.existing_run_files(str(work_dir)) == []
    with common.claim_work_dir(
            Config(dict(work_dir=str(work_dir))), resume=None):
        pass  # the corrected retry is not refused

    # A bare state dict given to --resume: a message, not KeyError: 'meta'.
    weights = tmp_path / 'weights.pth'
    torch.save({'fc.weight': torch.zeros(2, 2)}, weights)
    assert run_tool(monkeypatch, 'train',
                    argv[:3] + ['--resume', str(weights)] + argv[3:]) == 1
    err = capsys.readouterr().err
    assert f'Cannot resume from {weights}: it holds model weights only' in err
    assert f'load_from={weights}' in err and 'Traceback' not in err
    assert common.existing_run_files(str(work_dir)) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks a CPU machine')
def test_amp_on_cpu_is_refused_before_anything_is_written(
        monkeypatch, capsys, tmp_path, data_root):
    work_dir = tmp_path / 'work'
    assert run_tool(
        monkeypatch, 'train',
        [CONFIG, '--amp', '--work-dir',
         str(work_dir), '--cfg-options'] + options(data_root)) == 2
    err = capsys.readouterr().err
    assert '--amp (mixed precision training) needs a CUDA' in err
    assert 'Train without --amp' in err
    assert not work_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks a CPU machine')
def test_test_tool_amp_on_cpu_is_refused_before_anything_is_written(
        monkeypatch, capsys, tmp_path, data_root):
    work_dir, checkpoint = tmp_path / 'work', tmp_path / 'model.pth'
    checkpoint.write_bytes(b'never read: --amp is refused first')
    assert run_tool(monkeypatch, 'test', [
        CONFIG,
        str(checkpoint), '--amp', '--work-dir',
        str(work_dir), '--cfg-options'
    ] + options(data_root)) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --amp (mixed precision testing) needs a '
                          'CUDA'), err
    assert 'Test without --amp' in err and 'Traceback' not in err
    assert sorted(os.listdir(tmp_path)) == ['model.pth']


def _last_error(capsys) -> str:
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    return err


def test_missing_config_and_checkpoint_and_existing_out(
        monkeypatch, capsys, tmp_path, data_root):
    missing = str(tmp_path / 'no_such_config.py')
    assert run_tool(monkeypatch, 'train', [missing]) == 2
    assert f'error: config file {missing} does not exist' in _last_error(
        capsys)
    assert run_tool(monkeypatch, 'test', [missing, 'x.pth']) == 2
    assert f'config file {missing} does not exist' in _last_error(capsys)

    ckpt = str(tmp_path / 'no_such.pth')
    assert run_tool(monkeypatch, 'test', [CONFIG, ckpt]) == 2
    assert f'error: checkpoint {ckpt} does not exist' in _last_error(capsys)

    existing = tmp_path / 'preds.pkl'
    existing.write_bytes(b'keep')
    real = tmp_path / 'real.pth'
    real.write_bytes(b'')
    assert run_tool(
        monkeypatch, 'test',
        [CONFIG, str(real), '--out', str(existing)]) == 2
    assert f'--out {existing} exists and is never overwritten' in \
        _last_error(capsys)
    assert existing.read_bytes() == b'keep'


@pytest.mark.skipif(
    os.access('/sys', os.W_OK) and os.getuid() != 0,
    reason='needs a folder this user cannot write')
@pytest.mark.parametrize('name', ['train', 'test'])
def test_unwritable_work_dir(monkeypatch, capsys, tmp_path, data_root, name):
    target = tmp_path / 'a_file'
    target.write_text('a file, not a folder')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    head = [CONFIG] + ([str(ckpt)] if name == 'test' else [])
    for work_dir, expected in (('/sys/zeromamba_work', 'cannot write to '
                                'the work dir /sys/zeromamba_work'),
                               (str(target), f'the work dir {target} is a '
                                'file')):
        assert run_tool(
            monkeypatch, name,
            head + ['--work-dir', work_dir, '--cfg-options'] +
            options(data_root)) == 2
        err = _last_error(capsys)
        assert expected in err and '--work-dir' in err, err


def test_template_without_installed_configs(monkeypatch, capsys, tmp_path):
    import mmengine.config.config as mmengine_config
    template = tmp_path / 'my_config.py'
    shutil.copy(
        osp.join(REPO, 'configs', 'own_data', 'zeromamba_own_data.py'),
        template)
    bare = tmp_path / 'site-packages' / 'zeromamba_mm'  # no .mim inside
    bare.mkdir(parents=True)
    monkeypatch.setattr(mmengine_config, 'get_installed_path',
                        lambda package: str(bare))
    monkeypatch.setattr(mmengine_config, 'is_installed', lambda package: True)
    common = load_tool('_common')
    import zeromamba_mm  # noqa: F401  (adds the zeromamba_mm:: scope)
    with pytest.raises(SystemExit) as info:
        common.load_config(str(template))
    assert info.value.code == 2
    err = _last_error(capsys)
    assert f'{template} inherits the plugin\'s configs' in err
    assert 'pip install -e .' in err


@pytest.mark.parametrize('option,expected', [
    ('model.hed.x=1', "model (zeromamba_mm.ZeroShotClassifier) has no key "
     "or argument 'hed'. Did you mean 'head'?"),
    ('train_dataloader.dataset.data_roott=/d',
     "train_dataloader.dataset (zeromamba_mm.ZSLDataset) has no key or "
     "argument 'data_roott'. Did you mean 'data_root'?"),
    ('train_cfg.max_epoch=3', "Did you mean 'max_epochs'?"),
])
def test_nested_cfg_options_typos(monkeypatch, capsys, option, expected):
    tool = load_tool('train')
    monkeypatch.setattr(sys, 'argv',
                        ['train.py', CONFIG, '--cfg-options', option])
    args = tool.parse_args()
    with pytest.raises(SystemExit) as info:
        tool.merge_args(Config.fromfile(CONFIG), args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    key = option.split('=')[0]
    assert f'--cfg-options {key}: ' in err and expected in err, err


def test_cfg_options_new_valid_keys_and_spaces(monkeypatch, capsys, tmp_path):
    tool = load_tool('train')
    spaced = str(tmp_path / 'my data' / 'set 1')
    monkeypatch.setattr(
        sys,
        'argv',
        [
            'train.py',
            CONFIG,
            '--cfg-options',
            # arguments the classes take, which the config leaves at defaults
            'model.backbone.drop_path_rate=0.1',
            'val_dataloader.dataset.indices=7',
            f'train_dataloader.dataset.data_root={spaced}',
            'train_cfg.max_epochs=3'
        ])
    cfg = tool.merge_args(Config.fromfile(CONFIG), tool.parse_args())
    assert cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.val_dataloader.dataset.indices == 7
    assert cfg.train_dataloader.dataset.data_root == spaced  # spaces kept
    assert cfg.train_cfg.max_epochs == 3

    # Spaces inside a list element, and an unquoted value split by the shell.
    for values, expected in (
        (['model.head.names=[a b,c]'], 'a list element holds spaces'),
        (['train_dataloader.dataset.data_root=/my',
          'data'], "'data' is not KEY=VALUE"),
    ):
        monkeypatch.setattr(sys, 'argv',
                            ['train.py', CONFIG, '--cfg-options'] + values)
        with pytest.raises(SystemExit) as info:
            tool.parse_args()
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert expected in err, err
        assert 'quote' in err or 'config file' in err


def test_full_disk_during_training_is_one_message(monkeypatch, capsys,
                                                  tmp_path):
    import errno

    from zeromamba_mm.utils import DiskFullError
    tool = load_tool('train')
    message = f'No space left on the disk of {tmp_path} while writing x.pth'

    def run():  # what ZSLRunner.save_checkpoint raises on a full disk
        raise DiskFullError(errno.ENOSPC, message)

    monkeypatch.setattr(tool, 'run', run)
    with pytest.raises(SystemExit) as info:
        tool.main()
    assert info.value.code == 1
    err = _last_error(capsys)
    assert err == f'error: {message}\n'


@pytest.mark.parametrize('launcher,variable',
                         [('pytorch', 'RANK'), ('slurm', 'SLURM_PROCID'),
                          ('mpi', 'OMPI_COMM_WORLD_RANK')])
def test_only_rank_zero_claims_the_work_dir(monkeypatch, tmp_path, launcher,
                                            variable):
    common = load_tool('_common')
    work_dir = tmp_path / 'work'
    cfg = Config(dict(work_dir=str(work_dir), launcher=launcher))
    monkeypatch.delenv('RANK', raising=False)
    with common.claim_work_dir(cfg, resume=None):  # rank 0
        # The other ranks of the same job start while rank 0 holds it (the
        # tools run before MMEngine sets RANK for Slurm and MPI).
        monkeypatch.setenv(variable, '1')
        with common.claim_work_dir(cfg, resume=None):
            pass
        monkeypatch.setenv(variable, '0')
        with pytest.raises(SystemExit):  # a second rank 0: another run
            with common.claim_work_dir(cfg, resume=None):
                pass


def _repeat_an_unseen_image(root: str, copy: str) -> str:
    import scipy.io as sio
    shutil.copytree(root, copy)
    splits = {
        k: v
        for k, v in sio.loadmat(osp.join(root, 'att_splits.mat')).items()
        if not k.startswith('__')
    }
    loc = splits['test_unseen_loc']
    splits['test_unseen_loc'] = np.concatenate([loc, loc[:1]])
    sio.savemat(osp.join(copy, 'att_splits.mat'), splits)
    return copy


@pytest.mark.parametrize('bad', ['repeated_image', 'val_subset'])
def test_bad_data_is_one_message(monkeypatch, capsys, tmp_path, data_root,
                                 bad):
    """Bad data found while the runner is built or starts (here: an image
    listed twice, a validation subset without unseen-class images) stops
    with the message alone (exit 1), before the first iteration."""
    extra, expected = [], "duplicate image indices in 'test_unseen_loc'"
    root = data_root
    if bad == 'repeated_image':
        root = _repeat_an_unseen_image(data_root, str(tmp_path / 'data'))
    else:
        extra = ['val_dataloader.dataset.indices=1']
        expected = 'holds 1 seen-class and 0 unseen-class images'
    work_dir = tmp_path / 'work'
    assert run_tool(monkeypatch, 'train',
                    [CONFIG, '--work-dir',
                     str(work_dir), '--cfg-options'] + options(root) +
                    extra) == 1
    err = _last_error(capsys)
    assert err.startswith('error: ') and expected in err, err
    assert not list(work_dir.glob('*.pth'))


def test_get_flops_names_a_missing_config(capsys, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'get_flops', osp.join(REPO, 'tools', 'analysis_tools', 'get_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = str(tmp_path / 'no_such_config.py')
    with pytest.raises(SystemExit) as exit_:
        module.main([missing])
    assert exit_.value.code == 2
    assert f'error: config file {missing} does not exist' in _last_error(
        capsys)


def test_test_tool_bad_data_is_one_message(monkeypatch, capsys, tmp_path,
                                           data_root):
    root = _repeat_an_unseen_image(data_root, str(tmp_path / 'data'))
    checkpoint = str(tmp_path / 'model.pth')
    torch.save({'state_dict': small_model_state(8)}, checkpoint)
    assert run_test_tool(monkeypatch, tmp_path, root, checkpoint) == 1
    err = _last_error(capsys)
    assert err.startswith('error: ') and "duplicate image indices in " \
        "'test_unseen_loc'" in err, err
