"""The runner of zeromamba_mm configs: safe and strict checkpoint reading,
atomic checkpoint writing, CPU distributed runs.

Selected by ``runner_type='zeromamba_mm.ZSLRunner'`` (set in
``configs/_base_/default_runtime.py``) and built by ``tools/train.py`` /
``tools/test.py`` with ``RUNNERS.build(cfg)``, as mmpretrain's tools do.
Importing :mod:`zeromamba_mm` changes nothing of MMEngine: every difference
from :class:`mmengine.runner.Runner` lives in this subclass.
"""
import datetime
import itertools
import os
import os.path as osp
import re
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as torch_dist
from mmengine.device import get_device
from mmengine.dist import broadcast_object_list, is_distributed, master_only
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint_to_model,
                                        find_latest_checkpoint)

from zeromamba_mm.checkpoint import (read_checkpoint, strict_load_state_dict,
                                     unwrap_state_dict)
from zeromamba_mm.registry import RUNNERS
from zeromamba_mm.utils.atomic_files import (remove_stale_temp_files,
                                             write_atomically)
from zeromamba_mm.utils.safe_load import CheckpointLoadError
from .hooks import OwedValidationHook

#: Default ``revise_keys`` of MMEngine: strip the DDP prefix.
_REVISE_KEYS = [(r'^module.', '')]

#: Numbers the runners of this process (see ``ZSLRunner._unique_timestamp``).
_RUNNER_COUNT = itertools.count(1)

#: The fix named when ``load_from`` does not fit (strict_load=True).
_LOAD_HINT = ('Is this a checkpoint of this config? To load only the '
              'matching keys, pass --partial-load (tools/test.py) or set '
              'strict_load=False.')
#: The fix named when ``--resume`` does not fit (always strict).
_RESUME_HINT = ('--resume continues a run of this same config (architecture '
                'and sizes); its optimizer state only fits those weights. '
                'Resume with the config the checkpoint was trained with, or '
                'start a new run from these weights: drop --resume and pass '
                '--cfg-options load_from=FILE strict_load=False.')


def _revised_state_dict(checkpoint: Any, source: str,
                        revise_keys: List[Tuple[str, str]]) -> dict:
    if not isinstance(checkpoint, Mapping):
        raise CheckpointLoadError(
            f'Checkpoint {source} holds a {type(checkpoint).__name__}, '
            'expected a dict (a state dict or a runner checkpoint).')
    revised = {}
    for key, value in unwrap_state_dict(checkpoint, source).items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    return revised


