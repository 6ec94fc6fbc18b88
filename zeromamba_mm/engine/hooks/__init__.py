from .epoch_seed_hook import EpochSeedHook
from .owed_validation_hook import OwedValidationHook
from .progress_logger_hook import ProgressLoggerHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .selected_gamma_hook import OperatingPointHook, SelectedGammaHook
from .visualization_hooks import SeenUnseenCurveHook, ZSLVisualizationHook
from .zsl_semantics_hook import ZSLSemanticsHook

__all__ = [
    'EpochSeedHook', 'OperatingPointHook', 'OwedValidationHook',
    'ProgressLoggerHook', 'SafeCheckpointHook', 'SelectedGammaHook',
    'SeenUnseenCurveHook', 'ZSLSemanticsHook', 'ZSLVisualizationHook'
]
