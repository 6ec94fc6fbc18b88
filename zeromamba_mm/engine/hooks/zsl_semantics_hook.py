"""Hand the dataset's class semantics to a zero-shot model, phase by phase."""
from typing import Optional

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from zeromamba_mm.registry import HOOKS

_REQUIRED_KEYS = ('class_attributes', 'seen_classes', 'unseen_classes')
#: The class groups whose samples a GZSLMetric key needs (the others, e.g.
#: ``gzsl/gamma``, are always reported); see GZSLMetric.compute_metrics.
_METRIC_NEEDS = {
    'gzsl/H': ('seen', 'unseen'),
    'gzsl/AUSUC': ('seen', 'unseen'),
    'gzsl/H_best_gamma': ('seen', 'unseen'),
    'gzsl/best_gamma': ('seen', 'unseen'),
    'gzsl/U': ('unseen', ),
    'zsl/top1': ('unseen', ),
    'gzsl/S': ('seen', ),
}


@HOOKS.register_module()
class ZSLSemanticsHook(Hook):
    """Set the class-attribute matrix and seen/unseen ids before each phase.

    Zero-shot models score classes against a class-attribute matrix that
    belongs to the dataset, and train/val/test may describe different class
    splits (the ``clean`` protocol's validation split holds seen classes out
    as pseudo-unseen). Before every train, val and test epoch this hook reads
    ``class_attributes``, ``seen_classes``, ``unseen_classes`` and ``classes``
    from the running dataloader's dataset metainfo and calls the model's
    ``set_class_semantics`` — or, for a plain mmpretrain ``ImageClassifier``
    with an attribute head, the head's. The tensors stay out of the state
    dict.

    It also checks, once per phase, that the attribute dimension matches the
    model's head, like mmpretrain's ``ClassNumCheckHook`` does for classes.

    Before the first training iteration it checks that the validation split
    can produce the metric the best checkpoint is chosen on: a
    :class:`~zeromamba_mm.evaluation.GZSLMetric` reports ``gzsl/H`` only
    when the split holds images of seen *and* unseen classes (``gzsl/U`` and
    ``zsl/top1`` need unseen ones, ``gzsl/S`` seen ones), and a missing key
    would otherwise stop the run after its first training epoch.
    """

    priority = 'ABOVE_NORMAL'

    @staticmethod
    def _apply(runner, dataloader, phase: str) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        head = getattr(model, 'head', None)
        if not (hasattr(model, 'set_class_semantics')
                or hasattr(head, 'set_class_semantics')):
            raise TypeError(
                'ZSLSemanticsHook needs a zero-shot model or head with '
                f'set_class_semantics(); {type(model).__name__} and its head '
                f'{type(head).__name__} have none.')
        dataset = dataloader.dataset
        meta = dataset.metainfo
        missing = [key for key in _REQUIRED_KEYS if key not in meta]
        if missing:
            raise KeyError(
                f'The {phase} dataset {type(dataset).__name__} has no '
                f'{missing} in its metainfo; zero-shot datasets such as '
                'zeromamba_mm.ZSLDataset provide them.')
        if hasattr(model, 'set_class_semantics'):
            model.set_class_semantics(
                meta['class_attributes'],
                seen_classes=meta['seen_classes'],
                unseen_classes=meta['unseen_classes'],
                class_names=meta.get('classes'))
        else:
            head.set_class_semantics(
                meta['class_attributes'], seen_classes=meta['seen_classes'])

    def before_train(self, runner) -> None:
        """Refuse a ``save_best`` key the validation split cannot produce."""
        val_loop = getattr(runner, '_val_loop', None)
        if not isinstance(val_loop, BaseLoop):
            return
        from zeromamba_mm.evaluation import GZSLMetric
        metrics = [
            m for m in val_loop.evaluator.metrics if isinstance(m, GZSLMetric)
        ]
        wanted = [
            key for hook in runner.hooks
            for key in (getattr(hook, 'save_best', None) or ())
            if isinstance(key, str) and key != 'auto'
        ]
        dataset = val_loop.dataloader.dataset
        meta = dataset.metainfo
        if not (metrics and wanted and hasattr(dataset, 'get_data_info')
                and 'seen_classes' in meta and 'unseen_classes' in meta):
            return
        labels = np.asarray([
            int(dataset.get_data_info(i)['gt_label'])
            for i in range(len(dataset))
        ])
        counts = dict(
            seen=int(np.isin(labels, meta['seen_classes']).sum()),
            unseen=int(np.isin(labels, meta['unseen_classes']).sum()))
        for metric in metrics:
            names = {metric.key(name): name for name in _METRIC_NEEDS}
            for key in wanted:
                needs = _METRIC_NEEDS.get(names.get(key), ())
                if all(counts[group] for group in needs):
                    continue
                yielded = [
                    k for k, name in names.items()
                    if all(counts[group] for group in _METRIC_NEEDS[name])
                ]
                raise ValueError(
                    self._unproducible_message(key, needs, counts, yielded,
                                               dataset))

    @staticmethod
    def _unproducible_message(key: str, needs: tuple, counts: dict,
                              yielded: list, dataset) -> str:
        where = ', '.join(f'{attr}={getattr(dataset, attr)!r}'
                          for attr in ('split', 'ann_file')
                          if getattr(dataset, attr, None))
        return (
            f'The best checkpoint is chosen on {key!r} (save_best of the '
            'checkpoint hook), but GZSLMetric reports it only for a '
            f'validation split with images of {" and ".join(needs)} '
            f'classes, and the val_dataloader dataset '
            f'({type(dataset).__name__}: {where}) holds {counts["seen"]} '
            f'seen-class and {counts["unseen"]} unseen-class images. '
            "Validate on a split with both (split='test' under the paper "
            "protocol, 'clean_val' under the clean one), or set "
            'default_hooks.checkpoint.save_best to a key this split yields '
            f"({', '.join(yielded) or 'none'}) or 'auto'. Stopped before "
            'training.')

    def before_train_epoch(self, runner) -> None:
        self._apply(runner, runner.train_dataloader, 'train')

    def before_val_epoch(self, runner) -> None:
        self._apply(runner, runner.val_dataloader, 'val')

    def before_test_epoch(self, runner) -> None:
        self._apply(runner, runner.test_dataloader, 'test')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        # Validation happens inside the train loop: restore the training
        # semantics so that an iteration-based loop keeps the right classes.
        # ``_train_loop`` stays a config dict until a training run builds it;
        # only then is there a training phase to go back to.
        train_loop = getattr(runner, '_train_loop', None)
        if isinstance(train_loop, BaseLoop):
            self._apply(runner, train_loop.dataloader, 'train')
