"""Evaluate a checkpoint with MMEngine's runner (MMPretrain-style arguments).

Example::

    python tools/test.py configs/zeromamba_cub.py \
        work_dirs/zeromamba_cub/best_gzsl_H_epoch_N.pth
    bash tools/dist_test.sh configs/zeromamba_cub.py CHECKPOINT 8

GZSL is scored at the checkpoint's operating point (γ and score space that
training kept in its meta), else at the config's test metric's; the first
line says which, and ``--gamma`` / ``--score-space`` override it.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _threads import setup_threads  # noqa: E402
setup_threads()  # first, before torch loads (tools/_threads.py)
from _common import (add_launch_args, build_runner,  # noqa: E402
                     check_cfg_options, check_config_inputs,
                     fit_loaders_to_workers, is_rank_zero,
                     keeps_mmengine_state, load_config, merge_launcher_env,
                     parse_launch_args, prepare_work_dir, register_all,
                     require_amp_device, set_work_dir, usage_error)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a zero-shot model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the evaluation logs')
    parser.add_argument(
        '--out', help='dump per-sample predictions to this pickle file')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--partial-load',
        action='store_true',
        help='load only the checkpoint keys that match the model (by default '
        'a checkpoint of another architecture is refused, naming the first '
        'missing, unexpected and mis-shaped keys)')
    parser.add_argument(
        '--show-dir',
        help='save a readable picture per visualized test sample (image '
        'scaled up, true and predicted classes below it, unseen classes '
        'tagged) into this folder; enables default_hooks.visualization')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='visualize every N-th test sample (with --show-dir)')
    parser.add_argument(
        '--gamma',
        type=float,
        default=None,
        help="calibrated stacking γ (default: the checkpoint's operating "
        "point, else the config's test metric's)")
    parser.add_argument(
        '--score-space',
        choices=['softmax', 'raw'],
        default=None,
        help="score space of γ (default: the checkpoint's operating point)")
    parser.add_argument(
        '--curve',
        metavar='DIR',
        help='write the seen-unseen curve of the test as PNG and JSON into '
        'DIR (new names, never overwriting; tools/plot_seen_unseen_curve.py '
        'redraws the JSON)')
    add_launch_args(
        parser, 'test_evaluator.gamma=0.3 test_evaluator.score_space=raw')
    return parse_launch_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    cfg.launcher = args.launcher
    set_work_dir(cfg, args)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        usage_error(f'checkpoint {args.checkpoint} does not exist. A '
                    'training run writes its checkpoints into its work dir '
                    '(e.g. work_dirs/<config>/best_gzsl_H_epoch_N.pth or '
                    'epoch_N.pth).')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    # Evaluating another model's weights must fail loudly (ZSLRunner).
    cfg.strict_load = not args.partial_load
    if args.amp:
        require_amp_device('testing')
        cfg.test_cfg = cfg.get('test_cfg') or {}
        cfg.test_cfg.fp16 = True
    if args.out is not None:
        if osp.lexists(args.out):
            usage_error(f'--out {args.out} exists and is never overwritten; '
                        'choose another --out path.')
        evaluators = cfg.test_evaluator
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        cfg.test_evaluator = list(evaluators) + [
            dict(type='zeromamba_mm.ZSLDumpResults', out_file_path=args.out)
        ]
    if args.show_dir is not None:
        # As mmpretrain's tools/test.py: the visualization hook (in this
        # plugin's configs zeromamba_mm.ZSLVisualizationHook) paints the
        # test samples into show_dir.
        if 'visualization' not in cfg.get('default_hooks', {}):
            raise ValueError(
                '--show-dir needs default_hooks.visualization '
                "(dict(type='zeromamba_mm.ZSLVisualizationHook')) in the "
                'config.')
        cfg.default_hooks.visualization.enable = True
        cfg.default_hooks.visualization.out_dir = args.show_dir
        cfg.default_hooks.visualization.interval = args.interval
    if args.curve is not None:
        hooks = [
            h for h in cfg.get('custom_hooks', [])
            if str(h.get('type', '')).endswith('SeenUnseenCurveHook')
        ]
        if not hooks:
            cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
                dict(type='zeromamba_mm.SeenUnseenCurveHook')
            ]
            hooks = cfg.custom_hooks[-1:]
        for hook in hooks:
            hook['out_dir'] = args.curve
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    fit_loaders_to_workers(cfg)
    return cfg


def _option(cfg_options, name: str):
    """``test_evaluator[...].<name>`` given by --cfg-options, or None."""
    for key, value in (cfg_options or {}).items():
        if key.startswith('test_evaluator') and key.endswith('.' + name):
            return value
    return None


def apply_operating_point(cfg: Config, args: argparse.Namespace):
    """Score at the checkpoint's operating point (see the module doc).

    ``--gamma``/``--score-space`` (or the same keys of ``test_evaluator`` in
    --cfg-options) override it. Every GZSLMetric of ``test_evaluator`` gets
    the point as a fixed ``gamma`` with ``selected_on``.

    Returns:
        OperatingPoint: The point, for the header (None without a GZSLMetric
        in ``test_evaluator``: nothing to calibrate).
    """
    # Here, not at the top: the top must not load torch (tools/_threads.py).
    from zeromamba_mm.evaluation import (gzsl_metric_cfgs,
                                         resolve_operating_point)
    from zeromamba_mm.utils.safe_load import load_torch_file
    if not gzsl_metric_cfgs(cfg):
        return None
    meta = {}
    if '://' not in args.checkpoint:
        loaded = load_torch_file(args.checkpoint, map_location='cpu')
        if isinstance(loaded, dict) and isinstance(loaded.get('meta'), dict):
            meta = loaded['meta']
    gamma, by = args.gamma, '--gamma/--score-space'
    space = args.score_space
    option = _option(args.cfg_options, 'gamma')
    if gamma is None and isinstance(option, (int, float)):
        gamma, by = float(option), '--cfg-options'
    option = _option(args.cfg_options, 'score_space')
    if space is None and option is not None:
        space, by = option, '--cfg-options'
    try:
        point = resolve_operating_point(
            cfg,
            meta,
            source=args.checkpoint,
            gamma=gamma,
            score_space=space,
            overridden_by=by)
    except (ValueError, TypeError) as err:
        usage_error(str(err))
    for metric in gzsl_metric_cfgs(cfg):
        metric.update(
            gamma=point.gamma,
            score_space=point.score_space,
            selected_on=point.selected_on)
    return point


def describe_test_data(dataset) -> str:
    """One line saying which data are evaluated (type, root, files, split,
    size), so that a config that still points at other data is noticed."""
    parts = [type(dataset).__name__]
    for attr in ('data_root', 'ann_file', 'split', 'data_prefix'):
        value = getattr(dataset, attr, None)
        if value not in (None, '', {}):
            parts.append(f'{attr}={value}')
    parts.append(f'{len(dataset)} samples')
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if classes is not None:
        parts.append(f'{len(classes)} classes')
    return 'Testing on: ' + ', '.join(parts)


#: Summary label -> metric key suffixes (``zsl/top1``; older ``gzsl/T1``).
SUMMARY_KEYS = (('ZSL T1', ('zsl/top1', '/T1')), ('GZSL U', ('gzsl/U', )),
                ('S', ('gzsl/S', )), ('H', ('gzsl/H', )), ('AUSUC',
                                                           ('gzsl/AUSUC', )))


def zsl_summary(metrics: dict) -> str:
    """One line with the paper's figures, or '' for other metrics."""
    parts = []
    for label, suffixes in SUMMARY_KEYS:
        for key, value in metrics.items():
            if key.endswith(suffixes):
                parts.append(f'{label} {value:.2f}')
                break
    return 'Results: ' + ' | '.join(parts) if parts else ''


