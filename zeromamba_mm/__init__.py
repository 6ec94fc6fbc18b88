"""zeromamba_mm: zero-shot learning with visual state-space models for
MMEngine/MMPretrain.

Importing the package registers every module, so configs can name them as
``type='zeromamba_mm.X'``; it changes nothing of MMEngine (the runner's
differences live in :class:`zeromamba_mm.engine.ZSLRunner`, chosen by
``runner_type`` in the configs).
"""
import warnings

# mmcv-lite (the pinned mmcv, without compiled ops) warns on every import of
# mmcv.cnn that MultiScaleDeformableAttention is missing; no module of this
# plugin uses it, and the user can do nothing about it short of building the
# full mmcv. Only that exact message is silenced; the filter must be in place
# before mmcv.cnn is first imported (tools/_common.py imports this package
# before mmpretrain for that reason).
warnings.filterwarnings(
    'ignore',
    message=r'Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning,
    module=r'mmcv\.cnn\.bricks\.transformer')

from .version import __version__  # noqa: E402

from . import datasets, engine, evaluation, models, ops  # noqa: E402,F401
from . import model_zoo  # noqa: E402,F401  (registers models by name)

__all__ = ['__version__']
