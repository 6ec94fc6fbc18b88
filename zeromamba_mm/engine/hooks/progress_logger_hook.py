"""MMEngine's LoggerHook, with progress lines during validation and test."""
import math
from typing import Optional, Sequence

from mmengine.hooks import LoggerHook

from zeromamba_mm.registry import HOOKS


@HOOKS.register_module()
class ProgressLoggerHook(LoggerHook):
    """MMEngine's ``LoggerHook`` that also shows how far an evaluation is.

    ``LoggerHook`` logs an evaluation batch every ``interval`` batches, the
    training interval; an evaluation with fewer batches (the demo's 6, a
    small own-data split of 20 batches of 64 images under ``interval=50``)
    prints nothing until its metrics, which may take minutes. Here an
    evaluation of ``N`` batches logs ``Epoch(val) [e][i/N]`` (or
    ``Epoch(test) [i/N]``) every ``min(interval, ceil(N / eval_lines))``
    batches: about ``eval_lines`` progress lines per run, never fewer than
    ``LoggerHook`` would print. Training is logged exactly as by
    ``LoggerHook``.

    Args:
        eval_lines (int): Progress lines per validation or test run.
            Defaults to 5.
        **kwargs: Arguments of :class:`mmengine.hooks.LoggerHook`
            (``interval``, ``out_dir``, ...).
    """

    def __init__(self, eval_lines: int = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(eval_lines, int) or eval_lines < 1:
            raise ValueError(f'ProgressLoggerHook: eval_lines must be a '
                             f'positive int, got {eval_lines!r}.')
        self.eval_lines = eval_lines

    def eval_interval(self, num_batches: int) -> int:
        """Batches between two progress lines of an evaluation.

        Args:
            num_batches (int): Batches of the evaluation.

        Returns:
            int: ``min(interval, ceil(num_batches / eval_lines))``, at
            least 1.
        """
        return max(
            1, min(self.interval, math.ceil(num_batches / self.eval_lines)))

    def _log_progress(self, runner, batch_idx: int, mode: str,
                      dataloader) -> None:
        if self.every_n_inner_iters(batch_idx,
                                    self.eval_interval(len(dataloader))):
            _, log_str = runner.log_processor.get_log_after_iter(
                runner, batch_idx, mode)
            runner.logger.info(log_str)

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        """Log the progress of a validation run (see the class doc)."""
        self._log_progress(runner, batch_idx, 'val', runner.val_dataloader)

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        """Log the progress of a test run (see the class doc)."""
        self._log_progress(runner, batch_idx, 'test', runner.test_dataloader)
