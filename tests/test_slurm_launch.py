"""tools/slurm_{train,test}.sh hand srun the options and the command that
MMEngine's ``--launcher slurm`` expects (a stand-in ``srun`` records them)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')

# Records its arguments and environment, as srun would receive them.
FAKE_SRUN = f'''#!{sys.executable}
import json, os, sys
with open(os.environ['SRUN_RECORD'], 'w') as f:
    json.dump(dict(argv=sys.argv[1:], env=dict(os.environ)), f)
'''


@pytest.fixture
def fake_srun(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    record = tmp_path / 'srun.json'

    def run(script, args, **env):
        full_env = dict(
            os.environ,
            PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
            SRUN_RECORD=str(record),
            PYTHON=sys.executable,
            **env)
        for key in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS'):
            if key not in env:
                full_env.pop(key, None)
        proc = subprocess.run(['bash', osp.join(TOOLS, script)] + args,
                              env=full_env, capture_output=True, text=True)
        if proc.returncode != 0:
            return proc, None
        with open(record) as f:
            return proc, json.load(f)

    return run


def test_slurm_train_command_and_environment(fake_srun):
    proc, got = fake_srun(
        'slurm_train.sh', [
            'gpu_part', 'zm_cub', 'configs/zeromamba_cub.py', 'work_dirs/x',
            '--cfg-options', 'train_dataloader.batch_size=2'
        ],
        GPUS='16',
        GPUS_PER_NODE='8',
        CPUS_PER_TASK='4',
        SRUN_ARGS='--qos=high --time=2:00:00')
    assert proc.returncode == 0, proc.stderr
    assert got['argv'] == [
        '-p', 'gpu_part', '--job-name=zm_cub', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--qos=high', '--time=2:00:00', sys.executable, '-u',
        osp.join(TOOLS, 'train.py'), 'configs/zeromamba_cub.py',
        '--work-dir=work_dirs/x', '--launcher=slurm', '--cfg-options',
        'train_dataloader.batch_size=2'
    ]
    # The repository is importable by every task.
    first = got['env']['PYTHONPATH'].split(os.pathsep)[0]
    assert osp.realpath(first) == REPO


def test_slurm_test_defaults_fit_small_jobs(fake_srun):
    proc, got = fake_srun(
        'slurm_test.sh',
        ['part', 'job', 'configs/zeromamba_demo.py', 'ckpt.pth'],
        GPUS='2')
    assert proc.returncode == 0, proc.stderr
    assert got['argv'] == [
        '-p', 'part', '--job-name=job', '--gres=gpu:2', '--ntasks=2',
        '--ntasks-per-node=2', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        sys.executable, '-u',
        osp.join(TOOLS, 'test.py'), 'configs/zeromamba_demo.py', 'ckpt.pth',
        '--launcher=slurm'
    ]


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_missing_arguments_print_usage(fake_srun, script):
    proc, got = fake_srun(script, ['part', 'job'])
    assert proc.returncode == 2 and got is None
    assert f'Usage: bash tools/{script}' in proc.stderr


def test_train_and_test_accept_the_slurm_launcher():
    for tool in ('train.py', 'test.py'):
        out = subprocess.run([sys.executable,
                              osp.join(TOOLS, tool), '--help'],
                             capture_output=True,
                             text=True,
                             check=True).stdout
        assert 'slurm' in out