def run() -> None:
    args = parse_args()
    register_all()
    cfg = load_config(args.config)
    cfg = merge_args(cfg, args)
    # The checkpoint replaces every weight: the pretraining files of init_cfg
    # and the word vectors are neither read nor required.
    from zeromamba_mm.checkpoint import config_for_loading
    cfg.model = config_for_loading(cfg.model)
    merge_launcher_env(cfg)
    check_config_inputs(cfg, phases=('test', ))
    if is_rank_zero(cfg.launcher):
        prepare_work_dir(cfg.work_dir)
    point = apply_operating_point(cfg, args)
    runner = build_runner(cfg)
    if runner.rank == 0:
        if point is not None:
            print(point.describe(), flush=True)
        # Builds the test loop (mmengine's property); runner.test() reuses it.
        print(
            describe_test_data(runner.test_loop.dataloader.dataset),
            flush=True)
    metrics = runner.test()
    summary = zsl_summary(metrics)
    if summary and runner.rank == 0:
        print(summary, flush=True)


@keeps_mmengine_state
def main() -> None:
    from zeromamba_mm.datasets import ZSLDataError
    from zeromamba_mm.models.utils import CheckpointMismatchError
    from zeromamba_mm.utils import CheckpointLoadError
    try:
        run()
    except (CheckpointLoadError, CheckpointMismatchError, ZSLDataError) as err:
        # A checkpoint that cannot be read or does not fit, or bad data: the
        # message names the file and the keys; the traceback adds nothing.
        sys.stderr.write(f'error: {err}\n')
        raise SystemExit(1)


if __name__ == '__main__':
    main()
