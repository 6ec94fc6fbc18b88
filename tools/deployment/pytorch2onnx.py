"""Export a trained model to one self-contained ONNX file.

The file holds the graph (preprocessing included) and, as metadata, what
the runtime needs: class names, seen/unseen ids, the class-attribute
matrix, γ and score space, mean/std, input size, mode and test pipeline.
The export is checked with ``onnx.checker`` and run with onnxruntime
against PyTorch; a graph that differs is refused and nothing is written.
Examples::

    # class scores at the checkpoint's operating point (γ, score space)
    python tools/deployment/pytorch2onnx.py configs/zeromamba_demo.py \
        work_dirs/demo/best.pth --out demo.onnx

    # attribute prediction, classes given at run time, any batch size
    python tools/deployment/pytorch2onnx.py configs/zeromamba_demo.py \
        work_dirs/demo/best.pth --out demo_attr.onnx --mode attributes \
        --dynamic-batch

    # a backbone config (mmpretrain ImageClassifier), 224 x 224
    python tools/deployment/pytorch2onnx.py \
        configs/vmamba/vmamba-tiny_8xb128_in1k.py vmamba_t.pth \
        --out vmamba_t.onnx --shape 224 224
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import (add_cfg_options_arg,  # noqa: E402
                     check_cfg_options, load_config)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a zeromamba_mm model to ONNX (verified with '
        'onnxruntime)')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument(
        '--out', required=True, help='the .onnx file (never overwritten)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size of the graph (static); default: the size the '
        "config's test pipeline produces")
    parser.add_argument(
        '--dynamic-batch',
        action='store_true',
        help='leave the batch dimension free (default: batch 1)')
    parser.add_argument(
        '--mode',
        choices=['scores', 'attributes'],
        default='scores',
        help="'scores': class scores of the checkpoint's classes at its "
        "operating point; 'attributes': the head's attribute prediction "
        'and the scores of classes given at run time')
    parser.add_argument(
        '--class-attributes',
        help='classes to store instead of the checkpoint\'s (.npy, .csv or '
        'att_splits.mat)')
    add_cfg_options_arg(parser, 'test_evaluator.gamma=0.5')
    args = parser.parse_args(argv)
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape needs positive H W, got {args.shape}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint,
                                                 'checkpoint')):
        if not osp.isfile(path):
            print(f'error: {what} file not found: {path}', file=sys.stderr)
            return 1
    if osp.exists(args.out):
        print(
            f'error: {args.out} exists; choose another --out path.',
            file=sys.stderr)
        return 1
    if args.cfg_options:
        check_cfg_options(load_config(args.config), args.cfg_options)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        print(
            f"error: {e}; install the deploy extra: pip install -e "
            "'.[deploy]' -c requirements/constraints.txt",
            file=sys.stderr)
        return 1
    from zeromamba_mm.deploy import ExportMismatchError, export_onnx
    from zeromamba_mm.structures import OperatingPoint
    from zeromamba_mm.models.utils import CheckpointMismatchError
    from zeromamba_mm.utils import CheckpointLoadError
    try:
        result = export_onnx(
            args.config,
            args.checkpoint,
            args.out,
            shape=args.shape,
            dynamic_batch=args.dynamic_batch,
            mode=args.mode,
            cfg_options=args.cfg_options,
            class_attributes=args.class_attributes)
    except (OSError, ValueError, KeyError, TypeError, ExportMismatchError,
            CheckpointLoadError, CheckpointMismatchError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = result['metadata']
    size = meta['input']
    lines = [
        f'wrote {result["out"]} ({meta["kind"]}, --mode {meta["mode"]}, '
        f'input {size["height"]}x{size["width"]}, batch '
        f'{"dynamic" if size["dynamic_batch"] else 1})',
        f'{len(meta["classes"])} classes; onnxruntime matches PyTorch to '
        f'{result["deviation"]:.2g} (relative)'
    ]
    point = meta.get('operating_point')
    if point is not None:
        lines.append(OperatingPoint.from_meta(point).describe())
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
