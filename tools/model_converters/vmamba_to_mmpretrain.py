"""Convert an official VMamba release checkpoint to an mmpretrain checkpoint.

Usage::

    python tools/model_converters/vmamba_to_mmpretrain.py SRC DST [--force]

SRC is an official classification release file (``{'model': state_dict}``,
e.g. ``vssm_small_0229_ckpt_epoch_222.pth``); DST gets
``{'meta': {...}, 'state_dict': {...}}`` with ``backbone.*`` (VMamba,
classifier norm as ``backbone.norm_out``) and ``head.fc.*`` keys, usable by
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` and by
``mmpretrain.apis.get_model(cfg, pretrained=DST)``. SRC is read safely
(``weights_only=True``, see ``zeromamba_mm.utils.safe_load``); DST is
never overwritten unless ``--force`` is given.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch

from zeromamba_mm.checkpoint import is_mmpretrain_layout, load_checkpoint_file
from zeromamba_mm.models.backbones.vmamba_checkpoint import (
    convert_official_vmamba, infer_vmamba_arch)
from zeromamba_mm.utils import write_atomically


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official VMamba checkpoint to the '
        'mmpretrain layout of zeromamba_mm.VMamba.')
    parser.add_argument('src', help='official release file (.pth)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite DST if it exists')
    return parser.parse_args(argv)


def convert_file(src: str, dst: str, force: bool = False) -> dict:
    """Convert ``src`` and write ``dst``; return the meta written.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False.
        FileNotFoundError / RuntimeError / ValueError: ``src`` is missing,
            unreadable or not a VMamba checkpoint.
    """
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'SRC and DST are the same file: {src}')
    if osp.isdir(dst):
        raise ValueError(f'DST {dst} is a directory; give the output file '
                         f'name, e.g. {osp.join(dst, "converted.pth")}')
    if osp.lexists(dst) and not force:
        raise FileExistsError(
            f'{dst} already exists; pass --force to overwrite it.')
    official = load_checkpoint_file(src)
    if is_mmpretrain_layout(official):
        raise ValueError(f'{src} is already in mmpretrain layout '
                         '("backbone." keys); nothing to convert.')
    state_dict = convert_official_vmamba(official)
    arch = infer_vmamba_arch(state_dict, source=src)
    num_classes = arch.pop('num_classes', None)
    meta = dict(
        converted_from=osp.basename(src),
        converter='zeromamba_mm tools/model_converters/'
        'vmamba_to_mmpretrain.py',
        backbone='zeromamba_mm.VMamba',
        arch=arch,
        num_classes=num_classes)
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    # Through a temporary file and a rename (or a link without --force):
    # an interrupted or failed run leaves no half-written file, and without
    # --force no file is ever replaced.
    converted = {'meta': meta, 'state_dict': state_dict}
    write_atomically(
        dst, lambda tmp: torch.save(converted, tmp), overwrite=force)
    return meta


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        meta = convert_file(args.src, args.dst, force=args.force)
    except (OSError, RuntimeError, ValueError) as err:
        # OSError: a missing SRC, an existing DST, a full disk.
        print(f'error: {err}', file=sys.stderr)
        return 1
    arch = meta['arch']
    print(f'Wrote {args.dst}: depths={arch["depths"]} dims={arch["dims"]} '
          f'ssm_ratio={arch["ssm_ratio"]} d_state={arch["d_state"]} '
          f'num_classes={meta["num_classes"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
