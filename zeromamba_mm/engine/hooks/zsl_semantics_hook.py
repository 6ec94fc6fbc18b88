"""Hand the dataset's class semantics to a zero-shot model, phase by phase."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from zeromamba_mm.registry import HOOKS

_REQUIRED_KEYS = ('class_attributes', 'seen_classes', 'unseen_classes')


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
