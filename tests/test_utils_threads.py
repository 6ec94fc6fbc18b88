"""Thread settings of the tools (zeromamba_mm/utils/threads.py)."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from zeromamba_mm.utils.threads import (thread_settings, usable_cpu_count)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY',
                    'OPENCV_FOR_THREADS_NUM', 'MKL_NUM_THREADS',
                    'ZEROMAMBA_THREAD_SETUP', 'LOCAL_WORLD_SIZE',
                    'SLURM_NTASKS_PER_NODE')


def test_unset_variables_get_the_defaults():
    assert thread_settings({}, cores=4) == {
        'OMP_WAIT_POLICY': 'PASSIVE',
        'OMP_NUM_THREADS': '4',
        'OPENCV_FOR_THREADS_NUM': '1',
    }


def test_the_users_settings_win():
    environ = {'OMP_NUM_THREADS': '3', 'OMP_WAIT_POLICY': 'ACTIVE'}
    assert thread_settings(environ, cores=8) == {'OPENCV_FOR_THREADS_NUM': '1'}


@pytest.mark.parametrize('switch', ['off', 'OFF', '0', 'false'])
def test_switch_off_leaves_the_environment(switch):
    assert thread_settings({'ZEROMAMBA_THREAD_SETUP': switch}, cores=4) == {}


def test_unknown_switch_value_names_the_variable_and_the_fix():
    with pytest.raises(ValueError, match='ZEROMAMBA_THREAD_SETUP=.*"off"'):
        thread_settings({'ZEROMAMBA_THREAD_SETUP': 'maybe'}, cores=4)


@pytest.mark.parametrize('environ, cores, threads', [
    ({
        'LOCAL_WORLD_SIZE': '2'
    }, 8, '4'),
    ({
        'SLURM_NTASKS_PER_NODE': '4(x2)'
    }, 8, '2'),
    ({
        'LOCAL_WORLD_SIZE': '8'
    }, 2, '1'),
])
def test_processes_of_a_launch_share_the_cores(environ, cores, threads):
    assert thread_settings(environ, cores)['OMP_NUM_THREADS'] == threads


def test_usable_cores_follow_affinity_and_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpu_count(str(tmp_path)) == affinity  # no cgroup files
    (tmp_path / 'cpu.max').write_text('max 100000\n')
    assert usable_cpu_count(str(tmp_path)) == affinity
    (tmp_path / 'cpu.max').write_text('50000 100000\n')  # half a core
    assert usable_cpu_count(str(tmp_path)) == 1
    (tmp_path / 'cpu.max').unlink()
    (tmp_path / 'cpu').mkdir()
    (tmp_path / 'cpu' / 'cpu.cfs_quota_us').write_text('150000\n')
    (tmp_path / 'cpu' / 'cpu.cfs_period_us').write_text('100000\n')
    assert usable_cpu_count(str(tmp_path)) == min(affinity, 2)


def test_tools_set_threads_before_torch_loads():
    # Loading a tool as a module runs its top: the variables must be set
    # while torch (and its OpenMP runtime) is not loaded yet, and torch then
    # uses them. One process checks the four tools (each one's top loads
    # nothing that imports torch).
    script = (
        'import importlib.util, os, sys\n'
        'for tool in ("train", "test", "infer", "visualize_attention"):\n'
        '    os.environ.pop("OMP_WAIT_POLICY", None)\n'
        '    spec = importlib.util.spec_from_file_location(\n'
        '        tool, f"tools/{tool}.py")\n'
        '    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n'
        '    print(tool, "torch loaded:", "torch" in sys.modules,\n'
        '          "policy:", os.environ.get("OMP_WAIT_POLICY"))\n'
        'import torch\n'
        'print("threads:", torch.get_num_threads())\n')
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    out = subprocess.run([sys.executable, '-c', script],
                         cwd=REPO,
                         env=env,
                         capture_output=True,
                         text=True,
                         check=True).stdout
    for tool in ('train', 'test', 'infer', 'visualize_attention'):
        assert f'{tool} torch loaded: False policy: PASSIVE' in out, out
    assert f'threads: {usable_cpu_count()}' in out, out


def test_users_thread_count_reaches_torch():
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    script = ('import sys; sys.path.insert(0, "tools")\n'
              'from _threads import setup_threads\n'
              'print(sorted(setup_threads()))\n'
              'import torch; print("threads:", torch.get_num_threads())\n')
    out = subprocess.run([sys.executable, '-c', script],
                         cwd=REPO,
                         env=env,
                         capture_output=True,
                         text=True,
                         check=True).stdout
    assert "['OMP_WAIT_POLICY', 'OPENCV_FOR_THREADS_NUM']" in out, out
    assert 'threads: 1' in out, out
