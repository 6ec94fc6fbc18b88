"""Helpers shared by tools/train.py and tools/test.py."""
import argparse
import contextlib
import errno
import functools
import glob
import os
import os.path as osp
import sys
from typing import Callable, Iterable, Iterator, List, NoReturn, Tuple

from mmengine.config import Config

# _cfg_options lies beside this file (also when it is imported by path).
if osp.dirname(osp.abspath(__file__)) not in sys.path:
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
# check_cfg_options is re-exported: the tools import helpers from here.
from _cfg_options import add_cfg_options_arg  # noqa: E402
from _cfg_options import check_cfg_options  # noqa: E402,F401


def usage_error(message: str, code: int = 2) -> NoReturn:
    """Stop with one message (``error: ...``) and no traceback.

    Args:
        message (str): What is wrong and what to do.
        code (int): Exit status; 2 for usage errors. Defaults to 2.
    """
    sys.stderr.write(f'error: {message}\n')
    raise SystemExit(code)


def load_config(path: str) -> Config:
    """:func:`zeromamba_mm.utils.read_config` that stops with its message
    (a missing file, a config inheriting the plugin's configs without
    ``pip install -e .``).

    Raises:
        SystemExit: (code 2) with the file and the fix named.
    """
    from zeromamba_mm.utils import ConfigFileError, read_config
    try:
        return read_config(path)
    except ConfigFileError as err:
        usage_error(str(err))


def add_launch_args(parser: argparse.ArgumentParser,
                    cfg_options_example: str) -> None:
    """Add ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    add_cfg_options_arg(parser, cfg_options_example)
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


def keeps_mmengine_state(main: Callable) -> Callable:
    """Decorate a tool's ``main``: MMEngine's process-wide current default
    scope, logger and message hub are as before when it returns or raises.

    A Runner makes its config's ``default_scope``, and its own logger and
    message hub, the process's current ones for good. Run in-process (tests,
    ``runpy``, a notebook), a tool would leave them to the caller: the
    caller's registry builds would look in the config's scope, and its
    ``print_log(logger='current')`` would write to the finished run's
    streams.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        from mmengine.logging import MessageHub, MMLogger
        from mmengine.registry import DefaultScope
        managers = (DefaultScope, MMLogger, MessageHub)
        saved = [manager._instance_dict.copy() for manager in managers]
        try:
            return main(*args, **kwargs)
        finally:
            # Rebound, not updated: MMEngine's overwrite_default_scope
            # rebinds DefaultScope's dict too.
            for manager, instances in zip(managers, saved):
                manager._instance_dict = instances

    return wrapper


def amp_device_available() -> bool:
    """Whether MMEngine's mixed precision (``AmpOptimWrapper``, a loop's
    ``fp16``) has a device to run on."""
    from mmengine import device
    return any(
        getattr(device, f'is_{name}_available', lambda: False)()
        for name in ('cuda', 'npu', 'mlu', 'musa'))


def require_amp_device(work: str) -> None:
    """Stop when ``--amp`` is given on a machine without an accelerator.

    Args:
        work (str): ``'training'`` or ``'testing'``, for the message.

    Raises:
        SystemExit: (code 2) before anything is written.
    """
    if not amp_device_available():
        usage_error(f'--amp (mixed precision {work}) needs a CUDA, NPU, MLU '
                    'or MUSA device, and this machine has none. '
                    f'{"Train" if work == "training" else "Test"} without '
                    '--amp.')


#: Where each launcher puts the global rank before MMEngine reads it.
_RANK_VARIABLES = dict(
    pytorch='RANK', slurm='SLURM_PROCID', mpi='OMPI_COMM_WORLD_RANK')


def is_rank_zero(launcher: str = 'pytorch') -> bool:
    """Whether this process is rank 0 (or not distributed).

    Args:
        launcher (str): ``--launcher``; the tools run before MMEngine sets
            ``RANK`` for Slurm and MPI jobs, so their own variables are
            read. Defaults to ``'pytorch'``.
    """
    variable = _RANK_VARIABLES.get(launcher, 'RANK')
    return os.environ.get(variable, os.environ.get('RANK', '0')) == '0'


