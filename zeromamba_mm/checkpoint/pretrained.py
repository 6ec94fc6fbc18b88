"""``init_cfg=dict(type='Pretrained', ...)`` loaded strictly.

MMEngine's own ``Pretrained`` initialiser loads what matches and only warns
about the rest. Modules of this package hand their ``init_cfg`` to
:func:`init_weights_strictly` instead, with the one thing that is theirs: a
``checkpoint_filter_fn(state_dict, module) -> state_dict`` converting a
file's keys to their layout (as timm's backbones do).
"""
from typing import Callable, List, Optional, Tuple, Union

from mmengine.logging import print_log
from mmengine.model import BaseModule, initialize

from .reading import load_checkpoint_file, strip_prefix
from .strict import FilterFn, strict_load_state_dict

__all__ = ['split_pretrained_init_cfg', 'init_weights_strictly']

#: A fixed sentence, or one made from the (filtered) state dict.
Hint = Union[None, str, Callable[[dict], Optional[str]]]


def split_pretrained_init_cfg(init_cfg: Optional[Union[dict, List[dict]]],
                              owner: str) -> Tuple[Optional[dict], List[dict]]:
    """Split an ``init_cfg`` into its ``Pretrained`` entry and the others.

    Args:
        init_cfg (dict | list[dict], optional): The module's ``init_cfg``.
        owner (str): The module's name, for the error message.

    Returns:
        tuple: The ``Pretrained`` entry (or None) and the list of the others.

    Raises:
        ValueError: More than one ``Pretrained`` entry.
    """
    if init_cfg is None:
        return None, []
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(f'{owner} init_cfg: at most one Pretrained entry, '
                         f'got {len(pretrained)}.')
    others = [c for c in cfgs if c.get('type') != 'Pretrained']
    return (pretrained[0] if pretrained else None), others


def init_weights_strictly(module: BaseModule,
                          filter_fn: Optional[FilterFn] = None,
                          *,
                          default_prefix: str = 'backbone.',
                          hint: Hint = None) -> bool:
    """Run a module's ``init_cfg``, loading its ``Pretrained`` file strictly.

    The other ``init_cfg`` entries go to ``mmengine.model.initialize``
    first. The file (an official release, a bare state dict or a runner
    checkpoint) is read safely; keys under the entry's ``prefix`` (default
    ``default_prefix``) are taken without it when the file has any (a
    ``prefix`` given explicitly must be there); ``filter_fn`` converts the
    rest; the result must fit ``module`` exactly.

    Args:
        module (BaseModule): The module being initialised.
        filter_fn (callable, optional): ``filter_fn(state_dict, module)``.
        default_prefix (str): Prefix of the module's keys in a full model's
            checkpoint. Defaults to ``'backbone.'``.
        hint (str | callable, optional): The fix named on a mismatch, or a
            function of the filtered state dict returning it.

    Returns:
        bool: False when ``init_cfg`` has no ``Pretrained`` entry (nothing
        was done: the caller runs its usual ``init_weights``), else True.

    Raises:
        ValueError: Several ``Pretrained`` entries, or none has
            ``checkpoint``.
        KeyError: An explicit ``prefix`` matches no key of the file.
        CheckpointLoadError: The file is missing, unsafe or corrupt.
        CheckpointMismatchError: The keys do not fit ``module``.
    """
    owner = type(module).__name__
    pretrained, others = split_pretrained_init_cfg(module.init_cfg, owner)
    if pretrained is None:
        return False
    if module._is_init:
        print_log(
            f'init_weights of {owner} has been called more than once; '
            'keeping the loaded weights.',
            logger='current')
        return True
    if others:
        initialize(module, others)
    path = pretrained.get('checkpoint')
    if not path:
        raise ValueError(f"{owner} init_cfg=dict(type='Pretrained') needs "
                         '`checkpoint`.')
    given_prefix = pretrained.get('prefix')
    prefix = given_prefix or default_prefix
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    state = load_checkpoint_file(path)
    if any(k.startswith(prefix) for k in state):
        state = strip_prefix(state, prefix)
    elif given_prefix and prefix != default_prefix:
        raise KeyError(f'Checkpoint {path} has no key starting with prefix '
                       f'{prefix!r} (init_cfg of {owner}).')
    if filter_fn is not None:
        state = filter_fn(state, module)
    if callable(hint):
        hint = hint(state)
    strict_load_state_dict(module, state, source=str(path), hint=hint)
    print_log(
        f'{owner}: loaded {len(state)} tensors from {path}', logger='current')
    module._is_init = True
    return True
