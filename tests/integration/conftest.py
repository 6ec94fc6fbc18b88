"""Shared fixtures of the end-to-end tests: a small demo dataset and one
demo model trained on it for the whole session."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Only a guard against a hung subprocess (a deadlock, a lost connection):
# the runs of the suite take seconds to a few minutes, and no verdict may
# depend on how fast the machine is.
HANG_GUARD_S = 1800

DEMO_CONFIG = 'configs/zeromamba_demo.py'
DEMO_EPOCHS = 12


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory) -> str:
    """A reduced demo dataset (24 classes, 12 images each)."""
    from zeromamba_mm.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('zsl_demo'))
    make_demo_data(root, seed=0, images_per_class=12)
    return root


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
def trained_demo(demo_root, tmp_path_factory) -> dict:
    """``configs/zeromamba_demo.py`` trained by ``tools/train.py`` for
    ``DEMO_EPOCHS`` short epochs on :func:`demo_root`, validated after each.

    Shared by every test that needs a trained model: read it, never write
    into its ``work_dir``.

    Returns:
        dict: ``work_dir``, ``records`` (the lines of ``scalars.json``),
        ``last`` (the last epoch's checkpoint) and ``stdout`` of the run.
    """
    work_dir = str(tmp_path_factory.mktemp('demo_run'))
    result = run_tool([
        'tools/train.py', DEMO_CONFIG, '--work-dir', work_dir, '--cfg-options'
    ] + demo_options(demo_root))
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
        work_dir=work_dir, records=records, last=last, stdout=result.stdout)
