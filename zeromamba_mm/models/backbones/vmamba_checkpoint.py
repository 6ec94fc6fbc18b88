"""Read and convert VMamba checkpoints (official release <-> mmpretrain).

The official VMamba release (`arXiv:2401.10166
<https://arxiv.org/abs/2401.10166>`_) stores a ``VSSM`` state dict
(``patch_embed.*``, ``layers.*``, ``classifier.{norm,head}.*``); this
project's :class:`~zeromamba_mm.models.backbones.VMamba` uses mmpretrain's
``backbone.``/``head.`` layout with the same parameter names inside the
backbone. :func:`convert_official_vmamba` maps one layout to the other and
:func:`infer_vmamba_arch` reads the architecture of a file, so that a
mismatch can be explained and converters can record it.
:func:`vmamba_checkpoint_filter_fn` is the key conversion that
:class:`~zeromamba_mm.models.backbones.VMamba` hands to
:func:`zeromamba_mm.checkpoint.init_weights_strictly`.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from zeromamba_mm.checkpoint import is_mmpretrain_layout, strip_prefix
from .vmamba_variants import new_weight_keys

__all__ = [
    'OFFICIAL_PREFIXES', 'convert_official_vmamba', 'infer_vmamba_arch',
    'vmamba_checkpoint_filter_fn', 'mismatch_hint'
]

#: Top-level prefixes of an official VMamba (``VSSM``) state dict.
OFFICIAL_PREFIXES = ('patch_embed.', 'layers.', 'classifier.', 'pos_embed')
#: How many keys an error message lists.
_MAX_LISTED = 5
#: Scan directions of SS2D (fixed by the architecture).
_K = 4


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


def infer_vmamba_arch(state_dict: Mapping[str, torch.Tensor],
                      source: str = 'the state dict') -> dict:
    """Read the architecture of a VMamba state dict (either layout).

    Every stage is read (depth, width, dt rank), so the result describes the
    whole network, not only its first block.

    Args:
        state_dict (dict): Official or mmpretrain-layout state dict.
        source (str): Where the state dict comes from (a file), named in
            errors.

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
            f'Cannot infer the VMamba architecture of {source}: missing '
            f'{err}.') from err
    # The official models use dt_rank='auto' (ceil(dim / 16) per stage); a
    # single int only describes checkpoints whose stages all share it.
    if all(r == math.ceil(d / 16) for r, d in zip(dt_ranks, dims)):
        dt_rank = 'auto'
    elif len(set(dt_ranks)) == 1:
        dt_rank = dt_ranks[0]
    else:
        raise ValueError(
            f'{source}: cannot describe the per-stage dt ranks {dt_ranks} '
            f'(dims {dims})'
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


def vmamba_checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor],
                                model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official or mmpretrain VMamba weights -> ``model``'s backbone keys.

    The state dict (official ``VSSM`` keys, or backbone keys of the
    mmpretrain layout with their ``backbone.`` prefix already removed) is
    converted by :func:`convert_official_vmamba`; the release's classifier
    head is dropped. For a model with ``final_norm=False`` the file's
    ``norm_out`` is dropped; weights new in a variant (``scan='2d'``) that
    an official file lacks keep the model's init (both logged).

    Args:
        state_dict (dict): The file's state dict.
        model (nn.Module): The :class:`VMamba` being initialised.

    Returns:
        dict: State dict with ``model``'s keys.

    Raises:
        ValueError: The keys are in neither layout.
        KeyError: No backbone key is left.
    """
    state = strip_prefix(convert_official_vmamba(state_dict), 'backbone.')
    if not state:
        raise KeyError('The checkpoint has no VMamba backbone keys, e.g. '
                       f'{list(state_dict)[:_MAX_LISTED]}.')
    if not getattr(model, 'final_norm', True):
        dropped = [k for k in state if k.startswith('norm_out.')]
        for key in dropped:
            del state[key]
        if dropped:
            print_log(
                'VMamba(final_norm=False): skipping norm_out.* of the '
                'checkpoint (the classifier norm is not part of this '
                'backbone).',
                logger='current')
    own = model.state_dict()
    new_keys = [k for k in new_weight_keys(model) if k not in state]
    for key in new_keys:
        state[key] = own[key]
    if new_keys:
        print_log(
            f'VMamba(scan={getattr(model, "scan", None)!r}): {len(new_keys)} '
            'weights are new in this variant and not in the checkpoint; they '
            f'keep their init (e.g. {new_keys[0]}).',
            logger='current')
    return state


def mismatch_hint(state_dict: Mapping[str, torch.Tensor],
                  model: nn.Module) -> Optional[str]:
    """Say which architecture a backbone state dict has, beside the model's.

    Args:
        state_dict (dict): Backbone keys (as the filter fn returns them).
        model (nn.Module): The :class:`VMamba` they should fit.

    Returns:
        str | None: The sentence, or None when the file's architecture
        cannot be read.
    """
    try:
        arch = infer_vmamba_arch({
            'backbone.' + k: v
            for k, v in state_dict.items()
        })
    except ValueError:
        return None
    settings = model.arch_settings
    return (f'The checkpoint looks like depths={arch["depths"]}, '
            f'dims={arch["dims"]}, ssm_ratio={arch["ssm_ratio"]}, '
            f'd_state={arch["d_state"]}; the model has '
            f'depths={model.depths}, dims={model.dims}, '
            f'ssm_ratio={settings["ssm_ratio"]}, '
            f'd_state={settings["d_state"]}.')
