"""Read checkpoint files safely and unwrap their state dict and meta.

Every file goes through :mod:`zeromamba_mm.utils.safe_load`
(``torch.load(weights_only=True)`` plus the named globals of MMEngine's own
checkpoints): nothing pickled in a file is ever run.
"""
import os
from collections import OrderedDict
from typing import Any, Dict, Mapping

import torch
from mmengine.fileio import get as fileio_get

from zeromamba_mm.utils.safe_load import (CheckpointLoadError,
                                          load_torch_bytes, load_torch_file)

__all__ = [
    'read_checkpoint', 'unwrap_state_dict', 'load_checkpoint_file',
    'load_checkpoint_meta', 'strip_prefix', 'is_mmpretrain_layout',
    'MAX_LISTED'
]

#: Where a state dict can sit in a checkpoint: MMEngine's runner
#: (``state_dict``), official releases (``model``), timm/DeiT EMA files.
STATE_DICT_KEYS = ('state_dict', 'model', 'state_dict_ema', 'model_ema')
#: The prefix a DistributedDataParallel wrapper adds to every key.
DDP_PREFIX = 'module.'
#: How many offending keys an error message lists per category.
MAX_LISTED = 5


def read_checkpoint(filename: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint safely, from a local path or a file backend URI.

    Args:
        filename (str): Local path, or a URI of an MMEngine file backend
            (``http(s)://``, ``s3://``, ...), read with
            ``mmengine.fileio.get``.
        map_location: Passed to ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The loaded object (see
        :func:`~zeromamba_mm.utils.safe_load.load_torch_file`).

    Raises:
        CheckpointNotFoundError: A local ``filename`` does not exist.
        UnsafeFileError: The file asks for a global that is not allowed.
        CheckpointLoadError: The file is corrupt, or a URI cannot be read.
    """
    filename = os.fspath(filename)
    if '://' in filename:
        try:
            data = fileio_get(filename)
        except Exception as err:
            raise CheckpointLoadError(
                f'Cannot fetch checkpoint {filename}: {type(err).__name__}: '
                f'{err}') from None
        return load_torch_bytes(data, filename, map_location)
    return load_torch_file(os.path.expanduser(filename), map_location)


def strip_prefix(state_dict: Mapping[str, Any],
                 prefix: str) -> 'OrderedDict[str, Any]':
    """The entries of ``state_dict`` under ``prefix``, without it."""
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                       if k.startswith(prefix))


def unwrap_state_dict(obj: Any, source: str) -> 'OrderedDict[str, Any]':
    """The state dict of a loaded checkpoint object.

    ``{'state_dict': sd}`` (MMEngine), ``{'model': sd}`` (official
    releases) and the EMA copies ``state_dict_ema`` / ``model_ema`` (only
    when no plain one is present) are unwrapped; the ``module.`` prefix of a
    DDP-wrapped model is removed when every key has it.

    Args:
        obj: What :func:`read_checkpoint` returned.
        source (str): The file, named in errors.

    Returns:
        OrderedDict: str -> Tensor.

    Raises:
        CheckpointLoadError: ``obj`` holds no non-empty dict of tensors.
    """
    state_dict = obj
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                state_dict = obj[key]
                break
    if not isinstance(state_dict, Mapping) or not state_dict:
        found = type(obj).__name__
        if isinstance(obj, Mapping):
            found += f' with keys {list(obj)[:MAX_LISTED]}'
        raise CheckpointLoadError(
            f'Checkpoint {source} holds no state dict: expected a dict of '
            f'tensors, optionally under "state_dict" or "model", got '
            f'{found}.')
    bad = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointLoadError(
            f'Checkpoint {source}: the state dict has non-tensor entries, '
            f'e.g. {bad[:MAX_LISTED]}.')
    if all(str(k).startswith(DDP_PREFIX) for k in state_dict):
        return strip_prefix(state_dict, DDP_PREFIX)
    return OrderedDict(state_dict)


def load_checkpoint_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return its state dict.

    Args:
        path (str): Path (or file backend URI) of the checkpoint.

    Returns:
        dict: The unwrapped state dict (see :func:`unwrap_state_dict`).

    Raises:
        CheckpointNotFoundError: ``path`` does not exist (also a
            ``FileNotFoundError``).
        UnsafeFileError: The file asks for a global that is not allowed.
        CheckpointLoadError: The file is corrupt or truncated, or holds no
            state dict (a ``RuntimeError``).
    """
    return unwrap_state_dict(read_checkpoint(path), str(path))


def load_checkpoint_meta(path: str) -> dict:
    """The ``meta`` of a checkpoint (``{}`` when it has none), read safely.

    Args:
        path (str): Path (or file backend URI) of the checkpoint.

    Returns:
        dict: ``checkpoint['meta']`` (training writes ``dataset_meta``,
        ``zsl_class_semantics``, ``zsl_operating_point``, ``epoch`` ...).
    """
    obj = read_checkpoint(path)
    meta = obj.get('meta') if isinstance(obj, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else {}


def is_mmpretrain_layout(state_dict: Mapping) -> bool:
    """Whether a state dict uses mmpretrain's ``backbone./head.`` layout."""
    return any(k.startswith('backbone.') for k in state_dict)
