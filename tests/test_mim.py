"""``mim train|test|run zeromamba_mm ...`` from an installed (non-editable)
copy of the package: the tools, configs and model index ride along in
``zeromamba_mm/.mim`` (setup.py + MANIFEST.in), as in mmpretrain."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SOURCE_FILES = ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml')
SOURCE_DIRS = ('requirements', 'zeromamba_mm', 'configs', 'tools')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """Build and install a copy of the repository into a target folder
    (never touching the test environment or the checkout)."""
    root = tmp_path_factory.mktemp('mim')
    src = root / 'src'
    src.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(osp.join(REPO, name), src / name)
    ignore = shutil.ignore_patterns('__pycache__', '.mim', '*.pyc')
    for name in SOURCE_DIRS:
        shutil.copytree(osp.join(REPO, name), src / name, ignore=ignore)
    site = root / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '--no-index', '--target',
        str(site),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    shutil.rmtree(src)  # the install must not need the sources
    data = root / 'demo'
    subprocess.run([
        sys.executable, '-c',
        'import sys; from zeromamba_mm.datasets import make_demo_data; '
        'make_demo_data(sys.argv[1], seed=0, num_classes=8, num_unseen=2, '
        'images_per_class=4)',
        str(data)
    ],
                   check=True,
                   capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(site)))
    work = root / 'cwd'  # outside the repository: configs come from .mim
    work.mkdir()
    return site, data, work


def _mim(installed, *args):
    site, _, work = installed
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, '-m', 'mim', *args],
                          cwd=work,
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _demo_options(data):
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        f'model.head.word_vectors={data}/attribute_w2v.npy',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
    ]


@pytest.mark.slow
def test_package_data_is_installed(installed):
    site = installed[0]
    mim = site / 'zeromamba_mm' / '.mim'
    for path in ('model-index.yml', 'configs/zeromamba_demo.py',
                 'configs/_base_/datasets/zsl_demo.py',
                 'configs/zeromamba/metafile.yml', 'tools/train.py',
                 'tools/test.py', 'tools/_common.py',
                 'tools/slurm_train.sh'):
        assert (mim / path).is_file(), path
        assert not (mim / path).is_symlink()


@pytest.mark.slow
def test_mim_train_test_and_run(installed):
    site, data, work = installed
    out = _mim(installed, 'train', 'zeromamba_mm', 'configs/zeromamba_demo.py',
               '--work-dir', str(work / 'run'), *_demo_options(data))
    mim_dir = osp.join(str(site), 'zeromamba_mm', '.mim')
    # mim found the config and the training script in the installed package.
    assert f'{mim_dir}/configs/zeromamba_demo.py' in out
    assert f'{mim_dir}/tools/train.py' in out
    checkpoint = work / 'run' / 'epoch_1.pth'
    assert checkpoint.is_file()

    out = _mim(installed, 'test', 'zeromamba_mm', 'zeromamba_demo.py',
               '--checkpoint', str(checkpoint), '--work-dir',
               str(work / 'test'), *_demo_options(data))
    assert f'{mim_dir}/tools/test.py' in out
    assert 'gzsl/H' in out

    out = _mim(installed, 'run', 'zeromamba_mm', 'make_demo_data', '--out',
               str(work / 'demo_by_mim'), '--seed', '0', '--num-classes', '8',
               '--num-unseen', '2', '--images-per-class', '2',
               '--image-size', '16')
    assert (work / 'demo_by_mim' / 'att_splits.mat').is_file()
