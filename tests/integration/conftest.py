"""Shared fixtures of the end-to-end tests: a small demo dataset and one
demo model trained on it, made once per test run (also when pytest-xdist
spreads the run over worker processes, as ``scripts/test.sh`` does)."""
import contextlib
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Only a guard against a hung subprocess (a deadlock, a lost connection):
# the runs of the suite take seconds to a few minutes, and no verdict may
# depend on how fast the machine is.
HANG_GUARD_S = 1800

DEMO_CONFIG = 'configs/zeromamba_demo.py'
DEMO_EPOCHS = 12


def _run_dir(request) -> Path:
    """The directory of this test run: shared by its pytest-xdist workers
    (each has its own base temp inside it), never by two runs (pytest numbers
    each run's directory)."""
    base = request.getfixturevalue('tmp_path_factory').getbasetemp()
    # A worker's config carries workerinput (an environment variable would
    # be inherited by a pytest that a test starts).
    return base.parent if hasattr(request.config, 'workerinput') else base


@contextlib.contextmanager
def made_once(request, name: str):
    """Make ``name`` in the run's directory once for all workers.

    Yields ``(path, todo)``: with ``todo`` true the caller makes ``path``
    (under a lock the other workers wait on); the work counts as done when
    the block ends without an error, so that a failed attempt is made again
    (from scratch) by the next worker that needs it, not half reused.
    """
    run_dir = _run_dir(request)
    path = run_dir / name
    done = run_dir / f'{name}.done'
    with FileLock(str(run_dir / f'{name}.lock')):
        todo = not done.exists()
        if todo and path.exists():
            shutil.rmtree(path)
        yield path, todo
        done.touch()


@pytest.fixture(scope='session')
def demo_root(request) -> str:
    """A reduced demo dataset (24 classes, 12 images each)."""
    from zeromamba_mm.datasets.demo_data import make_demo_data
    with made_once(request, 'zsl_demo') as (root, todo):
        if todo:
            make_demo_data(str(root), seed=0, images_per_class=12)
    return str(root)


def data_root_options(root: str) -> list:
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def demo_options(root: str) -> list:
    """``--cfg-options`` of the short demo run of :func:`trained_demo`."""
    return data_root_options(root) + [
        f'model.head.word_vectors={root}/attribute_w2v.npy',
        f'train_cfg.max_epochs={DEMO_EPOCHS}',
        'train_cfg.val_interval=1',
        'train_dataloader.batch_size=16',
        # The schedule of the full demo, squeezed into the short run.
        'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1',
        f'param_scheduler.1.end={DEMO_EPOCHS}',
        'default_hooks.logger.interval=1',
    ]


def run_command(args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` with captured text output and a hang guard that
    says what hung."""
    try:
        return subprocess.run(
            list(args),
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_S,
            **kwargs)
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b'')[-3000:]
        raise AssertionError(
            f'{args} did not finish in {HANG_GUARD_S} s. It takes minutes at '
            'most even on a busy machine, so it hangs (a deadlock or a lost '
            f'process); its last output:\n{output!r}') from None


def run_tool(args, env=None, check=True):
    """Run a repository tool with this interpreter; return the result."""
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    result = run_command([sys.executable] + list(args), cwd=REPO, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f'{args} failed ({result.returncode}):\n'
            f'{result.stdout[-3000:]}\n{result.stderr[-6000:]}')
    return result


@pytest.fixture(scope='session')
def trained_demo(demo_root, request) -> dict:
    """``configs/zeromamba_demo.py`` trained by ``tools/train.py`` for
    ``DEMO_EPOCHS`` short epochs on :func:`demo_root`, validated after each.

    Shared by every test that needs a trained model: read it, never write
    into its ``work_dir``.

    Returns:
        dict: ``work_dir``, ``records`` (the lines of ``scalars.json``),
        ``last`` (the last epoch's checkpoint) and ``stdout`` of the run.
    """
    with made_once(request, 'demo_run') as (run, todo):
        work_dir = str(run / 'work_dir')
        stdout = run / 'stdout.txt'
        if todo:
            result = run_tool([
                'tools/train.py', DEMO_CONFIG, '--work-dir', work_dir,
                '--cfg-options'
            ] + demo_options(demo_root))
            stdout.write_text(result.stdout)
    (scalars, ) = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    # The best-H checkpoint is written too, but at the demo's fixed γ this
    # short run's H can stay 0 (its softmax is flatter than the full demo's);
    # the last epoch is the trained model.
    assert glob.glob(osp.join(work_dir, 'best_gzsl_H_epoch_*.pth'))
    last = osp.join(work_dir, f'epoch_{DEMO_EPOCHS}.pth')
    return dict(
        work_dir=work_dir,
        records=records,
        last=last,
        stdout=stdout.read_text())
