"""Write the synthetic zero-shot demo dataset (xlsa17 layout).

Example::

    python tools/make_demo_data.py --out data/zsl_demo --seed 0

See ``zeromamba_mm/datasets/demo_data.py`` for what is written.
"""
import argparse
import json
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small synthetic zero-shot dataset in the xlsa17 '
        'layout (att_splits.mat, res101.mat, images/).')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--num-classes', type=int, default=24)
    parser.add_argument('--num-unseen', type=int, default=6)
    parser.add_argument('--images-per-class', type=int, default=40)
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument(
        '--force',
        action='store_true',
        help='write into a non-empty folder (replaces the demo files)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from zeromamba_mm.datasets.demo_data import make_demo_data
    try:
        summary = make_demo_data(
            args.out,
            seed=args.seed,
            num_classes=args.num_classes,
            num_unseen=args.num_unseen,
            images_per_class=args.images_per_class,
            image_size=args.image_size,
            force=args.force)
    except (FileExistsError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
