"""zeromamba_mm: zero-shot learning with visual state-space models for
MMEngine/MMPretrain.

Importing the package registers every module, so configs can name them as
``type='zeromamba_mm.X'``; it changes nothing of MMEngine (the runner's
differences live in :class:`zeromamba_mm.engine.ZSLRunner`, chosen by
``runner_type`` in the configs).
"""
from .version import __version__

from . import datasets, engine, evaluation, models, ops  # noqa: E402,F401
from . import model_zoo  # noqa: E402,F401  (registers models by name)

__all__ = ['__version__']
