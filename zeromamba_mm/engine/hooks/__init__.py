from .epoch_seed_hook import EpochSeedHook
from .zsl_semantics_hook import ZSLSemanticsHook

__all__ = ['EpochSeedHook', 'ZSLSemanticsHook']
