"""After a resume, run the validation that the checkpoint's state lacks."""
import json
import os.path as osp
from typing import Optional

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from zeromamba_mm.registry import HOOKS
from zeromamba_mm.utils.atomic_files import write_text_atomically

#: Where the hook records the state of the training run's last validation.
STATE_NAME = '.validation_state.json'
#: Checkpoint meta key: True when the checkpoint was saved during the
#: validation of its epoch (a best checkpoint), so that its state holds that
#: validation's outcome; False for the checkpoint saved at the end of the
#: epoch's training, before its validation.
VALIDATED_KEY = 'zsl_after_validation'


@HOOKS.register_module()
class OwedValidationHook(Hook):
    """Run, after ``--resume``, the validation the resumed state lacks.

    MMEngine saves an epoch's checkpoint *before* validating that epoch, so
    its state (the checkpoint hook's best score, a plateau scheduler, the
    logged metrics) lacks that validation. A run resumed from it starts at
    the next epoch; without this hook the validation is lost: a run killed
    during it never gets its metrics or best checkpoint, and even when the
    interrupted run had finished it, the resumed run compares the next
    epochs with an older best score and may keep the wrong best checkpoint.

    The rule, for a resumed epoch-based run at epoch N whose schedule
    validates after epoch N:

    * the checkpoint's meta says it holds that validation
      (``zsl_after_validation``, written by this hook: true for a best
      checkpoint saved during the validation): nothing is owed;
    * otherwise, when training continues after epoch N, the validation of
      epoch N runs first, with the resumed weights, as in an uninterrupted
      run (also when the interrupted run had finished it: its outcome is
      not in the checkpoint);
    * otherwise (the checkpoint is the last epoch's) it runs unless the
      record ``.validation_state.json`` next to the checkpoint (its run's
      work dir; written atomically when a validation starts and ends) says
      it finished. A checkpoint in a folder without a readable record
      (``--resume PATH`` of a copied file, a remote file) gets the
      validation: never wrong, it costs one validation.

    Checkpoints without the meta key (older ones, MMEngine's Runner) count
    as saved before their epoch's validation. Iteration-based runs are left
    alone.

    The hook runs after all others' ``before_train`` (lowest priority), so
    that the checkpoint hook has restored its best score before the owed
    validation is compared with it. :class:`~zeromamba_mm.engine.ZSLRunner`
    registers it when a config does not.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._in_training = False
        self._validating = False
        self._resumed_meta: Optional[dict] = None

    @staticmethod
    def state_path(work_dir: str) -> str:
        """The validation record of the run in ``work_dir``."""
        return osp.join(work_dir, STATE_NAME)

    # ------------------------------------------------------ the record ---
    @staticmethod
    def _read_state(runner, work_dir: str) -> Optional[dict]:
        path = OwedValidationHook.state_path(work_dir)
        if not osp.isfile(path):
            return None
        try:
            with open(path, encoding='utf-8') as f:
                state = json.load(f)
            return dict(
                epoch=int(state['epoch']), finished=bool(state['finished']))
        except (OSError, ValueError, KeyError, TypeError) as err:
            runner.logger.warning(
                f'Ignoring {path} ({type(err).__name__}: {err}): cannot tell '
                'whether the last validation finished.')
            return None

    def _write_state(self, runner, finished: bool) -> None:
        if self._in_training and is_main_process():
            write_text_atomically(
                self.state_path(runner.work_dir),
                json.dumps(dict(epoch=runner.epoch, finished=finished)))

    # ---------------------------------------------------- the decision ---
    @staticmethod
    def _resumed_dir(runner) -> Optional[str]:
        """The folder of the resumed checkpoint, if local."""
        source = getattr(runner, '_load_from', None)
        if source is None:  # auto-resume: the work dir's latest checkpoint
            return runner.work_dir
        source = str(source)
        return None if '://' in source else osp.dirname(osp.abspath(source))

    @staticmethod
    def _validates_after(loop, epoch: int) -> bool:
        """Whether ``loop``'s schedule validates after training ``epoch``
        (MMEngine's EpochBasedTrainLoop rule)."""
        return epoch >= loop.val_begin and (epoch % loop.val_interval == 0
                                            or epoch == loop.max_epochs)

    def _owed(self, runner) -> Optional[str]:
        """Why the validation of ``runner.epoch`` must run now, or None."""
        epoch, loop = runner.epoch, runner.train_loop
        if (epoch == 0 or self._resumed_meta is None
                or runner.val_loop is None
                or not isinstance(loop, EpochBasedTrainLoop)
                or not self._validates_after(loop, epoch)
                or self._resumed_meta.get(VALIDATED_KEY, False)):
            return None
        if epoch < loop.max_epochs:
            return ('the checkpoint was saved before it, and the epochs that '
                    'follow compare with its result')
        folder = self._resumed_dir(runner)
        state = None if folder is None else self._read_state(runner, folder)
        if state is None:
            return ('no readable record next to the checkpoint says whether '
                    'it finished')
        if state['epoch'] > epoch or (state['epoch'] == epoch
                                      and state['finished']):
            return None
        return 'it was interrupted before the resume'

    # ------------------------------------------------------------ hooks ---
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self._resumed_meta = meta if isinstance(meta, dict) else {}

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[VALIDATED_KEY] = self._validating

    def before_train(self, runner) -> None:
        reason = [self._owed(runner) if is_main_process() else None]
        broadcast_object_list(reason)  # every rank takes part in validation
        self._in_training = True
        if reason[0] is not None:
            runner.logger.info(
                f'Running the validation of epoch {runner.epoch} before '
                f'training on: {reason[0]}.')
            runner.val_loop.run()

    def after_train(self, runner) -> None:
        self._in_training = False

    def before_val(self, runner) -> None:
        self._validating = self._in_training
        self._write_state(runner, finished=False)

    def after_val(self, runner) -> None:
        self._validating = False
        self._write_state(runner, finished=True)
