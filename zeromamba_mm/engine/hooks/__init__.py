from .epoch_seed_hook import EpochSeedHook
from .owed_validation_hook import OwedValidationHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .selected_gamma_hook import SelectedGammaHook
from .zsl_semantics_hook import ZSLSemanticsHook

__all__ = [
    'EpochSeedHook', 'OwedValidationHook', 'SafeCheckpointHook',
    'SelectedGammaHook', 'ZSLSemanticsHook'
]
