"""Strict checkpoint helpers shared by the models of zeromamba_mm.

Release files are third-party data: they are read with
``torch.load(..., weights_only=True)`` and every load is strict. A key that
is missing, unexpected or of the wrong shape raises
:class:`CheckpointMismatchError` naming the file and the first offending
keys; nothing is ever loaded partially behind the user's back.
"""
import math
import os
import pickle
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = [
    'CheckpointMismatchError', 'load_checkpoint_file',
    'convert_official_vmamba', 'is_mmpretrain_layout', 'infer_vmamba_arch',
    'strict_load_state_dict'
]

#: Top-level prefixes of an mmpretrain ``ImageClassifier`` state dict.
MMPRETRAIN_PREFIXES = ('backbone.', 'neck.', 'head.', 'data_preprocessor.')
#: Top-level prefixes of an official VMamba (``VSSM``) state dict.
OFFICIAL_PREFIXES = ('patch_embed.', 'layers.', 'classifier.', 'pos_embed')
#: How many offending keys an error message lists per category.
_MAX_LISTED = 5
#: Scan directions of SS2D (fixed by the architecture).
_K = 4


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit the module it is loaded into."""


def load_checkpoint_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return its state dict.

    The file is read with ``torch.load(path, map_location='cpu',
    weights_only=True)``. ``{'model': sd}`` (official VMamba release) and
    ``{'state_dict': sd}`` (MMEngine) are unwrapped; a bare state dict is
    returned as is.

    Args:
        path (str): Path of the checkpoint file.

    Returns:
        dict: The state dict (str -> Tensor).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: The file is corrupt or truncated, holds objects that
            ``weights_only=True`` refuses, or holds no state dict.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only=True refuses arbitrary classes (e.g. a pickled
        # training config); we do not unpickle third-party files fully.
        raise RuntimeError(
            f'Cannot load checkpoint {path} with weights_only=True: it holds '
            f'objects other than tensors and plain containers ({err}). '
            'If you trust the file, re-save its weights only, e.g. '
            '`torch.save({"model": torch.load(SRC, weights_only=False)'
            '["model"]}, DST)`, and load DST.') from err
    except Exception as err:  # zip/EOF/struct errors of a damaged file
        raise RuntimeError(
            f'Cannot read checkpoint {path}: the file is corrupt or '
            f'truncated ({type(err).__name__}: {err}).') from err

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
        raise RuntimeError(
            f'Checkpoint {path} holds no state dict: expected a dict of '
            f'tensors, optionally under "model" or "state_dict", got '
            f'{found}.')
    bad = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if bad:
        raise RuntimeError(
            f'Checkpoint {path}: the state dict has non-tensor entries, '
            f'e.g. {bad[:_MAX_LISTED]}.')
    return OrderedDict(state_dict)


def is_mmpretrain_layout(state_dict: Mapping) -> bool:
    """Whether a state dict uses mmpretrain's ``backbone./head.`` layout."""
    return any(k.startswith('backbone.') for k in state_dict)


def _is_official_layout(state_dict: Mapping) -> bool:
    return any(k.startswith(OFFICIAL_PREFIXES) for k in state_dict)