def _require_training_state(checkpoint: Any, source: str) -> None:
    """Refuse to resume from weights alone (no epoch, no optimizer)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and 'epoch' in meta and 'iter' in meta:
        return
    raise CheckpointLoadError(
        f'Cannot resume from {source}: it holds model weights only (no '
        "'meta' with the epoch and iteration, as a checkpoint of "
        'tools/train.py has), so there is no training state to continue. '
        'Resume from a checkpoint of the interrupted run '
        '(work_dirs/<config>/epoch_N.pth), or start a new run from these '
        f'weights with --cfg-options load_from={source}.')


@RUNNERS.register_module()
class ZSLRunner(Runner):
    """MMEngine's runner with the checkpoint handling a careful user needs.

    Differences from :class:`mmengine.runner.Runner`:

    * Every checkpoint it reads (``load_from``, ``resume``) goes through
      :mod:`zeromamba_mm.utils.safe_load`: ``torch.load(weights_only=True)``
      plus the named globals of MMEngine's own checkpoints (numpy arrays and
      scalars, the message hub's ``HistoryBuffer``). This also makes resuming
      work under torch >= 2.6, whose ``weights_only=True`` default refuses
      those globals, without ever unpickling a file fully.
    * ``strict_load=True`` in the config (``tools/test.py`` sets it unless
      ``--partial-load`` is given) loads ``load_from`` strictly: a missing,
      unexpected or mis-shaped key raises
      :class:`~zeromamba_mm.checkpoint.CheckpointMismatchError` naming the
      file and the first keys of each kind.
    * ``resume`` is always strict: a checkpoint of another architecture or
      with other sizes stops before the first iteration with that error
      (instead of resuming with random weights, or failing inside the
      optimizer).
    * ``resume=True`` without ``load_from`` and without a checkpoint in the
      work dir says so and starts a new run (the usual way to launch a
      preemptible job), instead of "resumed from ... None".
    * Checkpoints are written to a temporary file beside their final name
      and renamed (``os.replace``) once complete, so a crash while saving
      never leaves a truncated file under a checkpoint's name; temporary
      files of killed runs are cleaned up at the next save.
    * A resumed run first re-runs a validation that the interrupted run
      started and did not finish
      (:class:`~zeromamba_mm.engine.hooks.OwedValidationHook`, registered
      when the config does not list it).
    * Every run gets its own timestamp (``YYYYmmdd_HHMMSS_<pid>-<n>``), and
      so its own logger, message hub, visualizer and log folder, also when
      two runs start in the same second.
    * Distributed runs (``launcher='pytorch'``) on machines without CUDA use
      a gloo process group and DDP without ``device_ids``.
    """

    # --------------------------------------------------------- loading ---
    def load_or_resume(self) -> None:
        """Load ``load_from``, or resume (auto or from a given file)."""
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            resume_from = find_latest_checkpoint(self.work_dir)
            if resume_from is None:
                self.logger.warning(
                    f'resume=True (--resume without a path), but the work '
                    f'dir {self.work_dir} has no last_checkpoint: nothing to '
                    'resume, starting a new run from the beginning.')
                return None
            self.logger.info(
                f'Resuming from the latest checkpoint {resume_from}.')
            self._resume_training_checkpoint(resume_from)
        elif self._resume:
            self._resume_training_checkpoint(self._load_from)
        elif self._load_from is not None:
            self.load_checkpoint(
                self._load_from, strict=bool(self.cfg.get('strict_load')))
        else:
            return None
        self._has_loaded = True

    def _resume_training_checkpoint(self, filename: str) -> None:
        """``self.resume(filename)``, refusing a file that holds no training
        state (see :meth:`load_checkpoint`)."""
        self._resuming = True
        try:
            self.resume(filename)
        finally:
            self._resuming = False

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: Optional[List[Tuple[str, str]]] = None):
        """Load a checkpoint into the model, reading the file safely.

        Args:
            filename (str): Local path or file backend URI.
            map_location (str | callable): Passed to ``torch.load``.
                Defaults to ``'cpu'``.
            strict (bool): Refuse any missing, unexpected or mis-shaped key
                (error naming the file and keys). Defaults to False
                (MMEngine's behaviour: load what matches, log the rest).
            revise_keys (list[tuple[str, str]], optional): ``(pattern,
                replacement)`` applied to every key. Defaults to stripping
                the DDP prefix ``module.``.

        Returns:
            dict: The checkpoint.
        """
        revise_keys = _REVISE_KEYS if revise_keys is None else revise_keys
        checkpoint = read_checkpoint(filename, map_location)
        resuming = getattr(self, '_resuming', False)
        if resuming:
            _require_training_state(checkpoint, filename)
            # The optimizer state that follows fits only these exact
            # weights: a partial load would train random weights (another
            # architecture) or die inside the optimizer (changed sizes).
            strict = True
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        if strict:
            strict_load_state_dict(
                model,
                _revised_state_dict(checkpoint, filename, revise_keys),
                source=filename,
                hint=_RESUME_HINT if resuming else _LOAD_HINT)
        else:
            _revised_state_dict(checkpoint, filename, [])  # type check
            checkpoint = _load_checkpoint_to_model(
                model, checkpoint, False, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}'
                         f'{" (strict)" if strict else ""}')
        return checkpoint

    # ---------------------------------------------------------- saving ---
    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        """Save like MMEngine, but atomically for local directories.

        The checkpoint is written with
        :func:`~zeromamba_mm.utils.write_atomically` (``.<filename>.tmp-<pid>``
        beside it, flushed, renamed): a crash at any moment leaves either the
        complete new file or the previous state, never a truncated
        checkpoint, and a full disk stops with the folder named and no
        partial file. Temporary files of runs killed during a save are
        removed first. Remote backends (``out_dir`` with ``://``) are
        written as MMEngine does.
        """
        if '://' in str(out_dir):
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        for path in remove_stale_temp_files(out_dir):
            self.logger.info(f'Removed {path}, left by a run killed during '
                             'a save.')

        def write(tmp_path: str) -> None:
            super(ZSLRunner, self).save_checkpoint(out_dir,
                                                   osp.basename(tmp_path),
                                                   *args, **kwargs)

        write_atomically(osp.join(out_dir, filename), write)

    # ------------------------------------------------- run identity ---
    def _unique_timestamp(self) -> None:
        """Append ``_<pid>-<n>`` (rank 0's) to MMEngine's timestamp.

        MMEngine names the logger, message hub and visualizer instances
        after the config name and the timestamp to the second, and the log
        folder after the timestamp: two runs started in the same second (in
        one process, or two processes into one work dir) would share them,
        and the second would write to the first's closed log stream. The
        process id and a per-process counter make each run's name its own;
        all ranks use rank 0's, so they still share one log folder.
        """
        suffix = [f'{os.getpid()}-{next(_RUNNER_COUNT)}']
        broadcast_object_list(suffix)
        self._timestamp = f'{self._timestamp}_{suffix[0]}'

    def register_hooks(self,
                       default_hooks: Optional[dict] = None,
                       custom_hooks: Optional[List] = None) -> None:
        """Register like MMEngine, plus an ``OwedValidationHook`` unless the
        config has one (a resumed run must not lose a validation)."""
        super().register_hooks(default_hooks, custom_hooks)
        if not any(
                isinstance(hook, OwedValidationHook) for hook in self._hooks):
            self.register_hook(OwedValidationHook())

    # ------------------------------------------------- CPU distributed ---
    def setup_env(self, env_cfg: dict) -> None:
        """Set up like MMEngine; without CUDA, start a gloo group first.

        MMEngine's ``init_dist`` selects a CUDA device, which fails on a
        CPU-only machine; a group started here is found by ``setup_env``
        (``is_distributed()``), which then skips its own initialisation.
        """
        if self.distributed and self.launcher == 'pytorch' and \
                not torch.cuda.is_available() and not is_distributed():
            dist_cfg = dict(env_cfg.get('dist_cfg', {}))
            dist_cfg.pop('backend', None)
            timeout = dist_cfg.pop('timeout', None)
            if timeout is not None:
                dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
            torch_dist.init_process_group(
                backend='gloo',
                rank=int(os.environ['RANK']),
                world_size=int(os.environ['WORLD_SIZE']),
                **dist_cfg)
        super().setup_env(env_cfg)
        self._unique_timestamp()

    def _log_env(self, env_cfg: dict) -> None:
        """Log the environment as MMEngine does, with the device and the
        distributed backend this runner really uses.

        MMEngine prints the configured ``dist_cfg`` (``nccl`` in the
        configs) and counts every process as a GPU, also on a CPU machine
        where :meth:`setup_env` uses gloo and no GPU. Here ``dist_cfg``
        shows the backend in force (that of the process group, else the one
        a distributed run would use), ``device`` and ``world size`` are
        added, and ``GPU number`` is 0 unless the device is CUDA.
        """
        env_cfg = dict(env_cfg)
        configured = dict(env_cfg.get('dist_cfg') or {})
        if is_distributed():
            backend = torch_dist.get_backend()
        elif torch.cuda.is_available():
            backend = configured.get('backend', 'nccl')
        else:
            backend = 'gloo'
        env_cfg['dist_cfg'] = dict(configured, backend=backend)
        env_cfg['device'] = get_device()
        env_cfg['world size'] = self._world_size
        world_size = self._world_size
        if env_cfg['device'] != 'cuda':
            # MMEngine's banner prints the world size as "GPU number".
            self._world_size = 0
        try:
            super()._log_env(env_cfg)
        finally:
            self._world_size = world_size

    def wrap_model(self, model_wrapper_cfg: Optional[dict],
                   model: torch.nn.Module):
        """Wrap like MMEngine; without CUDA, DDP gets no ``device_ids``."""
        if self.distributed and not torch.cuda.is_available():
            model_wrapper_cfg = dict(model_wrapper_cfg or {})
            model_wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
            model_wrapper_cfg.setdefault(
                'find_unused_parameters',
                self.cfg.get('find_unused_parameters', False))
            model_wrapper_cfg.setdefault('broadcast_buffers', False)
            model_wrapper_cfg['device_ids'] = None
        return super().wrap_model(model_wrapper_cfg, model)
