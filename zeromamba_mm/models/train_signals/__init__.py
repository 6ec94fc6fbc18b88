from .mixup_twin import MixupTwinSignal, mix_batch
from .multi_view import MultiViewClsDataPreprocessor
from .opera import OPERASignal, plain_state_dict

__all__ = [
    'MixupTwinSignal', 'mix_batch', 'MultiViewClsDataPreprocessor',
    'OPERASignal', 'plain_state_dict'
]
