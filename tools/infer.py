"""Classify images with a trained zero-shot model.

The classes are given by their attribute vectors, so any class can be
scored, including classes never seen in training. Examples::

    # all classes of an xlsa17 dataset (seen classes read from res101.mat)
    python tools/infer.py configs/zeromamba_demo.py \
        work_dirs/demo/epoch_10.pth demo.jpg \
        --class-attributes data/zsl_demo/att_splits.mat

    # a folder of images, your own classes (CSV "class,attr_1,...,attr_A"),
    # pictures with the attention maps of SLP
    python tools/infer.py CONFIG CKPT photos/ --class-attributes my.csv \
        --topk 3 --out results.json --show-dir vis/
"""
import argparse
import math
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _threads import setup_threads  # noqa: E402
setup_threads()  # first, before torch loads (tools/_threads.py)


def finite_float(text: str) -> float:
    """An argparse type: a float that is neither NaN nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number')
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a finite number (NaN and inf are refused)')
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (e.g. ``--batch-size``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'must be a whole number >= 1, got {text!r}')
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'must be a whole number >= 1, got {value}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Zero-shot classification of images by class attributes')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument(
        'images',
        nargs='+',
        help='image files or directories (their images, sorted by name)')
    parser.add_argument(
        '--class-attributes',
        help='classes to score: .npy (C, A), .csv with header '
        '"class,attr_1,...", or xlsa17 att_splits.mat (default: the training '
        "classes stored in the checkpoint's meta)")
    parser.add_argument(
        '--class-names', help='text file with one class name per line')
    parser.add_argument(
        '--seen-classes',
        help='text file with the names of the classes seen in training '
        '(needed for --gamma and --label-space with .npy/.csv attributes)')
    parser.add_argument(
        '--topk', type=positive_int, default=5, help='classes per image')
    parser.add_argument(
        '--score-space',
        choices=['raw', 'softmax'],
        default=None,
        help="score space of calibrated stacking (default: the checkpoint's "
        "operating point, else the config's test metric's)")
    parser.add_argument(
        '--gamma',
        type=finite_float,
        default=None,
        help='calibrated stacking: subtract GAMMA from seen-class scores '
        "(default: the checkpoint's operating point, else the config's test "
        "metric's; the header says which)")
    parser.add_argument(
        '--label-space',
        choices=['all', 'seen', 'unseen'],
        default='all',
        help='rank all classes (GZSL) or only unseen (ZSL) / seen ones')
    parser.add_argument(
        '--no-normalize',
        action='store_true',
        help='do not L2-normalise the class attribute rows')
    parser.add_argument(
        '--device', default=None, help='e.g. cpu, cuda:0 (default: auto)')
    parser.add_argument(
        '--batch-size',
        type=positive_int,
        default=1,
        help='images per forward pass (>= 1)')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'onnxruntime'],
        default='pytorch',
        help='onnxruntime: CHECKPOINT is an .onnx file written by '
        'tools/deployment/pytorch2onnx.py (CONFIG is not read)')
    parser.add_argument(
        '--out', help='write the results as JSON (never overwrites)')
    parser.add_argument(
        '--show-dir',
        help='save a picture per image (top classes; attention maps for '
        'heads with SLP) into this folder')
    return parser.parse_args(argv)


def expand_images(items):
    """Files stay; a directory becomes its image files, sorted by name."""
    from zeromamba_mm.apis.images import list_images
    images = []
    for item in items:
        images.extend(list_images(item) if osp.isdir(item) else [item])
    return images


def format_table(image: str, result: dict) -> str:
    """A readable ranking of one image."""
    width = max([len('class')] + [len(c) for c in result['topk_classes']])
    lines = [f'{image}', f'  {"rank":>4}  {"class":<{width}}  {"score":>10}']
    for rank, (name, score) in enumerate(
            zip(result['topk_classes'], result['topk_scores']), start=1):
        lines.append(f'  {rank:>4}  {name:<{width}}  {score:>10.4f}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.out is not None and osp.exists(args.out):
        print(
            f'error: {args.out} exists; choose another --out path.',
            file=sys.stderr)
        return 1
    # Here, not at the top: the top must not load torch (tools/_threads.py).
    from zeromamba_mm.apis import ZSLInferencer
    from zeromamba_mm.models.utils import CheckpointMismatchError
    from zeromamba_mm.utils.atomic_files import write_json_new
    overrides = dict(gamma=args.gamma, score_space=args.score_space)
    try:
        images = expand_images(args.images)
        classes = dict(
            class_attributes=args.class_attributes,
            class_names=args.class_names,
            seen_classes=(None if args.seen_classes is None else _read_lines(
                args.seen_classes)),
            normalize_attributes=not args.no_normalize)
        if args.backend == 'onnxruntime':
            from zeromamba_mm.deploy import ONNXZSLInferencer
            inferencer = ONNXZSLInferencer(args.checkpoint, **classes)
            inferencer.set_operating_point(
                by='--gamma/--score-space', **overrides)
        else:
            inferencer = ZSLInferencer(
                args.config,
                pretrained=args.checkpoint,
                device=args.device,
                operating_point_overrides_by='--gamma/--score-space',
                **overrides,
                **classes)
        point = inferencer.operating_point
        print(point.describe(), flush=True)
        if point.gamma and inferencer.seen_classes is None:
            print('note: γ is not applied: which of these classes were seen '
                  'in training is unknown (give --seen-classes).')
        results = inferencer(
            images,
            topk=args.topk,
            batch_size=args.batch_size,
            label_space=args.label_space,
            show_dir=args.show_dir)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError,
            ImportError, CheckpointMismatchError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1

    notes = [f'score: {point.score_space}']
    if point.gamma:
        notes.append(f'gamma={point.gamma:g} on seen classes')
    if args.label_space != 'all':
        notes.append(f'{args.label_space} classes only')
    # A new line first: mmpretrain's progress bar ends without one when the
    # output is not a terminal.
    print(f'\n{len(inferencer.classes)} classes ({", ".join(notes)})\n')
    print('\n\n'.join(
        format_table(image, result) for image, result in zip(images, results)))
    if args.show_dir is not None:
        print(f'\npictures written to {args.show_dir}')

    if args.out is not None:
        records = [
            dict(
                image=image,
                **{
                    k: v
                    for k, v in result.items() if k != 'pred_scores'
                },
                pred_scores=result['pred_scores'].tolist())
            for image, result in zip(images, results)
        ]
        payload = dict(
            config=args.config,
            checkpoint=args.checkpoint,
            classes=list(inferencer.classes),
            score_space=point.score_space,
            gamma=point.gamma,
            operating_point=point.to_meta(),
            label_space=args.label_space,
            results=records)
        try:
            write_json_new(args.out, payload)
        except FileExistsError:
            print(
                f'error: {args.out} was created meanwhile; nothing written.',
                file=sys.stderr)
            return 1
        print(f'\nresults written to {args.out}')
    return 0


def _read_lines(path: str):
    if not osp.isfile(path):
        raise FileNotFoundError(f'Seen-class file not found: {path}')
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


if __name__ == '__main__':
    sys.exit(main())
