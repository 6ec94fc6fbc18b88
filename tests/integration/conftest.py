"""Shared fixtures of the end-to-end tests: a small demo dataset."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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


def run_tool(args, timeout=600, env=None, check=True):
    """Run a repository tool with this interpreter; return the result."""
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    result = subprocess.run([sys.executable] + list(args),
                            cwd=REPO,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f'{args} failed ({result.returncode}):\n'
            f'{result.stdout[-3000:]}\n{result.stderr[-6000:]}')
    return result
