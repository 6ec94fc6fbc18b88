"""Draw SLP's per-attribute attention maps of a zero-shot model on an image.

Example::

    python tools/visualize_attention.py configs/zeromamba_demo.py \
        work_dirs/demo/epoch_10.pth demo.jpg \
        --class-attributes data/zsl_demo/att_splits.mat \
        --attribute-names data/zsl_demo/attributes.txt --out attention.png

The model's head must expose ``attention_maps(feats)`` (ZeroMamba's head
does). Panels show the ``--topk`` attributes with the highest predicted score
``Â`` for the image (``--select class``: the attributes of the predicted
class), titled ``attribute: Â``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _threads import setup_threads  # noqa: E402
setup_threads()  # first, before torch loads (tools/_threads.py)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Overlay per-attribute attention maps on an image')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        '--class-attributes',
        help='classes to score: .npy, .csv or att_splits.mat (default: the '
        "training classes stored in the checkpoint's meta)")
    parser.add_argument(
        '--class-names', help='text file with one class name per line')
    parser.add_argument(
        '--attribute-names',
        help='text file with one attribute name per line (default: the CSV '
        'header or the checkpoint meta, else attr_i)')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--topk', type=int, default=6)
    parser.add_argument(
        '--select',
        choices=['image', 'class'],
        default='image',
        help="rank attributes by the image's predicted scores or by the "
        "predicted class's attribute vector")
    parser.add_argument(
        '--score-space',
        choices=['raw', 'softmax'],
        default=None,
        help="score space of the predicted class (default: the checkpoint's "
        "operating point, else the config's test metric's)")
    parser.add_argument(
        '--gamma',
        type=float,
        default=None,
        help='calibrated stacking γ of the predicted class (default: the '
        "checkpoint's operating point)")
    parser.add_argument(
        '--device', default=None, help='e.g. cpu, cuda:0 (default: auto)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if osp.exists(args.out):
        print(
            f'error: {args.out} exists; choose another --out path.',
            file=sys.stderr)
        return 1
    from zeromamba_mm.apis import ZSLInferencer
    from zeromamba_mm.models.utils import CheckpointMismatchError
    from zeromamba_mm.visualization import visualize_attribute_attention
    try:
        inferencer = ZSLInferencer(
            args.config,
            pretrained=args.checkpoint,
            class_attributes=args.class_attributes,
            class_names=args.class_names,
            attribute_names=args.attribute_names,
            device=args.device,
            gamma=args.gamma,
            score_space=args.score_space)
        print(inferencer.operating_point.describe(), flush=True)
        result = visualize_attribute_attention(
            inferencer,
            args.image,
            args.out,
            topk=args.topk,
            select=args.select)
    except (OSError, ValueError, KeyError, TypeError,
            CheckpointMismatchError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{args.image}: predicted {result.pred_class!r}; attention maps '
          f'written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
