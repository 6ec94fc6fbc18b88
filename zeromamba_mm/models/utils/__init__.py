from .checkpoint import (CheckpointMismatchError, convert_official_vmamba,
                         infer_vmamba_arch, is_mmpretrain_layout,
                         load_checkpoint_file, strict_load_state_dict)

__all__ = [
    'CheckpointMismatchError', 'load_checkpoint_file',
    'convert_official_vmamba', 'is_mmpretrain_layout', 'infer_vmamba_arch',
    'strict_load_state_dict'
]
