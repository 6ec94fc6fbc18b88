"""Registries of zeromamba_mm.

Each registry is a child of the matching mmengine root registry (the pattern
used by mmpretrain and mmyolo). Modules registered here are therefore found as
``type='zeromamba_mm.X'`` from configs of any OpenMMLab scope (mmpretrain,
mmdet, mmseg), and the runner finds mmpretrain/mmengine modules from ours.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

# Only the kinds this package registers something in have a child registry;
# for every other kind (optimizers, schedulers, transforms, ...) a build in
# the zeromamba_mm scope falls back to MMEngine's root registry, which finds
# mmpretrain's and MMEngine's modules by their scoped names.
__all__ = [
    'RUNNERS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'MODELS', 'METRICS',
    'VISUALIZERS'
]

_SCOPE = 'zeromamba_mm'


def _child(name: str, parent: Registry, location: str) -> Registry:
    return Registry(
        name, parent=parent, scope=_SCOPE, locations=[f'{_SCOPE}.{location}'])


RUNNERS = _child('runner', MMENGINE_RUNNERS, 'engine')
HOOKS = _child('hook', MMENGINE_HOOKS, 'engine')
DATASETS = _child('dataset', MMENGINE_DATASETS, 'datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'datasets')
MODELS = _child('model', MMENGINE_MODELS, 'models')
METRICS = _child('metric', MMENGINE_METRICS, 'evaluation')
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, 'visualization')