def existing_run_files(work_dir: str) -> List[str]:
    """Files of an earlier run in ``work_dir``: its checkpoints and
    ``last_checkpoint``.

    The config dump alone is not a run: a run that stopped before its first
    checkpoint (a failed start, a kill in the first epoch) left nothing to
    continue, and its config stays in its log folder.
    """
    if not osp.isdir(work_dir):
        return []
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        found.append(osp.join(work_dir, 'last_checkpoint'))
    return found


def refuse_existing_run(cfg: Config, resume) -> None:
    """Never let a new run overwrite another one's files.

    A training run into a work dir that already holds a run (checkpoints,
    ``last_checkpoint``) is refused unless it resumes (``--resume``): the
    new run would overwrite ``epoch_*.pth`` and ``last_checkpoint``, and the
    checkpoint hook's clean-up would act on both runs' files. Call it while
    holding the work dir's lock (:func:`claim_work_dir`), so that no other
    start can pass the same check meanwhile.

    Raises:
        SystemExit: (code 2) with what to do instead.
    """
    launcher = cfg.get('launcher', 'none')
    if resume is not None or not is_rank_zero(launcher):
        return
    found = existing_run_files(cfg.work_dir)
    if found:
        listed = ', '.join(osp.basename(p) for p in found[:5])
        more = f' and {len(found) - 5} more' if len(found) > 5 else ''
        sys.stderr.write(
            f'Refusing to start: the work dir {cfg.work_dir} already holds a '
            f'run ({listed}{more}), which this run would overwrite. Continue '
            'it with --resume (latest checkpoint) or --resume CHECKPOINT, or '
            'start a new run with --work-dir NEW_DIR.\n')
        raise SystemExit(2)


def prepare_work_dir(work_dir: str) -> None:
    """Create the work dir, or stop naming it when it cannot be written.

    Raises:
        SystemExit: (code 2) the folder cannot be created or written.
    """
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        usage_error(f'the work dir {work_dir} is a file; give a folder with '
                    '--work-dir.')
    try:
        os.makedirs(work_dir, exist_ok=True)
        probe = osp.join(work_dir, f'.write-test-{os.getpid()}')
        with open(probe, 'w'):
            pass
        os.remove(probe)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS,
                             errno.ENOENT, errno.ENOTDIR):
            raise
        usage_error(f'cannot write to the work dir {work_dir} '
                    f'({err.strerror}). Choose a writable folder with '
                    '--work-dir.')


@contextlib.contextmanager
def claim_work_dir(cfg: Config, resume) -> Iterator[None]:
    """Hold the work dir for one training run.

    On rank 0: the work dir is created (or refused when not writable) and
    locked (:class:`~zeromamba_mm.utils.WorkDirLock`; the kernel drops the
    lock when the process ends, even after ``kill -9``); a second start is
    refused naming the other run's PID. Under the lock, a work dir that
    already holds a run is refused (:func:`refuse_existing_run`), and
    temporary files of a run killed during a save are removed. A start that
    fails before its first checkpoint leaves nothing that blocks the retry:
    logs and the config dump, which are not a run.

    Raises:
        SystemExit: (code 2) the work dir is in use, holds a run, or cannot
            be written.
    """
    if not is_rank_zero(cfg.get('launcher', 'none')):
        yield
        return
    from zeromamba_mm.utils import (WorkDirBusyError, WorkDirLock,
                                    remove_stale_temp_files)
    work_dir = cfg.work_dir
    prepare_work_dir(work_dir)
    try:
        lock = WorkDirLock(work_dir).acquire()
    except WorkDirBusyError as err:
        usage_error(f'refusing to start: {err}')
    try:
        refuse_existing_run(cfg, resume)
        # Half-written files of a run killed during a save (its checkpoints
        # are written as .<name>.tmp-<pid> and renamed when complete).
        for path in remove_stale_temp_files(work_dir):
            print(f'Removed {path}, left by a run killed during a save.')
        yield
    finally:
        lock.release()


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
    from zeromamba_mm.checkpoint import is_checkpoint_placeholder
    from zeromamba_mm.utils import load_word_vectors
    problems = []
    for where, path, rows, dim in _word_vector_settings(cfg.get('model', {})):
        if is_checkpoint_placeholder(path):
            continue  # tools/test.py: the checkpoint holds them
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
