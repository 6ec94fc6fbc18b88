# Checkpoint handling lives in zeromamba_mm.checkpoint; these names are
# re-exported because tools and user code import them from here.
from zeromamba_mm.checkpoint import (CheckpointMismatchError,
                                     is_mmpretrain_layout,
                                     load_checkpoint_file,
                                     split_pretrained_init_cfg,
                                     strict_load_state_dict)
from .arch import parse_out_indices, resolve_arch

__all__ = [
    'CheckpointMismatchError', 'load_checkpoint_file', 'is_mmpretrain_layout',
    'split_pretrained_init_cfg', 'strict_load_state_dict',
    'convert_official_vmamba', 'infer_vmamba_arch', 'parse_out_indices',
    'resolve_arch'
]

# The VMamba conversion lives beside VMamba
# (zeromamba_mm.models.backbones.vmamba_checkpoint); importing it here eagerly
# would be circular (the backbones import this package), so its two public
# functions are resolved on first access.
_VMAMBA_NAMES = ('convert_official_vmamba', 'infer_vmamba_arch')


def __getattr__(name):
    if name in _VMAMBA_NAMES:
        from ..backbones import vmamba_checkpoint
        return getattr(vmamba_checkpoint, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
