"""Install zeromamba_mm: ``pip install -e .`` (``.[cuda]`` adds mamba-ssm)."""
import importlib.util
import os.path as osp
from setuptools import find_packages, setup


def read_requirements(name: str) -> list:
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        lines = [line.strip() for line in f]
    requirements = [
        line for line in lines if line and not line.startswith('#')
    ]
    # A full mmcv install serves as well as mmcv-lite: do not pull in both.
    if importlib.util.find_spec('mmcv') is not None:
        requirements = [r for r in requirements if not r.startswith('mmcv')]
    return requirements


def read_version() -> str:
    scope = {}
    with open(osp.join('zeromamba_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


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
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'cuda': read_requirements('cuda.txt'),
        'tests': read_requirements('tests.txt'),
    },
    license='Apache License 2.0',
)
