"""One demo epoch alone and beside a CPU-bound load, with and without the
tools' thread settings (``zeromamba_mm/utils/threads.py``).

The script writes the demo data into a temporary folder, then runs
``tools/train.py configs/zeromamba_demo.py`` for one epoch (with its
validation) in a subprocess, four times: thread settings on and off
(``ZEROMAMBA_THREAD_SETUP=off``), each alone and beside as many busy
processes as the training may use cores. It reports the wall time and the CPU
time (user + sys of the training process and its children, from
``os.wait4``) of each run, and the ratios of the loaded run to the run alone:
CPU time at most 1.3x, wall time at most 2.5x (two jobs sharing the same
cores cannot do better than 2x).

Example::

    python benchmarks/bench_contention.py
    python benchmarks/bench_contention.py --images-per-class 12 --settings on

The machine's load average is printed next to each run: other work on the
machine makes the "alone" run slower too and the ratios noisier.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'zeromamba_demo.py')
TARGETS = dict(cpu=1.3, wall=2.5)
BUSY_LOOP = 'while True:\n    pass\n'


def usable_cores() -> int:
    sys.path.insert(0, REPO)
    from zeromamba_mm.utils.threads import usable_cpu_count
    return usable_cpu_count()


def make_data(root: str, images_per_class: int) -> None:
    args = [
        sys.executable,
        osp.join(REPO, 'tools', 'make_demo_data.py'), '--out', root, '--seed',
        '0'
    ]
    if images_per_class:
        args += ['--images-per-class', str(images_per_class)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def train_once(data_root: str, work_dir: str, setting: str) -> Dict:
    """Train one epoch; return wall and CPU seconds of the child."""
    options = [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        f'model.head.word_vectors={data_root}/attribute_w2v.npy'
    ] + [
        f'{loader}.dataset.data_root={data_root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    env = dict(
        os.environ,
        PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    # The settings under test decide the thread variables; inherited ones
    # would mask them.
    for name in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'MKL_NUM_THREADS',
                 'OPENCV_FOR_THREADS_NUM', 'GOMP_SPINCOUNT'):
        env.pop(name, None)
    env['ZEROMAMBA_THREAD_SETUP'] = setting
    log_path = work_dir + '.log'
    load = os.getloadavg()[0]
    with open(log_path, 'w') as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir',
                work_dir, '--cfg-options'
            ] + options,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f'training failed ({proc.returncode}); the end of '
                         f'{log_path}:\n{tail}')
    return dict(wall=wall, cpu=usage.ru_utime + usage.ru_stime, load=load)


def start_load(count: int) -> List[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, '-c', BUSY_LOOP])
        for _ in range(count)
    ]


def stop_load(procs: List[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--images-per-class',
        type=int,
        default=0,
        help='demo images per class (default: the demo data as written by '
        'tools/make_demo_data.py)')
    parser.add_argument(
        '--busy',
        type=int,
        default=0,
        help='busy processes beside the loaded runs (default: the cores the '
        'training may use)')
    parser.add_argument(
        '--settings',
        default='on,off',
        help='thread settings to measure, comma-separated: on, off')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    settings = [s.strip() for s in args.settings.split(',') if s.strip()]
    unknown = sorted(set(settings) - {'on', 'off'})
    if unknown:
        raise SystemExit(f'--settings: unknown {unknown}; use on and/or off')
    busy = args.busy or usable_cores()
    results = {}
    with tempfile.TemporaryDirectory(prefix='bench_contention_') as tmp:
        data_root = osp.join(tmp, 'demo')
        make_data(data_root, args.images_per_class)
        for setting in settings:
            for loaded in (False, True):
                load = start_load(busy) if loaded else []
                try:
                    work_dir = osp.join(
                        tmp, f'{setting}_{"busy" if loaded else "alone"}')
                    result = train_once(data_root, work_dir, setting)
                finally:
                    stop_load(load)
                results[setting, loaded] = result
                where = f'beside {busy} busy' if loaded else 'alone'
                print(
                    f'thread settings {setting:3s} {where:13s}'
                    f' wall {result["wall"]:7.1f} s  cpu '
                    f'{result["cpu"]:7.1f} s  (load avg before: '
                    f'{result["load"]:.1f})',
                    flush=True)
    print(f'\nOne demo epoch on {usable_cores()} usable cores, '
          f'{busy} busy processes beside the loaded run\n')
    print('| thread settings | alone: wall / CPU (s) | beside load: wall / '
          'CPU (s) | wall ratio (target <= {wall}) | CPU ratio (target <= '
          '{cpu}) |'.format(**TARGETS))
    print('|---|---|---|---|---|')
    for setting in settings:
        alone, loaded = results[setting, False], results[setting, True]
        ratios = {k: loaded[k] / alone[k] for k in ('wall', 'cpu')}
        marks = {
            k: 'ok' if ratios[k] <= TARGETS[k] else 'over'
            for k in ratios
        }
        print(f'| {setting} | {alone["wall"]:.1f} / {alone["cpu"]:.1f} | '
              f'{loaded["wall"]:.1f} / {loaded["cpu"]:.1f} | '
              f'{ratios["wall"]:.2f} ({marks["wall"]}) | '
              f'{ratios["cpu"]:.2f} ({marks["cpu"]}) |')


if __name__ == '__main__':
    main()
