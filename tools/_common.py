"""Helpers shared by tools/train.py and tools/test.py."""
import argparse
import os
import os.path as osp
import sys
from typing import Iterable, Iterator, Tuple

from mmengine.config import Config, DictAction


def add_launch_args(parser: argparse.ArgumentParser,
                    cfg_options_example: str) -> None:
    """Add ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help=f'override config settings, e.g. "{cfg_options_example}"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launch_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line; older launchers pass the rank only as an
    argument, while MMEngine reads ``LOCAL_RANK`` from the environment."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    """``--work-dir``, else the config's, else work_dirs/<config name>."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def register_all() -> None:
    """Register mmpretrain's and this plugin's modules."""
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    import zeromamba_mm  # noqa: F401  (registers and applies compat fixes)


def merge_launcher_env(cfg: Config) -> None:
    """Use gloo for distributed runs when there is no CUDA device."""
    import torch
    if cfg.launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {})
        cfg.env_cfg.setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg['backend'] = 'gloo'


def fit_loaders_to_workers(cfg: Config,
                           no_pin_memory: bool = False,
                           no_persistent_workers: bool = False) -> None:
    """Make the loaders' options agree with their workers.

    Called after ``--cfg-options`` are merged, so that a ``num_workers=0``
    given there is seen too: PyTorch's DataLoader refuses
    ``persistent_workers=True`` without workers.
    """
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is None:
            continue
        if no_pin_memory:
            cfg[loader]['pin_memory'] = False
        workers = cfg[loader].get('num_workers', 0)
        if no_persistent_workers or workers == 0:
            cfg[loader]['persistent_workers'] = False


def _pretrained_paths(node, where: str = 'model') -> Iterator[Tuple[str, str]]:
    """Yield (config key, checkpoint path) of every Pretrained init_cfg."""
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and isinstance(
                node.get('checkpoint'), str):
            yield where, node['checkpoint']
        for key, value in node.items():
            yield from _pretrained_paths(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_paths(value, f'{where}[{i}]')


def _dataset_cfgs(cfg: Config, phases: Iterable[str]):
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if not loader:
            continue
        stack = [loader.get('dataset')]
        while stack:
            dataset = stack.pop()
            if isinstance(dataset, dict):
                if 'dataset' in dataset:  # wrappers like RepeatDataset
                    stack.append(dataset['dataset'])
                if 'datasets' in dataset:
                    stack.extend(dataset['datasets'])
                yield phase, dataset


def check_config_inputs(cfg: Config, phases: Iterable[str]) -> None:
    """Stop with a readable message when data or weights are missing.

    A missing dataset root or pretrained checkpoint would otherwise surface as
    a traceback deep inside the runner. URLs are left to mmengine.
    """
    problems = []
    for phase, dataset in _dataset_cfgs(cfg, phases):
        root = dataset.get('data_root')
        if root and not osp.isdir(root):
            problems.append(
                f'{phase} dataset ({dataset.get("type")}): data_root '
                f'{root!r} does not exist. See docs/data_preparation.md, or '
                f'override it: --cfg-options {phase}_dataloader.dataset.'
                'data_root=PATH')
    for where, path in _pretrained_paths(cfg.get('model', {})):
        if '://' not in path and not osp.isfile(path):
            problems.append(
                f'{where}: pretrained checkpoint {path!r} does not exist. '
                'Convert the official release file with '
                'tools/model_converters (see README, "Pretrained weights"), '
                'or override the path with '
                f'--cfg-options {where}.checkpoint=PATH')
    if problems:
        sys.stderr.write('Cannot start: the config points to missing inputs:\n'
                         + ''.join(f'  - {p}\n' for p in problems))
        raise SystemExit(2)
