"""Strict checkpoint helpers shared by the models of zeromamba_mm.

Files are read through :mod:`zeromamba_mm.utils.safe_load` (never a plain
unpickle), and every load is strict: a key that is missing, unexpected or of
the wrong shape raises :class:`CheckpointMismatchError` naming the file and
the first offending keys; nothing is loaded partially behind the user's
back. The VMamba-specific conversion lives beside VMamba
(:mod:`zeromamba_mm.models.backbones.vmamba_checkpoint`).
"""
import os
from collections import OrderedDict
from typing import (Dict, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn

from zeromamba_mm.utils.safe_load import CheckpointLoadError, load_torch_file

__all__ = [
    'CheckpointMismatchError', 'load_checkpoint_file', 'is_mmpretrain_layout',
    'split_pretrained_init_cfg', 'strict_load_state_dict'
]

#: Top-level prefixes of an mmpretrain ``ImageClassifier`` state dict.
MMPRETRAIN_PREFIXES = ('backbone.', 'neck.', 'head.', 'data_preprocessor.')
#: How many offending keys an error message lists per category.
_MAX_LISTED = 5


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit the module it is loaded into."""


def load_checkpoint_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return its state dict.

    The file is read with
    :func:`~zeromamba_mm.utils.safe_load.load_torch_file`
    (``weights_only=True`` plus the named globals of runner checkpoints).
    ``{'model': sd}`` (official VMamba release) and ``{'state_dict': sd}``
    (MMEngine) are unwrapped; a bare state dict is returned as is.

    Args:
        path (str): Path of the checkpoint file.

    Returns:
        dict: The state dict (str -> Tensor).

    Raises:
        CheckpointNotFoundError: ``path`` does not exist (also a
            ``FileNotFoundError``).
        UnsafeFileError: The file asks for a global that is not allowed
            (weights_only=True refuses it); nothing of it ran.
        CheckpointLoadError: The file is corrupt or truncated, or holds no
            state dict (a ``RuntimeError``).
    """
    path = os.path.expanduser(os.fspath(path))
    obj = load_torch_file(path)
    state_dict = obj
    if isinstance(obj, Mapping):
        for wrapper in ('state_dict', 'model'):
            if isinstance(obj.get(wrapper), Mapping):
                state_dict = obj[wrapper]
                break
    if not isinstance(state_dict, Mapping) or not state_dict:
        found = type(obj).__name__
        if isinstance(obj, Mapping):
            found += f' with keys {list(obj)[:_MAX_LISTED]}'
        raise CheckpointLoadError(
            f'Checkpoint {path} holds no state dict: expected a dict of '
            f'tensors, optionally under "model" or "state_dict", got '
            f'{found}.')
    bad = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointLoadError(
            f'Checkpoint {path}: the state dict has non-tensor entries, '
            f'e.g. {bad[:_MAX_LISTED]}.')
    return OrderedDict(state_dict)


def is_mmpretrain_layout(state_dict: Mapping) -> bool:
    """Whether a state dict uses mmpretrain's ``backbone./head.`` layout."""
    return any(k.startswith('backbone.') for k in state_dict)


def split_pretrained_init_cfg(
        init_cfg: Optional[Union[dict, List[dict]]],
        owner: str) -> Tuple[Optional[dict], List[dict]]:
    """Split an ``init_cfg`` into its ``Pretrained`` entry and the others.

    Modules that load their pretrained weights strictly themselves (instead
    of MMEngine's lenient ``Pretrained`` initialiser) hand the other entries
    to ``mmengine.model.initialize`` and read the file of the ``Pretrained``
    one.

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


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _listing(items: Sequence[str]) -> str:
    shown = '; '.join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f' (and {more} more)' if more > 0 else '')


def strict_load_state_dict(module: nn.Module,
                           state_dict: Mapping[str, torch.Tensor],
                           *,
                           source: str,
                           ignore_prefixes: Iterable[str] = (),
                           hint: Optional[str] = None) -> None:
    """Load a state dict into a module, refusing any mismatch.

    Every key of ``module.state_dict()`` must be present with the same shape
    and no other key may be present; keys starting with one of
    ``ignore_prefixes`` are left out on both sides (neither required nor
    loaded).

    Args:
        module (nn.Module): Destination.
        state_dict (dict): Source state dict (keys relative to ``module``).
        source (str): Where ``state_dict`` comes from (a file path), named
            in the error.
        ignore_prefixes (Iterable[str]): Key prefixes to skip.
        hint (str, optional): Extra sentence appended to the error.

    Raises:
        CheckpointMismatchError: Keys are missing, unexpected or have the
            wrong shape; the message names the first few of each with the
            expected and found shapes.
    """
    prefixes = tuple(ignore_prefixes)

    def kept(key: str) -> bool:
        return not (prefixes and key.startswith(prefixes))

    expected = {k: v for k, v in module.state_dict().items() if kept(k)}
    given = OrderedDict((k, v) for k, v in state_dict.items() if kept(k))
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f'{k}: expected {_shape(expected[k])}, found {_shape(given[k])}'
        for k in expected
        if k in given and _shape(expected[k]) != _shape(given[k])
    ]
    if missing or unexpected or wrong:
        lines = [
            f'Checkpoint {source} does not match '
            f'{type(module).__name__}: {len(wrong)} key(s) with the wrong '
            f'shape, {len(missing)} missing, {len(unexpected)} unexpected.'
        ]
        if wrong:
            lines.append('  wrong shape (model vs checkpoint): ' +
                         _listing(wrong))
        if missing:
            lines.append(
                '  missing from checkpoint: ' +
                _listing([f'{k} {_shape(expected[k])}' for k in missing]))
        if unexpected:
            lines.append(
                '  unexpected in checkpoint: ' +
                _listing([f'{k} {_shape(given[k])}' for k in unexpected]))
        if hint:
            lines.append('  ' + hint)
        raise CheckpointMismatchError('\n'.join(lines))
    result = module.load_state_dict(given, strict=False)
    # Everything was checked above; this guards against a module whose
    # load hooks rename keys behind our back.
    left = [k for k in result.missing_keys if kept(k)]
    if left or result.unexpected_keys:
        raise CheckpointMismatchError(
            f'Checkpoint {source}: loading left keys out: missing {left}, '
            f'unexpected {result.unexpected_keys}.')
