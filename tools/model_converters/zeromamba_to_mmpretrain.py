"""Convert the ZeroMamba authors' trained checkpoints to this plugin's layout.

Usage::

    python tools/model_converters/zeromamba_to_mmpretrain.py SRC DST [--force]

SRC is one of the released ``{CUB,SUN,AWA2}_best{CZSL,GZSL}.pth`` files: the
plain state dict of the authors' ``nn.ModuleDict`` with

- ``VisionMamba.*``: the official VMamba weights, including the ImageNet
  classifier ``VisionMamba.classifier.{norm,head}`` and SLP as
  ``VisionMamba.classifier2.{V,W1,W2}``;
- ``clf_head.weight`` (and ``clf_head.bias`` if saved from a model with a
  bias): GRL;
- ``clf_head2.{0,2}.weight``: ``MLP_ls``.

DST gets ``{'meta': {...}, 'state_dict': {...}}`` with the parameter names of
a ``zeromamba_mm.ZeroShotClassifier`` built from ``zeromamba_mm.VMamba``
(``final_norm=False``), ``zeromamba_mm.ZeroMambaNeck`` and
``zeromamba_mm.ZeroMambaHead``: ``backbone.*``, ``neck.norm.*``,
``neck.fc.*``, ``head.slp.{V,W1,W2}``, ``head.slp.mlp_local.{0,2}.weight``
and ``head.grl.fc.*``. ``meta`` records the architecture and head settings
the weights need. SRC is read safely (``weights_only=True``, see
``zeromamba_mm.utils.safe_load``); every key must be
recognised; DST is never overwritten unless ``--force`` is given.
"""
import argparse
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from zeromamba_mm.checkpoint import load_checkpoint_file, unwrap_state_dict
from zeromamba_mm.models.backbones.vmamba_checkpoint import (
    convert_official_vmamba, infer_vmamba_arch)
from zeromamba_mm.utils import write_atomically

