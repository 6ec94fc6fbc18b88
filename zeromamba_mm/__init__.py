"""zeromamba_mm: zero-shot learning with visual state-space models for
MMEngine/MMPretrain.

Importing the package applies the compatibility fixes for the pinned stack
(:mod:`zeromamba_mm.compat`) and registers every module, so configs can name
them as ``type='zeromamba_mm.X'``.
"""
from . import compat
from .version import __version__

compat.apply()

from . import datasets, engine, evaluation, models, ops  # noqa: E402,F401

__all__ = ['__version__']
