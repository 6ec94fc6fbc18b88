"""Plot a seen-unseen accuracy curve saved by `tools/test.py --curve DIR`.

Example::

    python tools/plot_seen_unseen_curve.py \
        curves/test_gzsl_seen_unseen_curve.json \
        --out suc.png --gamma 0.3

Without ``--gamma`` the operating point of the test (stored in the JSON) is
marked. AUSUC is given in the legend.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot a seen-unseen accuracy curve (calibrated stacking)')
    parser.add_argument(
        'curve_json', help="curve JSON written by tools/test.py --curve")
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument(
        '--gamma',
        type=float,
        default=None,
        help='mark the operating point of this γ (in the score space of the '
        'curve); default: the γ the metric used')
    parser.add_argument('--title', default=None, help='figure title')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if osp.exists(args.out):
        print(
            f'error: {args.out} exists; choose another --out path.',
            file=sys.stderr)
        return 1
    from zeromamba_mm.visualization import CurvePoints, plot_seen_unseen_curve
    try:
        points = CurvePoints.from_json(args.curve_json)
        plot_seen_unseen_curve(
            points, args.out, gamma=args.gamma, title=args.title)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    line = f'AUSUC {points.ausuc:.2f}'
    if args.gamma is not None:
        u, s = points.at_gamma(args.gamma)
        line += f'; γ={args.gamma:g}: U {u:.2f}, S {s:.2f}'
    print(f'{line}; plot written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
