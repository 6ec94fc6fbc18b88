"""Parameters and FLOPs of a config's model (mmpretrain's ``get_flops.py``).

Counts, with MMEngine's analyzer and the plugin's handles
(:mod:`zeromamba_mm.analysis`: the selective scan in VMamba's convention,
the 2-D scan as its 1-D passes, broadcasting matrix products such as the
DCT), the inference path of the classifier: ``extract_feat`` and the head's
class scores, on one image (batch 1); one multiply-add is one FLOP.

Example::

    python tools/analysis_tools/get_flops.py configs/vmamba/vmamba-small_8xb128_in1k.py
    python tools/analysis_tools/get_flops.py configs/zeromamba_cub.py --shape 448
"""
import argparse
import os.path as osp
import sys
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import (_word_vector_settings,  # noqa: E402
                     add_cfg_options_arg, check_cfg_options, load_config,
                     register_all)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Get the parameters and FLOPs of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[224, 224],
        help='input image size: H W, or one size for both (default 224)')
    parser.add_argument(
        '--num-classes',
        type=int,
        help='classes an attribute head scores (default: the config\'s '
        'model.data_preprocessor.num_classes)')
    parser.add_argument(
        '--show-arch',
        action='store_true',
        help='also print the model with each module\'s counts')
    add_cfg_options_arg(parser, 'model.backbone.arch=tiny')
    return parser.parse_args(argv)


def input_shape(shape: list) -> tuple:
    """(3, H, W) from ``--shape``."""
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2 or min(shape) < 1:
        raise SystemExit('--shape takes one or two positive sizes (H W), '
                         f'got {shape}')
    return (3, ) + tuple(shape)


def placeholder_word_vectors(cfg: Config) -> None:
    """Build heads whose word-vector file is absent with placeholders.

    Word vectors are initial values of a parameter whose shape the config
    fixes (``num_attributes`` x ``w2v_dim``), so the counts do not depend
    on them, and the data may not be downloaded where FLOPs are counted.
    """
    for where, path, rows, dim in list(_word_vector_settings(cfg.model)):
        if osp.isfile(path):
            continue
        if not rows:
            raise SystemExit(
                f'{where}={path!r} does not exist, and the config does not '
                'give num_attributes beside it to build a placeholder: fix '
                f'the path or pass --cfg-options {where}=None')
        print(f'Note: {where}={path!r} does not exist; counting with '
              f'placeholder word vectors of the same shape ({rows}, {dim}).')
        cfg.merge_from_dict({where: np.ones((rows, dim), dtype=np.float32)})


def main(argv: Optional[list] = None) -> dict:
    args = parse_args(argv)
    shape = input_shape(args.shape)
    register_all()
    from mmpretrain import get_model

    from zeromamba_mm.analysis import (SCAN_OP, format_count,
                                       get_model_complexity_info,
                                       use_inference_path)

    cfg = load_config(args.config)
    check_cfg_options(cfg, args.cfg_options)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    placeholder_word_vectors(cfg)
    model = use_inference_path(get_model(cfg), args.num_classes)
    with torch.no_grad():
        info = get_model_complexity_info(
            model, input_shape=shape, show_arch=args.show_arch)

    if args.show_arch:
        print(info['out_arch'])
    print(info['out_table'])
    by_op = ', '.join(f'{op} {format_count(n)}'
                      for op, n in info['flops_by_operator'].most_common())
    uncounted = ', '.join(f'{op} x{n}'
                          for op, n in sorted(info['uncounted_ops'].items()))
    split_line = '=' * 30
    print(f'{split_line}\nInput shape: {shape}\n'
          f'Flops: {info["flops_str"]}\nParams: {info["params_str"]}\n'
          f'Activation: {info["activations_str"]}\n{split_line}')
    print(f'FLOPs by operator: {by_op}')
    print(f'Counted: {type(model).__name__}.extract_feat + '
          f'{type(model.head).__name__} class scores (batch 1); '
          f'"{SCAN_OP}" is 9*B*L*D*N (+ B*D*L skip) per scan (VMamba\'s '
          'convention). One multiply-add = one FLOP.')
    if uncounted:
        print('Not counted (element-wise or without FLOPs in this '
              f'convention): {uncounted}')
    return info


if __name__ == '__main__':
    main()
