"""Thread settings of the tools: fast alone, polite on a busy machine.

PyTorch's CPU kernels run on an OpenMP team. By default its threads spin
(busy-wait) between parallel regions, and each team has as many threads as
the machine has cores. That is fastest on an idle machine; beside other jobs
the spinning threads burn the cores the other jobs (and the team's own
descheduled threads) need, and a run takes many times its CPU time and wall
time (measured in ``benchmarks/bench_contention.py``).

:func:`configure_threads` sets, in ``os.environ`` and only where the user has
not set them:

- ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spinning
  (honoured by GNU and Intel OpenMP). The OpenMP runtime reads it once, when
  it is loaded with torch, so this must run before ``import torch``.
- ``OMP_NUM_THREADS``: the cores this process may use, i.e. its CPU affinity
  (``taskset``, Slurm, cgroup cpusets) capped by a cgroup CPU quota (``docker
  --cpus``), shared among the processes of a distributed launch on this
  node.
- ``OPENCV_FOR_THREADS_NUM=1``: OpenCV's default pool size, which data
  workers started with ``spawn``/``forkserver`` begin with. MMEngine's
  ``env_cfg.mp_cfg.opencv_num_threads`` still sets the main process (and the
  workers it forks) when the runner starts.

Data workers need nothing more: PyTorch's ``DataLoader`` calls
``torch.set_num_threads(1)`` in each worker, and the workers inherit the
wait policy. ``ZEROMAMBA_THREAD_SETUP=off`` leaves the environment as it is.

This module imports only the standard library, so that the tools can run it
before anything loads torch (``tools/_threads.py``).
"""
import math
import os
from typing import Dict, MutableMapping, Optional

SWITCH = 'ZEROMAMBA_THREAD_SETUP'

# Launchers that start several processes per node and say how many.
_LOCAL_PROCESS_COUNTS = ('LOCAL_WORLD_SIZE', 'SLURM_NTASKS_PER_NODE')


def _cgroup_cpu_quota(root: str = '/sys/fs/cgroup') -> Optional[float]:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 CFS), if
    any."""
    try:
        with open(os.path.join(root, 'cpu.max')) as file:
            quota, period = file.read().split()[:2]
        if quota != 'max':
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, 'cpu', 'cpu.cfs_quota_us')) as file:
            quota = int(file.read())
        with open(os.path.join(root, 'cpu', 'cpu.cfs_period_us')) as file:
            period = int(file.read())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpu_count(cgroup_root: str = '/sys/fs/cgroup') -> int:
    """Cores this process may run on: its affinity, capped by a cgroup CPU
    quota (rounded up).

    Args:
        cgroup_root (str): Where the cgroup file system is mounted.

    Returns:
        int: At least 1.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def _local_process_count(environ: MutableMapping[str, str]) -> int:
    for name in _LOCAL_PROCESS_COUNTS:
        value = environ.get(name, '').split('(')[0]  # Slurm: '4(x2)'
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def thread_settings(environ: MutableMapping[str, str],
                    cores: int) -> Dict[str, str]:
    """The variables :func:`configure_threads` would set.

    Args:
        environ (MutableMapping[str, str]): The environment to complete.
        cores (int): Cores the process may use (:func:`usable_cpu_count`).

    Returns:
        dict: Variable name to value, only for variables not yet set; empty
        when ``ZEROMAMBA_THREAD_SETUP=off``.
    """
    switch = environ.get(SWITCH, 'on').strip().lower()
    if switch in ('off', '0', 'false', 'no'):
        return {}
    if switch not in ('on', '1', 'true', 'yes'):
        raise ValueError(
            f'{SWITCH}={environ[SWITCH]!r}: expected "on" (the default) or '
            f'"off"; unset it or write {SWITCH}=off to keep the environment '
            'as it is.')
    threads = max(1, cores // _local_process_count(environ))
    defaults = {
        'OMP_WAIT_POLICY': 'PASSIVE',
        'OMP_NUM_THREADS': str(threads),
        'OPENCV_FOR_THREADS_NUM': '1',
    }
    return {
        name: value
        for name, value in defaults.items() if not environ.get(name)
    }


def configure_threads(
        environ: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Set the thread variables that the user has not set.

    Call it at the start of a program, before ``import torch``: the OpenMP
    runtime reads the wait policy and team size only when it loads. Variables
    the user set (``OMP_NUM_THREADS=4 python tools/train.py ...``) are kept.

    Args:
        environ (MutableMapping[str, str], optional): The environment to
            change. Defaults to ``os.environ``.

    Returns:
        dict: The variables that were set, with their values.
    """
    environ = os.environ if environ is None else environ
    settings = thread_settings(environ, usable_cpu_count())
    environ.update(settings)
    return settings
