"""Build a model whose weights a full checkpoint will replace.

Testing or inferring from a trained checkpoint needs the architecture only:
the pretraining files of ``init_cfg`` and the word vectors that initialise
prototypes are read by training, and every weight they set is then
overwritten by the checkpoint. :func:`config_for_loading` removes them from
a model config, so such a model builds with none of those files present.
"""
import copy
from typing import Any, Mapping

__all__ = [
    'WORD_VECTORS_FROM_CHECKPOINT', 'is_checkpoint_placeholder',
    'config_for_loading'
]

#: ``word_vectors=WORD_VECTORS_FROM_CHECKPOINT``: the head builds the tensors
#: that word vectors would initialise with a placeholder value, replaced by
#: the checkpoint loaded next. Only :func:`config_for_loading` sets it; a
#: training config never gets it behind the user's back.
WORD_VECTORS_FROM_CHECKPOINT = 'replaced-by-checkpoint'


def is_checkpoint_placeholder(word_vectors: Any) -> bool:
    """Whether ``word_vectors`` is :data:`WORD_VECTORS_FROM_CHECKPOINT`."""
    return isinstance(word_vectors, str) and \
        word_vectors == WORD_VECTORS_FROM_CHECKPOINT


def _without_pretrained(init_cfg: Any) -> Any:
    cfgs = [init_cfg] if isinstance(init_cfg, Mapping) else list(init_cfg)
    kept = [c for c in cfgs if c.get('type') != 'Pretrained']
    if not kept:
        return None
    return kept[0] if isinstance(init_cfg, Mapping) else kept


def _rewrite(node: Any) -> Any:
    if isinstance(node, Mapping):
        out = type(node)()
        for key, value in node.items():
            if key == 'init_cfg' and value:
                value = _without_pretrained(value)
            elif key == 'word_vectors' and value is not None:
                value = WORD_VECTORS_FROM_CHECKPOINT
            else:
                value = _rewrite(value)
            out[key] = value
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_rewrite(v) for v in node)
    return node


def config_for_loading(model_cfg: Mapping) -> Mapping:
    """A copy of ``model_cfg`` that builds without pretraining files.

    Every ``init_cfg`` entry of type ``Pretrained`` is removed (an
    ``init_cfg`` left empty becomes None) and every ``word_vectors`` set to
    :data:`WORD_VECTORS_FROM_CHECKPOINT`. Use it only where a full
    checkpoint is loaded strictly right after the build
    (:func:`~zeromamba_mm.checkpoint.load_model_weights`), never for
    training.

    Args:
        model_cfg (Mapping): A ``model=`` config (dict or ConfigDict).

    Returns:
        Mapping: The rewritten copy, of the same type.
    """
    return _rewrite(copy.deepcopy(model_cfg))
