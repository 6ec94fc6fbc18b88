"""Helpers shared by tools/train.py and tools/test.py."""
import argparse
import difflib
import glob
import os
import os.path as osp
import sys
from typing import Iterable, Iterator, List, Tuple

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
    """Register this plugin's and mmpretrain's modules."""
    # The plugin first: its import filters mmcv-lite's import-time warning,
    # which must happen before mmpretrain imports mmcv.cnn.
    import zeromamba_mm  # noqa: F401  (registers the plugin's modules)
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)


def build_runner(cfg: Config):
    """The config's ``runner_type`` (``zeromamba_mm.ZSLRunner`` in this
    plugin's configs) when set, else MMEngine's ``Runner``: as mmpretrain's
    tools do."""
    if 'runner_type' not in cfg:
        from mmengine.runner import Runner
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


#: Top-level keys MMEngine's runner reads although a config may not set
#: them; ``--cfg-options`` may add these.
RUNNER_KEYS = ('model', 'work_dir', 'train_dataloader', 'val_dataloader',
               'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg',
               'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
               'val_evaluator', 'test_evaluator', 'default_hooks',
               'custom_hooks', 'data_preprocessor', 'load_from', 'resume',
               'launcher', 'env_cfg', 'log_processor', 'log_level',
               'visualizer', 'default_scope', 'randomness',
               'experiment_name', 'runner_type', 'find_unused_parameters',
               'model_wrapper_cfg', 'compile', 'strict_load',
               'custom_imports', 'vis_backends')


def check_cfg_options(cfg: Config, cfg_options) -> None:
    """Refuse ``--cfg-options`` whose top-level key the config lacks.

    ``merge_from_dict`` would silently add ``trian_cfg`` next to
    ``train_cfg``, and the run would ignore it. Keys below the top level
    are left to the config (a new key inside a dict can be intended).

    Raises:
        SystemExit: (code 2) naming the unknown keys and close matches.
    """
    if not cfg_options:
        return
    known = set(cfg.keys()) | set(RUNNER_KEYS)
    problems = []
    for option in cfg_options:
        top = option.split('.')[0]
        if top in known:
            continue
        close = difflib.get_close_matches(top, sorted(known), n=3)
        hint = (f' Did you mean {" or ".join(repr(c) for c in close)}?'
                if close else '')
        problems.append(f'--cfg-options {option}: the config has no '
                        f'top-level key {top!r}.{hint}')
    if problems:
        sys.stderr.write('\n'.join(problems) + '\n')
        raise SystemExit(2)


def _is_rank_zero() -> bool:
    return os.environ.get('RANK', '0') == '0'


def existing_run_files(work_dir: str, config: str) -> List[str]:
    """Files of an earlier run in ``work_dir``: checkpoints,
    ``last_checkpoint`` and the config dump."""
    if not osp.isdir(work_dir):
        return []
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    for name in ('last_checkpoint', osp.basename(config)):
        if osp.isfile(osp.join(work_dir, name)):
            found.append(osp.join(work_dir, name))
    return found


def refuse_existing_run(cfg: Config, config: str, resume) -> None:
    """Never let a new run overwrite another one's files.

    A training run into a work dir that already holds a run (checkpoints,
    ``last_checkpoint``, the config dump) is refused unless it resumes
    (``--resume``): the new run would overwrite ``epoch_*.pth``,
    ``last_checkpoint`` and the config, and the checkpoint hook's clean-up
    would act on both runs' files.

    Raises:
        SystemExit: (code 2) with what to do instead.
    """
    if resume is not None or not _is_rank_zero():
        return
    found = existing_run_files(cfg.work_dir, config)
    if found:
        listed = ', '.join(osp.basename(p) for p in found[:5])
        more = f' and {len(found) - 5} more' if len(found) > 5 else ''
        sys.stderr.write(
            f'Refusing to start: the work dir {cfg.work_dir} already holds a '
            f'run ({listed}{more}), which this run would overwrite. Continue '
            'it with --resume (latest checkpoint) or --resume CHECKPOINT, or '
            'start a new run with --work-dir NEW_DIR.\n')
        raise SystemExit(2)


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


def _word_vector_settings(node, where: str = 'model'):
    """Yield (config key, path, num_attributes, w2v_dim) of every
    ``word_vectors=PATH`` in a model config."""
    if isinstance(node, dict):
        path = node.get('word_vectors')
        if isinstance(path, str):
            yield (f'{where}.word_vectors', path, node.get('num_attributes'),
                   node.get('w2v_dim', 300))
        for key, value in node.items():
            yield from _word_vector_settings(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _word_vector_settings(value, f'{where}[{i}]')


def _word_vector_problems(cfg: Config) -> List[str]:
    """Check word-vector files against the head's attribute count."""
    from zeromamba_mm.utils import load_word_vectors
    problems = []
    for where, path, rows, dim in _word_vector_settings(cfg.get('model', {})):
        try:
            load_word_vectors(path, num_attributes=rows, dim=dim)
        except (OSError, RuntimeError, ValueError) as err:
            problems.append(f'{where}: {err}')
    return problems


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
    problems += _word_vector_problems(cfg)
    if problems:
        sys.stderr.write('Cannot start: the config points to missing or '
                         'mismatched inputs:\n' +
                         ''.join(f'  - {p}\n' for p in problems))
        raise SystemExit(2)
