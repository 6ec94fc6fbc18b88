"""Strict loading: every key present, nothing extra, every shape equal.

A mismatch raises :class:`CheckpointMismatchError` naming the file, the
first offending keys with their shapes and the fix; nothing is loaded
partially behind the user's back.
"""
from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from .reading import MAX_LISTED, read_checkpoint, unwrap_state_dict

__all__ = [
    'CheckpointMismatchError', 'strict_load_state_dict', 'load_model_weights',
    'FilterFn'
]

#: ``checkpoint_filter_fn(state_dict, model) -> state_dict``: converts the
#: keys of a file to the module's layout (as timm's filter functions do).
FilterFn = Callable[[Mapping[str, torch.Tensor], nn.Module],
                    Mapping[str, torch.Tensor]]

#: The fix named when a full checkpoint does not fit its model.
SAME_CONFIG_HINT = ('Is this a checkpoint of this config? A checkpoint fits '
                    'only the config (architecture and head sizes) it was '
                    'trained with.')


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit the module it is loaded into."""


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _listing(items: Sequence[str]) -> str:
    shown = '; '.join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f' (and {more} more)' if more > 0 else '')


def _mismatch_error(module: nn.Module, source: str, expected: Mapping,
                    given: Mapping, wrong: Sequence[str],
                    missing: Sequence[str], unexpected: Sequence[str],
                    hint: Optional[str]) -> CheckpointMismatchError:
    lines = [
        f'Checkpoint {source} does not match '
        f'{type(module).__name__}: {len(wrong)} key(s) with the wrong '
        f'shape, {len(missing)} missing, {len(unexpected)} unexpected.'
    ]
    if wrong:
        lines.append('  wrong shape (model vs checkpoint): ' + _listing(wrong))
    if missing:
        lines.append('  missing from checkpoint: ' +
                     _listing([f'{k} {_shape(expected[k])}' for k in missing]))
    if unexpected:
        lines.append('  unexpected in checkpoint: ' +
                     _listing([f'{k} {_shape(given[k])}' for k in unexpected]))
    if hint:
        lines.append('  ' + hint)
    return CheckpointMismatchError('\n'.join(lines))


def strict_load_state_dict(module: nn.Module,
                           state_dict: Mapping[str, torch.Tensor],
                           *,
                           source: str,
                           ignore_prefixes: Iterable[str] = (),
                           hint: Optional[str] = None) -> None:
    """Load a state dict into a module, refusing any mismatch.

    Every key of ``module.state_dict()`` must be present with the same shape
    (checked before anything is loaded), and every other key must be taken
    by the module's own load hook (e.g. the momentum copy that
    :class:`~zeromamba_mm.models.OPERASignal` creates at the first training
    step), else it is unexpected. Keys starting with one of
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
    wrong = [
        f'{k}: expected {_shape(expected[k])}, found {_shape(given[k])}'
        for k in expected
        if k in given and _shape(expected[k]) != _shape(given[k])
    ]
    if missing or wrong:
        unexpected = [k for k in given if k not in expected]
        raise _mismatch_error(module, source, expected, given, wrong, missing,
                              unexpected, hint)
    # torch reports as unexpected only the keys no module's load hook took.
    result = module.load_state_dict(given, strict=False)
    missing = [k for k in result.missing_keys if kept(k)]
    if missing or result.unexpected_keys:
        raise _mismatch_error(module, source, expected, given, [], missing,
                              result.unexpected_keys, hint)


def load_model_weights(model: nn.Module,
                       path: str,
                       *,
                       filter_fn: Optional[FilterFn] = None,
                       hint: Optional[str] = SAME_CONFIG_HINT) -> dict:
    """Strictly load the weights of a checkpoint file into ``model``.

    Args:
        model (nn.Module): The built model (a DDP wrapper is unwrapped).
        path (str): A runner checkpoint (``{'state_dict', 'meta', ...}``),
            ``{'model': sd}``, or a bare state dict; a local path or a file
            backend URI.
        filter_fn (callable, optional): ``filter_fn(state_dict, model)``
            converting the file's keys first (e.g. an official layout).
        hint (str, optional): The fix named when the file does not fit.

    Returns:
        dict: The checkpoint's ``meta`` (``{}`` if none).

    Raises:
        CheckpointLoadError: The file is missing, unsafe or holds no state
            dict.
        CheckpointMismatchError: Missing, unexpected or mis-shaped keys.
    """
    if is_model_wrapper(model):
        model = model.module
    obj = read_checkpoint(path)
    state_dict = unwrap_state_dict(obj, str(path))
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    strict_load_state_dict(model, state_dict, source=str(path), hint=hint)
    print_log(
        f'Loaded {len(state_dict)} tensors from {path} (strict).',
        logger='current')
    meta = obj.get('meta') if isinstance(obj, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else {}
