"""Install zeromamba_mm: ``pip install -e .`` (``.[cuda]`` adds mamba-ssm)."""
import importlib.util
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

#: Files that mim (``mim train|test|run zeromamba_mm ...``), mmengine's
#: package-scoped configs (``_base_ = 'zeromamba_mm::...'``) and the model hub
#: read from the installed package, under ``zeromamba_mm/.mim``.
MIM_FILES = ('tools', 'configs', 'model-index.yml')


def read_requirements(name: str) -> list:
    """Read ``requirements/<name>``; ``-r other.txt`` lines are followed."""
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        lines = [line.strip() for line in f]
    requirements = []
    for line in lines:
        if not line or line.startswith('#'):
            continue
        included = (
            read_requirements(line[3:].strip())
            if line.startswith('-r ') else [line])
        requirements += [r for r in included if r not in requirements]
    # A full mmcv install serves as well as mmcv-lite: do not pull in both.
    if importlib.util.find_spec('mmcv') is not None:
        requirements = [r for r in requirements if not r.startswith('mmcv')]
    return requirements


def read_version() -> str:
    scope = {}
    with open(osp.join('zeromamba_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension() -> None:
    """Put ``tools/``, ``configs/`` and ``model-index.yml`` into the package.

    OpenMMLab's layout (as mmpretrain's setup.py): an editable install
    (``pip install -e .``) links ``zeromamba_mm/.mim/<name>`` to the
    repository's files, so edits are seen at once; a wheel or sdist build
    (``pip install .``) copies them, and ``MANIFEST.in`` ships the copies as
    package data. Other setup.py commands (``egg_info``) leave ``.mim`` alone.
    """
    if any(cmd in sys.argv for cmd in ('develop', 'editable_wheel')):
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build',
                                         'install')):
        mode = 'copy'
    else:
        return
    repo = osp.dirname(osp.abspath(__file__))
    mim_dir = osp.join(repo, 'zeromamba_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(repo, name)
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(src, dst)


add_mim_extension()

setup(
    name='zeromamba_mm',
    version=read_version(),
    description='Zero-shot learning with visual state-space models '
    '(ZeroMamba, VMamba) for MMEngine/MMPretrain',
    long_description=(open('README.md').read()
                      if osp.exists('README.md') else ''),
    long_description_content_type='text/markdown',
    packages=find_packages(
        exclude=('configs', 'tools', 'tests', 'benchmarks')),
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'cuda': read_requirements('cuda.txt'),
        'seg': read_requirements('seg.txt'),
        'det': read_requirements('det.txt'),
        'deploy': read_requirements('deploy.txt'),
        'tests': read_requirements('tests.txt'),
    },
    license='Apache License 2.0',
)