#: The authors' key -> this plugin's key, outside the VMamba backbone.
HEAD_KEYS = OrderedDict([
    ('VisionMamba.classifier2.V', 'head.slp.V'),
    ('VisionMamba.classifier2.W1', 'head.slp.W1'),
    ('VisionMamba.classifier2.W2', 'head.slp.W2'),
    ('clf_head2.0.weight', 'head.slp.mlp_local.0.weight'),
    ('clf_head2.2.weight', 'head.slp.mlp_local.2.weight'),
    ('clf_head.weight', 'head.grl.fc.weight'),
])
OPTIONAL_HEAD_KEYS = {'clf_head.bias': 'head.grl.fc.bias'}
BACKBONE_PREFIX = 'VisionMamba.'


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def convert_zeromamba_state_dict(
        state_dict: Mapping[str, torch.Tensor],
        source: str = 'the state dict'
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Rename the authors' state dict to the ZeroShotClassifier's names.

    Args:
        state_dict (dict): The authors' checkpoint (see the module doc).
        source (str): Name of the file, used in error messages.

    Returns:
        tuple[dict, dict]: The converted state dict and a description of
        the model it fits (``arch``, ``neck`` and ``head`` settings).

    Raises:
        KeyError: Required keys are missing or unknown keys are present.
        ValueError: Shapes are inconsistent with each other.
    """
    # A bare dict (``module.`` of (Distributed)DataParallel is stripped).
    state_dict = unwrap_state_dict(state_dict, source)
    missing = [k for k in HEAD_KEYS if k not in state_dict]
    if missing:
        raise KeyError(
            f'{source} is not a ZeroMamba checkpoint: missing {missing}. '
            f'Expected {list(HEAD_KEYS)} and VisionMamba.* keys.')
    unknown = [
        k for k in state_dict if k not in HEAD_KEYS
        and k not in OPTIONAL_HEAD_KEYS and not k.startswith(BACKBONE_PREFIX)
    ]
    if unknown:
        raise KeyError(f'{source}: unknown keys {unknown[:10]}; this '
                       'converter does not know where they belong.')

    vmamba = OrderedDict(
        (k[len(BACKBONE_PREFIX):], v) for k, v in state_dict.items()
        if k.startswith(BACKBONE_PREFIX) and k not in HEAD_KEYS)
    for key in ('classifier.norm.weight', 'classifier.norm.bias',
                'classifier.head.weight', 'classifier.head.bias'):
        if key not in vmamba:
            raise KeyError(f'{source}: missing {BACKBONE_PREFIX}{key} (the '
                           "backbone's ImageNet classifier, GRL's input).")
    stray = [
        k for k in vmamba if k.startswith('classifier') and not k.startswith(
            ('classifier.norm.', 'classifier.head.'))
    ]
    if stray:
        raise KeyError(f'{source}: unknown classifier keys '
                       f'{[BACKBONE_PREFIX + k for k in stray[:10]]}.')
    converted_vmamba = convert_official_vmamba(vmamba)
    arch = infer_vmamba_arch(converted_vmamba, source=source)

    converted = OrderedDict()
    for key, value in converted_vmamba.items():
        if key.startswith('backbone.norm_out.'):
            key = 'neck.norm.' + key[len('backbone.norm_out.'):]
        elif key.startswith('head.fc.'):
            key = 'neck.fc.' + key[len('head.fc.'):]
        converted[key] = value
    for theirs, ours in list(HEAD_KEYS.items()) + list(
            OPTIONAL_HEAD_KEYS.items()):
        if theirs in state_dict:
            converted[ours] = state_dict[theirs]

    # Cross-check the head shapes so a mismatch is reported here, with the
    # authors' names, rather than as a load error later.
    num_attributes, w2v_dim = _shape(state_dict['VisionMamba.classifier2.V'])
    channels = arch['dims'][-1]
    num_classes = _shape(vmamba['classifier.head.weight'])[0]
    hidden = _shape(state_dict['clf_head2.0.weight'])[0]
    expected = {
        'VisionMamba.classifier2.W1': (w2v_dim, channels),
        'VisionMamba.classifier2.W2': (w2v_dim, channels),
        'clf_head.weight': (num_attributes, num_classes),
        'clf_head2.0.weight': (hidden, num_attributes),
        'clf_head2.2.weight': (num_attributes, hidden),
    }
    if 'clf_head.bias' in state_dict:
        expected['clf_head.bias'] = (num_attributes, )
    wrong = [
        f'{k}: expected {shape}, found {_shape(state_dict[k])}'
        for k, shape in expected.items() if _shape(state_dict[k]) != shape
    ]
    if wrong:
        raise ValueError(
            f'{source}: inconsistent head shapes (A={num_attributes} from V, '
            f'C={channels} from the backbone, {num_classes} ImageNet '
            f'classes): {wrong}.')
    arch.pop('num_classes', None)
    info = dict(
        arch=arch,
        neck=dict(in_channels=channels, imagenet_classes=num_classes),
        head=dict(
            num_attributes=num_attributes,
            in_channels=channels,
            imagenet_classes=num_classes,
            w2v_dim=w2v_dim,
            mlp_hidden=hidden,
            grl_bias='clf_head.bias' in state_dict))
    return converted, info


def convert_file(src: str, dst: str, force: bool = False) -> dict:
    """Convert ``src`` and write ``dst``; return the meta written.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False.
        FileNotFoundError / RuntimeError / KeyError / ValueError: ``src`` is
            missing, unreadable or not a ZeroMamba checkpoint.
    """
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'SRC and DST are the same file: {src}')
    if osp.isdir(dst):
        raise ValueError(f'DST {dst} is a directory; give the output file '
                         f'name, e.g. {osp.join(dst, "converted.pth")}')
    if osp.lexists(dst) and not force:
        raise FileExistsError(
            f'{dst} already exists; pass --force to overwrite it.')
    state_dict, info = convert_zeromamba_state_dict(
        load_checkpoint_file(src), source=src)
    meta = dict(
        converted_from=osp.basename(src),
        converter='zeromamba_mm tools/model_converters/'
        'zeromamba_to_mmpretrain.py',
        model='zeromamba_mm.ZeroShotClassifier',
        backbone='zeromamba_mm.VMamba (final_norm=False)',
        **info)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    # Through a temporary file and a rename (or a link without --force):
    # an interrupted or failed run leaves no half-written file, and without
    # --force no file is ever replaced.
    converted = {'meta': meta, 'state_dict': state_dict}
    write_atomically(
        dst, lambda tmp: torch.save(converted, tmp), overwrite=force)
    return meta


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a ZeroMamba release checkpoint (authors\' '
        'layout) to a zeromamba_mm ZeroShotClassifier checkpoint.')
    parser.add_argument(
        'src', help='authors\' checkpoint, e.g. '
        'CUB_bestGZSL.pth')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite DST if it exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        meta = convert_file(args.src, args.dst, force=args.force)
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        # OSError: a missing SRC, an existing DST, a full disk.
        print(f'error: {err}', file=sys.stderr)
        return 1
    arch, head = meta['arch'], meta['head']
    print(f'Wrote {args.dst}: backbone depths={arch["depths"]} '
          f'dims={arch["dims"]} ssm_ratio={arch["ssm_ratio"]}; head '
          f'num_attributes={head["num_attributes"]} '
          f'grl_bias={head["grl_bias"]}')
    if head['grl_bias']:
        print('Note: the checkpoint has a GRL bias: build the head with '
              'grl_bias=True.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
