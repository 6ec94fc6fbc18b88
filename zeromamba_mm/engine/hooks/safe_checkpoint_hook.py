"""MMEngine's ``CheckpointHook`` that never removes a good checkpoint first."""
import contextlib
import os.path as osp
from typing import Iterator, List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from zeromamba_mm.registry import HOOKS
from zeromamba_mm.utils.atomic_files import write_text_atomically
from zeromamba_mm.utils.quiet_log import DropMessages

#: MMEngine's notices about the FileClient that ``CheckpointHook`` and
#: ``save_checkpoint`` build (unused) when ``file_client_args`` is None.
_FILE_CLIENT_NOTICES = ('"FileClient" will be deprecated',
                        '"HardDiskBackend" is the alias')


class _DeferredRemovals:
    """A file-backend proxy that records removals instead of doing them."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.paths: List[str] = []

    def remove(self, path) -> None:
        self.paths.append(str(path))

    def rmtree(self, path) -> None:
        self.paths.append(str(path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saving order survives a crash at any moment.

    MMEngine's hook removes the previous best checkpoint, and (when
    ``max_keep_ckpts`` is reached) the oldest kept one, *before* writing the
    new file, and writes ``last_checkpoint`` in place. A crash in between
    loses the best model, or leaves ``last_checkpoint`` pointing at a file
    that is gone. This hook (same arguments as
    :class:`mmengine.hooks.CheckpointHook`) writes first and removes after:

    1. the new checkpoint is written (atomically with
       :class:`~zeromamba_mm.engine.ZSLRunner`: temporary file + rename);
    2. ``last_checkpoint`` is replaced atomically;
    3. only then are the outdated checkpoint and the previous best removed.

    So at every moment the file named by ``last_checkpoint`` and a best
    checkpoint exist and are complete.
    """

    @contextlib.contextmanager
    def _removals_deferred(self) -> Iterator[_DeferredRemovals]:
        backend = self.file_backend
        proxy = _DeferredRemovals(backend)
        self.file_backend = proxy
        try:
            yield proxy
        finally:
            self.file_backend = backend

    def _remove_now(self, paths: List[str], keep: List[str]) -> None:
        if not is_main_process():
            return
        keep_real = {osp.realpath(p) for p in keep if p}
        for path in paths:
            if osp.realpath(path) in keep_real:
                continue
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed checkpoints
                self.file_backend.rmtree(path)

    def before_train(self, runner) -> None:
        """As ``CheckpointHook``; without ``file_client_args`` (the default),
        MMEngine's deprecation notices of the ``FileClient`` it builds but
        does not use are kept off the log during training: there is
        nothing for the user to change."""
        self._quiet = None
        if self.file_client_args is None:
            self._quiet = DropMessages(_FILE_CLIENT_NOTICES)
            runner.logger.addFilter(self._quiet)
        super().before_train(runner)

    def after_train(self, runner) -> None:
        """As ``CheckpointHook``, then let the notices through again."""
        super().after_train(runner)
        if getattr(self, '_quiet', None) is not None:
            runner.logger.removeFilter(self._quiet)
            self._quiet = None

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # Same bookkeeping as MMEngine (keep_ckpt_ids, last_ckpt in the
        # message hub), in a crash-safe order: save, point last_checkpoint
        # at the new file, then remove the outdated one.
        outdated: List[str] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(
                    self.file_backend.join_path(
                        self.out_dir,
                        self.filename_tmpl.format(
                            self.keep_ckpt_ids.popleft())))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_text_atomically(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        self._remove_now(outdated, keep=[self.last_ckpt])

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_deferred() as removals:
            super()._save_best_checkpoint(runner, metrics)
        keep = [getattr(self, 'best_ckpt_path', None)] + list(
            getattr(self, 'best_ckpt_path_dict', {}).values())
        self._remove_now(removals.paths, keep=keep + [self.last_ckpt])
