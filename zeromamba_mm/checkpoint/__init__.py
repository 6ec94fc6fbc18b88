"""The one home of checkpoint handling in zeromamba_mm.

- reading (:mod:`.reading`): files are read safely, their state dict and
  ``meta`` unwrapped;
- key conversion: each module that reads pretraining files supplies a
  ``checkpoint_filter_fn(state_dict, module) -> state_dict``
  (e.g. :func:`zeromamba_mm.models.backbones.vmamba_checkpoint.
  vmamba_checkpoint_filter_fn`);
- strict loading (:mod:`.strict`, :mod:`.pretrained`) with messages naming
  the file, the first keys and shapes, and the fix;
- building for loading (:mod:`.for_loading`): a full checkpoint needs no
  pretraining files.

Used by backbone ``init_cfg``, ``load_from`` and ``--resume``
(:class:`~zeromamba_mm.engine.ZSLRunner`), ``tools/test.py``, the inferencer
and ``tools/model_converters``.
"""
from .for_loading import (WORD_VECTORS_FROM_CHECKPOINT, config_for_loading,
                          is_checkpoint_placeholder)
from .pretrained import init_weights_strictly, split_pretrained_init_cfg
from .reading import (is_mmpretrain_layout, load_checkpoint_file,
                      load_checkpoint_meta, read_checkpoint, strip_prefix,
                      unwrap_state_dict)
from .strict import (CheckpointMismatchError, load_model_weights,
                     strict_load_state_dict)

__all__ = [
    'CheckpointMismatchError', 'WORD_VECTORS_FROM_CHECKPOINT',
    'config_for_loading', 'init_weights_strictly', 'is_checkpoint_placeholder',
    'is_mmpretrain_layout', 'load_checkpoint_file', 'load_checkpoint_meta',
    'load_model_weights', 'read_checkpoint', 'split_pretrained_init_cfg',
    'strict_load_state_dict', 'strip_prefix', 'unwrap_state_dict'
]