def _convert_official_param(key: str,
                            value: torch.Tensor) -> Tuple[str, torch.Tensor]:
    """Map one official backbone parameter to this project's layout.

    Handles the variants seen in VMamba files: per-direction projections
    stored stacked (``x_proj_weight``/``dt_projs_weight``, our layout) or
    flattened as module weights (``x_proj.weight`` (K*(R+2N), E[, 1]),
    ``dt_projs.weight`` (K*E, R[, 1])), and 1x1 projections stored as conv
    weights (out, in, 1, 1) instead of linear (out, in).
    """
    if key.endswith('.op.x_proj.weight') or key.endswith(
            '.op.dt_projs.weight'):
        new_key = key.replace('.op.x_proj.weight', '.op.x_proj_weight')
        new_key = new_key.replace('.op.dt_projs.weight', '.op.dt_projs_weight')
        if value.dim() == 3 and value.shape[-1] == 1:
            value = value[..., 0]
        if value.dim() != 2 or value.shape[0] % _K != 0:
            raise ValueError(
                f'Cannot convert {key}: expected a 2-D weight whose first '
                f'dimension is a multiple of {_K}, got {tuple(value.shape)}.')
        return new_key, value.reshape(_K, value.shape[0] // _K, value.shape[1])
    if re.search(r'\.(in_proj|out_proj|fc1|fc2)\.weight$', key) and \
            value.dim() == 4 and value.shape[2:] == (1, 1):
        return key, value[:, :, 0, 0]
    return key, value


def convert_official_vmamba(
        state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert an official VMamba state dict to the mmpretrain layout.

    Backbone keys get the ``backbone.`` prefix (names otherwise kept, see
    :class:`zeromamba_mm.VMamba`), ``classifier.norm.*`` becomes
    ``backbone.norm_out.*`` and ``classifier.head.*`` becomes ``head.fc.*``
    (mmpretrain's ``LinearClsHead``). A state dict that already has
    ``backbone.`` keys is returned unchanged.

    Args:
        state_dict (dict): Official (``VSSM``) or mmpretrain state dict.

    Returns:
        dict: The state dict in mmpretrain layout.

    Raises:
        ValueError: The keys are in neither layout.
    """
    if is_mmpretrain_layout(state_dict):
        return state_dict
    if not _is_official_layout(state_dict):
        raise ValueError(
            'Not a VMamba state dict: expected official keys starting with '
            f'{OFFICIAL_PREFIXES} or mmpretrain keys starting with '
            f'"backbone.", got e.g. {list(state_dict)[:_MAX_LISTED]}.')
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('classifier.norm.'):
            new_key = 'backbone.norm_out.' + key[len('classifier.norm.'):]
        elif key.startswith('classifier.head.'):
            new_key = 'head.fc.' + key[len('classifier.head.'):]
        else:
            key, value = _convert_official_param(key, value)
            new_key = 'backbone.' + key
        converted[new_key] = value
    return converted


def infer_vmamba_arch(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Read the architecture of a VMamba state dict (either layout).

    Args:
        state_dict (dict): Official or mmpretrain-layout state dict.

    Returns:
        dict: ``depths``, ``dims``, ``ssm_ratio``, ``d_state``, ``dt_rank``
        and ``mlp_ratio`` (plus ``num_classes`` when a head is present).

    Raises:
        ValueError: The state dict lacks the keys needed.
    """
    sd = convert_official_vmamba(state_dict)
    sd = {
        k[len('backbone.'):]: v
        for k, v in sd.items() if k.startswith('backbone.')
    }
    depths: List[int] = []
    pattern = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.')
    for key in sd:
        match = pattern.match(key)
        if match:
            i, j = int(match.group(1)), int(match.group(2))
            while len(depths) <= i:
                depths.append(0)
            depths[i] = max(depths[i], j + 1)
    try:
        dims = [
            int(sd[f'layers.{i}.blocks.0.norm.weight'].shape[0])
            for i in range(len(depths))
        ]
        block = 'layers.0.blocks.0.'
        inner = sd[block + 'op.in_proj.weight'].shape[0]
        d_state = sd[block + 'op.A_logs'].shape[1]
        dt_ranks = [
            int(sd[f'layers.{i}.blocks.0.op.dt_projs_weight'].shape[2])
            for i in range(len(depths))
        ]
        hidden = sd[block + 'mlp.fc1.weight'].shape[0]
    except (KeyError, IndexError) as err:
        raise ValueError(
            f'Cannot infer the VMamba architecture: missing {err}.') from err
    # The official models use dt_rank='auto' (ceil(dim / 16) per stage); a
    # single int only describes checkpoints whose stages all share it.
    if all(r == math.ceil(d / 16) for r, d in zip(dt_ranks, dims)):
        dt_rank = 'auto'
    elif len(set(dt_ranks)) == 1:
        dt_rank = dt_ranks[0]
    else:
        raise ValueError(
            f'Cannot describe the per-stage dt ranks {dt_ranks} (dims {dims})'
            ' with one `dt_rank`: expected ceil(dim / 16) per stage or one '
            'shared value.')
    arch = dict(
        depths=depths,
        dims=dims,
        ssm_ratio=inner / dims[0],
        d_state=int(d_state),
        dt_rank=dt_rank,
        mlp_ratio=hidden / dims[0])
    head = state_dict.get('head.fc.weight',
                          state_dict.get('classifier.head.weight'))
    if head is not None:
        arch['num_classes'] = int(head.shape[0])
    return arch


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
