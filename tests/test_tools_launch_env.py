"""tools/{dist,slurm}_{train,test}.sh refuse launcher settings that are not
whole numbers in range, naming the setting, before torchrun or srun runs."""
import os
import os.path as osp
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LAUNCH_VARS = ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'NNODES', 'NODE_RANK',
               'PORT')


def run_script(tmp_path, script, args, **env):
    """Run a launch script with a PATH whose srun and python record that
    they were called (they must not be, for bad settings)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    called = tmp_path / 'called'
    for name in ('srun', 'fake_python'):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho {name} "$@" >> {called}\n')
        tool.chmod(0o755)
    full_env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    full_env.update(
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        PYTHON=str(bin_dir / 'fake_python'),
        **env)
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', script)] + args,
        env=full_env,
        capture_output=True,
        text=True)
    return proc, called.exists()


DIST = [('dist_train.sh', ['cfg.py']), ('dist_test.sh', ['cfg.py', 'c.pth'])]


@pytest.mark.parametrize('script,args', DIST)
@pytest.mark.parametrize('gpus,env,named', [
    ('abc', {}, "GPUS='abc'"),
    ('0', {}, "GPUS='0'"),
    ('2', dict(PORT='abc'), "PORT='abc' is not valid: the master port must "
     'be a whole number from 1 to 65535, e.g. PORT=29500.'),
    ('2', dict(PORT='70000'), "PORT='70000'"),
    ('2', dict(PORT='0'), "PORT='0'"),
    ('2', dict(NNODES='two'), "NNODES='two'"),
    ('2', dict(NNODES='2', NODE_RANK='2'), "NODE_RANK='2'"),
    ('2', dict(NODE_RANK='-1'), "NODE_RANK='-1'"),
    ('2.5', {}, "GPUS='2.5'"),
])
def test_dist_scripts_refuse_bad_settings(tmp_path, script, args, gpus, env,
                                          named):
    proc, called = run_script(tmp_path, script, args + [gpus], **env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(named), proc.stderr
    assert 'must be a whole number from' in proc.stderr
    assert 'Port' not in proc.stderr and 'PORT=1 ' not in proc.stderr
    assert not called  # neither the port probe nor torchrun ran


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
@pytest.mark.parametrize('env,named', [
    (dict(GPUS='abc'), "GPUS='abc'"),
    (dict(GPUS='0'), "GPUS='0'"),
    (dict(GPUS='8', GPUS_PER_NODE='x'), "GPUS_PER_NODE='x'"),
    (dict(CPUS_PER_TASK='-3'), "CPUS_PER_TASK='-3'"),
    (dict(CPUS_PER_TASK='4x'), "CPUS_PER_TASK='4x'"),
])
def test_slurm_scripts_refuse_bad_settings(tmp_path, script, env, named):
    proc, called = run_script(tmp_path, script, ['part', 'job', 'cfg.py', 'x'],
                              **env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(named), proc.stderr
    assert not called  # srun never saw the setting


def test_good_settings_reach_the_launcher(tmp_path):
    proc, called = run_script(
        tmp_path,
        'slurm_train.sh', ['part', 'job', 'cfg.py', 'wd'],
        GPUS='4',
        CPUS_PER_TASK='2')
    assert proc.returncode == 0, proc.stderr
    record = (tmp_path / 'called').read_text()
    assert '--ntasks=4' in record and '--cpus-per-task=2' in record
    assert '--ntasks-per-node=4' in record
