"""Keep the operating point with every checkpoint (and take it back)."""
from dataclasses import replace
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from zeromamba_mm.evaluation.metrics.gzsl_metric import POINT_KEY
from zeromamba_mm.evaluation.operating_point import config_operating_point
from zeromamba_mm.registry import HOOKS
from zeromamba_mm.structures.operating_point import META_KEY, OperatingPoint

__all__ = ['OperatingPointHook', 'SelectedGammaHook', 'META_KEY']


def take_points(runner, metrics: Optional[Dict],
                phase: str) -> Dict[str, OperatingPoint]:
    """Take the published operating points out of ``metrics``.

    They are no scalars: RuntimeInfoHook (priority VERY_HIGH) has kept them
    in the message hub, where the logger would print them.

    Returns:
        dict: metric prefix (``''`` without one) -> point.
    """
    points = {}
    for key in [k for k in (metrics or {}) if k.endswith(POINT_KEY)]:
        points[key[:-len(POINT_KEY)]] = OperatingPoint.from_meta(
            metrics.pop(key), source=f'{phase} metric {key}')
        runner.message_hub.runtime_info.pop(f'{phase}/{key}', None)
    return points


@HOOKS.register_module()
class OperatingPointHook(Hook):
    """Record the operating point in every checkpoint; hand it to the test.

    The metric publishes the operating point in force under
    ``gzsl/operating_point`` of its results; this hook takes it out of the
    metrics (the log shows numbers only) and writes the point that
    ``tools/test.py`` will use into ``checkpoint['meta']['zsl_operating_
    point']`` (:meth:`OperatingPoint.to_meta`) of every checkpoint:

    - the config's test metric has a fixed γ (``protocol='paper'``, or a
      clean config tested at a fixed γ): that γ and score space, ``selected_
      on`` naming the config;
    - the test metric has ``gamma='selected'`` (``protocol='clean'``): the γ
      the validation metric swept (``gamma='sweep'``) at the validation with
      the highest ``gzsl/H`` so far (``>``, as ``CheckpointHook``'s
      ``rule='greater'``), so ``best_gzsl_H_epoch_N.pth`` holds the γ of
      epoch N, ``selected_on`` naming the epoch and H.

    When a checkpoint is loaded the hook reads its point back (also the
    legacy ``zsl_selected_gamma``) and before testing hands it to every test
    metric with ``gamma='selected'`` (``set_operating_point``), for runs that
    do not go through ``tools/test.py`` (which passes it itself).

    Registered also as ``SelectedGammaHook``, its former name.

    Args:
        best_key (str): The validation metric whose maximum selects γ.
            Defaults to ``'gzsl/H'``.
    """

    priority = 'NORMAL'  # before LoggerHook and CheckpointHook (VERY_LOW)

    def __init__(self, best_key: str = 'gzsl/H') -> None:
        self.best_key = best_key
        #: The point selected on validation and its ``gzsl/H``.
        self.selected: Optional[OperatingPoint] = None
        self.selected_score: Optional[float] = None
        #: The point read from a loaded checkpoint.
        self.loaded: Optional[OperatingPoint] = None
        self._configured: Optional[OperatingPoint] = None

    def before_run(self, runner) -> None:
        """Read the fixed operating point of the config's test metric."""
        cfg = getattr(runner, 'cfg', None)
        _, point = config_operating_point(cfg)
        if point is not None:
            self._configured = replace(
                point,
                selected_on="the training config's test_evaluator "
                '(fixed γ)')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        """Keep the γ swept at the best validation so far."""
        for prefix, point in take_points(runner, metrics, 'val').items():
            best_key = prefix + self.best_key
            if point.protocol != 'clean' or best_key not in metrics:
                continue
            score = float(metrics[best_key])
            if self.selected is not None and not score > self.selected_score:
                continue
            epoch = int(runner.epoch)
            self.selected = OperatingPoint(
                point.gamma, point.score_space, 'clean',
                f'validation split, epoch {epoch}, {self.best_key} '
                f'{score:.2f} ({point.selected_on})')
            self.selected_score = score
            print_log(
                f'OperatingPointHook: γ={point.gamma:.6g} selected '
                f'({best_key}={score:.2f} on validation, epoch {epoch}).',
                logger='current')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        """Take the points out of the test metrics (the log has the γ)."""
        take_points(runner, metrics, 'test')

    def recorded_point(self) -> Optional[OperatingPoint]:
        """The point written into checkpoints now (see the class doc)."""
        return self._configured if self._configured is not None \
            else self.selected

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write the operating point into ``checkpoint['meta']``."""
        point = self.recorded_point()
        if point is not None:
            checkpoint.setdefault('meta', {})[META_KEY] = point.to_meta()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Read the operating point of a loaded checkpoint."""
        meta = checkpoint.get('meta') or {}
        self.loaded = OperatingPoint.from_checkpoint_meta(meta)

    def before_test(self, runner) -> None:
        """Hand the loaded point to the test metrics that want it."""
        wanted = [
            m for m in getattr(runner.test_loop.evaluator, 'metrics', [])
            if getattr(m, 'gamma', None) == 'selected'
        ]
        if not wanted:
            return
        point = self.loaded or self.selected
        if point is None:
            raise RuntimeError(
                "A test metric has gamma='selected' but no γ was selected: "
                f"the loaded checkpoint has no meta '{META_KEY}' (train with "
                "a protocol='clean' validation metric and this hook) and no "
                'validation ran in this process. Pass gamma=<float> to the '
                'test metric (tools/test.py --gamma) instead.')
        for metric in wanted:
            metric.set_operating_point(point)


# Configs written before the rename keep working.
HOOKS.register_module(name='SelectedGammaHook', module=OperatingPointHook)
SelectedGammaHook = OperatingPointHook
