"""Train a model with MMEngine's runner (MMPretrain-style arguments).

Example::

    python tools/train.py configs/zeromamba_cub.py
    bash tools/dist_train.sh configs/zeromamba_cub.py 8
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _threads import setup_threads  # noqa: E402
setup_threads()  # first, before torch loads (tools/_threads.py)
from _common import (add_launch_args, build_runner,  # noqa: E402
                     check_cfg_options, check_config_inputs, claim_work_dir,
                     fit_loaders_to_workers, keeps_mmengine_state,
                     load_config, merge_launcher_env, parse_launch_args,
                     register_all, require_amp_device, set_work_dir,
                     usage_error)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a zero-shot model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest checkpoint '
        'in the work dir if no path is given (with none there, a new run '
        'starts, with a warning). Without --resume, a work dir that already '
        'holds a run is refused')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size')
    parser.add_argument(
        '--no-pin-memory', action='store_true', help='disable pin_memory')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers')
    add_launch_args(
        parser, 'train_cfg.max_epochs=2 model.head.attr_loss.loss_weight=0.2')
    return parse_launch_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Fold the command-line options into the config."""
    cfg.launcher = args.launcher
    set_work_dir(cfg, args)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            usage_error(f'--amp needs OptimWrapper or AmpOptimWrapper, the '
                        f'config uses {optim_wrapper}.')
        require_amp_device('training')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            usage_error(
                f'--resume {args.resume}: no such checkpoint file. Give an '
                'existing checkpoint, or --resume alone to resume from the '
                "work dir's last_checkpoint.")
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    fit_loaders_to_workers(cfg, args.no_pin_memory,
                           args.no_persistent_workers)
    return cfg


def run() -> None:
    args = parse_args()
    register_all()
    cfg = load_config(args.config)
    # Everything that can be checked is checked before anything is written.
    cfg = merge_args(cfg, args)
    merge_launcher_env(cfg)
    check_config_inputs(cfg, phases=('train', 'val'))
    with claim_work_dir(cfg, args.resume):
        runner = build_runner(cfg)
        runner.train()


@keeps_mmengine_state
def main() -> None:
    from zeromamba_mm.checkpoint import CheckpointMismatchError
    from zeromamba_mm.datasets import ZSLDataError
    from zeromamba_mm.utils import CheckpointLoadError, DiskFullError
    try:
        run()
    except (CheckpointLoadError, CheckpointMismatchError, DiskFullError,
            ZSLDataError) as err:
        # A checkpoint that cannot be read or does not fit, a full disk, or
        # bad data (duplicates, NaN, a validation split that cannot yield
        # the best checkpoint's metric): the message names the file, keys,
        # folder or split; a traceback adds nothing.
        sys.stderr.write(f'error: {err}\n')
        raise SystemExit(1)


if __name__ == '__main__':
    main()
