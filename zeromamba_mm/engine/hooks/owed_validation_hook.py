"""After a resume, run the validation that a killed run did not finish."""
import json
import os.path as osp
from typing import Optional

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook

from zeromamba_mm.registry import HOOKS
from zeromamba_mm.utils.atomic_files import write_text_atomically

#: Where the hook records the state of the training run's last validation.
STATE_NAME = '.validation_state.json'


@HOOKS.register_module()
class OwedValidationHook(Hook):
    """Re-run, after ``--resume``, a validation that was interrupted.

    MMEngine saves an epoch's checkpoint *before* validating that epoch. A
    run killed during the validation resumes from that checkpoint at the
    next epoch: the validation (its logged metrics, the best checkpoint,
    a plateau scheduler's step) is lost, and after the last epoch the run
    ends without it.

    The hook writes ``<work_dir>/.validation_state.json`` (atomically) when
    a validation of the training run starts and when it ends. When a resumed
    run starts at an epoch whose validation started and did not end, the
    validation runs first, with the resumed weights and the same epoch, as
    in an uninterrupted run; then training continues.

    The hook runs after all others' ``before_train`` (lowest priority), so
    that the checkpoint hook has restored its best score before the owed
    validation is compared with it. :class:`~zeromamba_mm.engine.ZSLRunner`
    registers it when a config does not.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._in_training = False

    @staticmethod
    def state_path(runner) -> str:
        """The state file of ``runner``'s work dir."""
        return osp.join(runner.work_dir, STATE_NAME)

    def _read_state(self, runner) -> Optional[dict]:
        path = self.state_path(runner)
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
                self.state_path(runner),
                json.dumps(dict(epoch=runner.epoch, finished=finished)))

    def _owed(self, runner) -> bool:
        if runner.epoch == 0 or runner.val_loop is None:
            return False
        state = self._read_state(runner)
        return (state is not None and state['epoch'] == runner.epoch
                and not state['finished'])

    def before_train(self, runner) -> None:
        owed = [self._owed(runner) if is_main_process() else False]
        broadcast_object_list(owed)  # every rank takes part in validation
        self._in_training = True
        if owed[0]:
            runner.logger.info(
                f'The validation of epoch {runner.epoch} was interrupted '
                'before the resume: running it now.')
            runner.val_loop.run()

    def after_train(self, runner) -> None:
        self._in_training = False

    def before_val(self, runner) -> None:
        self._write_state(runner, finished=False)

    def after_val(self, runner) -> None:
        self._write_state(runner, finished=True)
