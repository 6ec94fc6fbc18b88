"""Registries of zeromamba_mm.

The registries that hold the plugin's modules are children of MMEngine's
root registries (the pattern of mmpretrain and mmyolo): MMEngine looks for a
scoped name among the root's children only, so ``type='zeromamba_mm.X'`` is
found from configs of any OpenMMLab scope (mmpretrain, mmdet, mmseg). In the
``zeromamba_mm`` scope these find MMEngine's modules by plain name and
mmpretrain's by scoped name (``mmpretrain.CrossEntropyLoss``).

Every other root kind has a child here too, below mmpretrain's registry of
the kind where there is one: MMEngine builds what a ``zeromamba_mm::`` base
config defines in the ``zeromamba_mm`` scope, and a scope without a registry
of the kind falls back with the warning "Failed to search registry with
scope "zeromamba_mm" ..." (a config copied from the own-data template hit it
for vis_backend, optim_wrapper and parameter scheduler). These children
hold nothing and find mmpretrain's and MMEngine's modules by plain name
(``PackInputs``, ``LocalVisBackend``, ``MultiStepLR``).
"""
from mmengine import registry as mmengine_registry
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'STRATEGIES',
    'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS',
    'INFERENCERS', 'FUNCTIONS'
]

_SCOPE = 'zeromamba_mm'
#: mmpretrain spells one kind differently from MMEngine.
_MMPRETRAIN_NAMES = dict(EVALUATOR='EVALUATORS')


def _child(kind: str, location: str = '') -> Registry:
    """The ``zeromamba_mm`` registry of ``kind``.

    Args:
        kind (str): Attribute name in :mod:`mmengine.registry`, e.g.
            ``'HOOKS'``.
        location (str): Sub-package whose import registers this plugin's
            modules of the kind (the registry is then a child of MMEngine's
            root); '' where it registers none (a child of mmpretrain's
            registry where mmpretrain has the kind).
    """
    parent = getattr(mmengine_registry, kind)
    if location:
        locations = [f'{_SCOPE}.{location}']
    else:
        parent = getattr(mmpretrain_registry,
                         _MMPRETRAIN_NAMES.get(kind, kind), parent)
        # Without a location MMEngine would look for a
        # zeromamba_mm.utils.register_all_modules; and it imports only the
        # locations of the registry asked, not those of its parents.
        locations = [_SCOPE] + list(parent._locations)
    return Registry(
        parent.name, parent=parent, scope=_SCOPE, locations=locations)


# Kinds the plugin registers modules in.
RUNNERS = _child('RUNNERS', 'engine')
HOOKS = _child('HOOKS', 'engine')
DATASETS = _child('DATASETS', 'datasets')
DATA_SAMPLERS = _child('DATA_SAMPLERS', 'datasets')
MODELS = _child('MODELS', 'models')
METRICS = _child('METRICS', 'evaluation')
VISUALIZERS = _child('VISUALIZERS', 'visualization')
# Kinds it only builds from (through the parents) in its own scope.
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS')
LOOPS = _child('LOOPS')
STRATEGIES = _child('STRATEGIES')
TRANSFORMS = _child('TRANSFORMS')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS')
OPTIMIZERS = _child('OPTIMIZERS')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS')
EVALUATOR = _child('EVALUATOR')
TASK_UTILS = _child('TASK_UTILS')
VISBACKENDS = _child('VISBACKENDS')
LOG_PROCESSORS = _child('LOG_PROCESSORS')
INFERENCERS = _child('INFERENCERS')
FUNCTIONS = _child('FUNCTIONS')
