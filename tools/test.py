"""Evaluate a checkpoint with MMEngine's runner (MMPretrain-style arguments).

Example::

    python tools/test.py configs/zeromamba_cub.py \
        work_dirs/zeromamba_cub/best_gzsl_H_epoch_N.pth
    bash tools/dist_test.sh configs/zeromamba_cub.py CHECKPOINT 8
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import (add_launch_args, check_config_inputs,  # noqa: E402
                     fit_loaders_to_workers, merge_launcher_env,
                     parse_launch_args, register_all, set_work_dir)


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
    add_launch_args(
        parser, 'test_evaluator.gamma=0.3 test_evaluator.score_space=raw')
    return parse_launch_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    cfg.launcher = args.launcher
    set_work_dir(cfg, args)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {args.checkpoint!r} does not exist.')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = cfg.get('test_cfg') or {}
        cfg.test_cfg.fp16 = True
    if args.out is not None:
        if osp.exists(args.out):
            raise FileExistsError(
                f'{args.out} exists; choose another --out path.')
        evaluators = cfg.test_evaluator
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        cfg.test_evaluator = list(evaluators) + [
            dict(type='DumpResults', out_file_path=args.out)
        ]
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    fit_loaders_to_workers(cfg)
    return cfg


def restore_selected_gamma(runner: Runner, checkpoint: str) -> None:
    """Bring back the γ chosen on validation (``clean`` protocol).

    ``GZSLMetric(protocol='clean')`` publishes the γ that maximised H on the
    validation split in the message hub, which is saved in checkpoints but not
    restored by ``load_from``. A test metric with ``gamma='selected'`` reads
    it.
    """
    import torch

    # Our own training checkpoint (message hub, numpy scalars): see compat.
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    hub_state = ckpt.get('message_hub', {}) if isinstance(ckpt, dict) else {}
    for key, value in hub_state.get('runtime_info', {}).items():
        if key.startswith('zsl/'):
            runner.message_hub.update_info(key, value)


def zsl_summary(metrics: dict) -> str:
    """One line with the paper's figures, or '' for other metrics."""
    labels = dict(T1='ZSL T1', U='GZSL U', S='S', H='H', AUSUC='AUSUC')
    parts = []
    for short, label in labels.items():
        for key, value in metrics.items():
            if key.endswith('/' + short):
                parts.append(f'{label} {value:.2f}')
                break
    return 'Results: ' + ' | '.join(parts) if parts else ''


def main() -> None:
    args = parse_args()
    register_all()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    merge_launcher_env(cfg)
    check_config_inputs(cfg, phases=('test', ))
    runner = Runner.from_cfg(cfg)
    restore_selected_gamma(runner, args.checkpoint)
    metrics = runner.test()
    summary = zsl_summary(metrics)
    if summary and runner.rank == 0:
        print(summary, flush=True)


if __name__ == '__main__':
    main()
