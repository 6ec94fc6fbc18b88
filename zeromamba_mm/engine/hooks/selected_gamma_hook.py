"""Carry the γ selected on validation with the checkpoint to the test."""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from zeromamba_mm.registry import HOOKS

#: Key of ``checkpoint['meta']`` holding the selection.
META_KEY = 'zsl_selected_gamma'


def _gzsl_metrics(loop) -> List:
    """The :class:`~zeromamba_mm.evaluation.GZSLMetric` s of a loop."""
    from zeromamba_mm.evaluation import GZSLMetric
    evaluator = getattr(loop, 'evaluator', None)
    return [
        m for m in getattr(evaluator, 'metrics', [])
        if isinstance(m, GZSLMetric)
    ]


@HOOKS.register_module()
class SelectedGammaHook(Hook):
    """Select γ on the clean validation split and test with it.

    Under ``protocol='clean'`` the validation metric
    (``GZSLMetric(protocol='clean')``, ``gamma='sweep'``) reports the best-H
    γ of each validation as ``gzsl/gamma``. This hook keeps the γ of the
    validation with the highest ``gzsl/H`` (``>``, as ``CheckpointHook``'s
    ``rule='greater'``), writes it to
    ``checkpoint['meta']['zsl_selected_gamma']`` of every checkpoint saved
    afterwards (so ``best_gzsl_H_epoch_N.pth`` holds
    the γ of epoch N), reads it back when a checkpoint is loaded, and hands it
    to every test metric with ``gamma='selected'`` before testing.

    With the paper protocol (no clean validation metric, no ``'selected'``
    test metric) the hook does nothing, so it can sit in every config.

    Args:
        best_key (str): The validation metric whose maximum selects γ.
            Defaults to ``'gzsl/H'``.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) saves the best

    def __init__(self, best_key: str = 'gzsl/H') -> None:
        self.best_key = best_key
        #: ``gamma``, ``score_space``, ``val_H``, ``epoch`` of the selection.
        self.selected: Optional[dict] = None

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        clean = [
            m for m in _gzsl_metrics(runner.val_loop) if m.protocol == 'clean'
        ]
        if not clean or not metrics:
            return
        metric = clean[0]
        gamma_key, best_key = metric.key('gzsl/gamma'), metric.key(
            self.best_key)
        if best_key not in metrics or gamma_key not in metrics:
            return
        score = float(metrics[best_key])
        if self.selected is not None and not score > self.selected['val_H']:
            return
        self.selected = dict(
            gamma=float(metrics[gamma_key]),
            score_space=metric.score_space,
            val_H=score,
            epoch=int(runner.epoch))
        print_log(
            f'SelectedGammaHook: γ={self.selected["gamma"]:.6g} selected '
            f'({best_key}={score:.2f} on validation, epoch '
            f'{runner.epoch}).',
            logger='current')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.selected is not None:
            checkpoint.setdefault('meta', {})[META_KEY] = dict(self.selected)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        selected = (checkpoint.get('meta') or {}).get(META_KEY)
        if isinstance(selected, dict) and 'gamma' in selected:
            self.selected = dict(selected)
            ckpt_epoch = (checkpoint.get('meta') or {}).get('epoch')
            if ckpt_epoch is not None and selected.get('epoch') is not None \
                    and int(ckpt_epoch) != int(selected['epoch']):
                print_log(
                    f'SelectedGammaHook: the checkpoint is from epoch '
                    f'{ckpt_epoch} but its γ={selected["gamma"]:.6g} was '
                    f'selected at epoch {selected["epoch"]} (the best '
                    'validation so far); test the best checkpoint for the '
                    'clean protocol.',
                    logger='current',
                    level='WARNING')

    def before_test(self, runner) -> None:
        wanted = [
            m for m in _gzsl_metrics(runner.test_loop) if m.gamma == 'selected'
        ]
        if not wanted:
            return
        if self.selected is None:
            raise RuntimeError(
                "A test metric has gamma='selected' but no γ was selected: "
                'the loaded checkpoint has no meta '
                f"'{META_KEY}' (train with a protocol='clean' validation "
                'metric and this hook) and no validation ran in this '
                'process. Pass gamma=<float> to the test metric instead.')
        epoch = self.selected.get('epoch')
        source = ('selected on the validation split' +
                  (f' at epoch {epoch}' if epoch is not None else ''))
        for metric in wanted:
            metric.set_selected_gamma(
                self.selected['gamma'],
                self.selected['score_space'],
                source=source)
