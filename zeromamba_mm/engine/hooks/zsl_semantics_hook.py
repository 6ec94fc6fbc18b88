"""Hand the dataset's class semantics to a zero-shot model, phase by phase,
and record in each checkpoint the classes it will be tested on."""
import copy
from typing import Optional, Tuple

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop

from zeromamba_mm.evaluation import GZSLMetric
from zeromamba_mm.models.utils.semantics_adapter import \
    set_model_class_semantics
from zeromamba_mm.registry import DATASETS, HOOKS
from zeromamba_mm.structures.class_semantics import (CHECKPOINT_META_KEY,
                                                     ClassSemantics,
                                                     ZSLDataError)

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
    """Set the class semantics before each phase; record them in checkpoints.

    Zero-shot models score classes against a class-attribute matrix that
    belongs to the dataset, and train/val/test may describe different class
    splits (the ``clean`` protocol's validation split holds seen classes out
    as pseudo-unseen). Before every train, val and test epoch this hook reads
    the :class:`~zeromamba_mm.structures.ClassSemantics` of the running
    dataloader's dataset (``metainfo['class_semantics']``) and hands it to
    the model with :func:`~zeromamba_mm.models.utils.semantics_adapter.
    set_model_class_semantics`. The tensors stay out of the state dict.

    Every checkpoint records, in ``meta['zsl_class_semantics']``, the class
    semantics it will be tested on: those of the test dataset (the classes
    and seen/unseen split ``tools/test.py`` scores), else of the validation
    dataset, else of the training dataset. The inferencer restores them as
    they are (the matrix in the form the model was trained with).

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

    def __init__(self) -> None:
        self._scored: Optional[Tuple[ClassSemantics, str]] = None

    @staticmethod
    def dataset_semantics(dataset, phase: str) -> ClassSemantics:
        """The :class:`ClassSemantics` of a dataset's metainfo.

        ``class_semantics`` where the dataset has it (zeromamba_mm's
        datasets); else made from ``class_attributes``, ``seen_classes``,
        ``unseen_classes`` and ``classes``, as other datasets may give them.
        """
        meta = dataset.metainfo
        semantics = meta.get('class_semantics')
        if isinstance(semantics, ClassSemantics):
            return semantics
        where = f'the {phase} dataset {type(dataset).__name__}'
        if isinstance(semantics, dict):
            return ClassSemantics.from_meta(semantics, source=where)
        missing = [key for key in _REQUIRED_KEYS if key not in meta]
        if missing:
            raise KeyError(
                f'The {phase} dataset {type(dataset).__name__} has no '
                f'{missing} (nor class_semantics) in its metainfo; zero-shot '
                'datasets such as zeromamba_mm.ZSLDataset provide them.')
        return ClassSemantics(
            attributes=meta['class_attributes'],
            class_names=meta.get('classes'),
            seen_classes=meta['seen_classes'],
            unseen_classes=meta['unseen_classes'],
            attribute_names=meta.get('attribute_names'),
            source=where)

    def _apply(self, runner, dataloader, phase: str) -> None:
        set_model_class_semantics(
            runner.model, self.dataset_semantics(dataloader.dataset, phase))

    def before_train(self, runner) -> None:
        """Refuse a ``save_best`` key the validation split cannot produce."""
        self._scored = self._scored_semantics(runner)
        val_loop = getattr(runner, '_val_loop', None)
        if not isinstance(val_loop, BaseLoop):
            return
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
                raise ZSLDataError(
                    self._unproducible_message(key, needs, counts, yielded,
                                               dataset))

    @staticmethod
    def _unproducible_message(key: str, needs: tuple, counts: dict,
                              yielded: list, dataset) -> str:
        where = ', '.join(f'{attr}={getattr(dataset, attr)!r}'
                          for attr in ('split', 'ann_file')
                          if getattr(dataset, attr, None))
        # A subset (BaseDataset's ``indices``) may leave out a group.
        subset = getattr(dataset, '_indices', None)
        if subset is not None:
            where += f', indices={subset!r}'
            widen = ('Give val_dataloader.dataset.indices that keep images '
                     'of both, or validate ')
        else:
            widen = 'Validate '
        return (
            f'The best checkpoint is chosen on {key!r} (save_best of the '
            'checkpoint hook), but GZSLMetric reports it only for a '
            f'validation split with images of {" and ".join(needs)} '
            f'classes, and the val_dataloader dataset '
            f'({type(dataset).__name__}: {where}) holds {counts["seen"]} '
            f'seen-class and {counts["unseen"]} unseen-class images. '
            f"{widen}on a split with both (split='test' under the paper "
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

    # ------------------------------------------------------- checkpoints
    def _scored_semantics(self, runner) -> Tuple[ClassSemantics, str]:
        """The semantics a checkpoint is tested on, and where they are from.

        The test dataset's (built with ``lazy_init=True`` when the test
        dataloader is still a config: only its annotation files are read),
        else the validation dataset's, else the training dataset's.
        """
        candidates = [(phase, self._loader_of(runner, phase))
                      for phase in ('test', 'val', 'train')]
        problems = []
        for phase, loader in candidates:
            try:
                dataset = self._dataset_of(loader)
                if dataset is None:
                    continue
                semantics = self.dataset_semantics(dataset, phase)
            except Exception as error:  # reported below, then next phase
                problems.append(f'{phase}: {type(error).__name__}: {error}')
                continue
            where = f'the {phase} dataset ({type(dataset).__name__}' + (
                f", split={dataset.split!r})"
                if hasattr(dataset, 'split') else ')')
            if problems:
                print_log(
                    'ZSLSemanticsHook: checkpoints record the class semantics '
                    f'of {where}, as ' + '; '.join(problems),
                    logger='current',
                    level='WARNING')
            return semantics, where
        raise RuntimeError(
            'ZSLSemanticsHook: no dataset of this run gives class semantics '
            'to record in the checkpoint: ' + '; '.join(problems))

    @staticmethod
    def _loader_of(runner, phase: str):
        """The phase's built dataloader, else its config (or None)."""
        loop = getattr(runner, f'_{phase}_loop', None)
        if isinstance(loop, BaseLoop):
            return loop.dataloader
        return getattr(runner, f'_{phase}_dataloader', None)

    @staticmethod
    def _dataset_of(loader):
        if loader is None:
            return None
        if not isinstance(loader, dict):  # a built DataLoader
            return loader.dataset
        cfg = loader.get('dataset')
        if not isinstance(cfg, dict):  # None, or a built dataset
            return cfg
        cfg = copy.deepcopy(cfg)
        cfg['lazy_init'] = True
        return DATASETS.build(cfg)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the tested class semantics as plain lists
        (``meta['zsl_class_semantics']``), and turn the ``class_semantics``
        of the training dataset's metainfo (MMEngine saves it in
        ``meta['dataset_meta']`` and in the message hub) into the same plain
        form, so that a weights-only ``torch.load`` reads the file."""
        if self._scored is None:
            self._scored = self._scored_semantics(runner)
        semantics, where = self._scored
        meta = checkpoint.setdefault('meta', {})
        runtime_info = (checkpoint.get('message_hub')
                        or {}).get('runtime_info') or {}
        for dataset_meta in (meta.get('dataset_meta'),
                             runtime_info.get('dataset_meta')):
            value = (dataset_meta or {}).get('class_semantics')
            if isinstance(value, ClassSemantics):
                dataset_meta['class_semantics'] = value.to_meta()
        meta[CHECKPOINT_META_KEY] = dict(
            semantics.to_meta(), recorded_from=where)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Make the stored ``class_semantics`` of ``meta['dataset_meta']`` a
        :class:`ClassSemantics` again. ``--resume`` then compares the
        metainfo with the training dataset's by pickle, which differs for
        equal values read back from a file: when every value is equal, the
        training dataset's own metainfo stands for it."""
        meta = checkpoint.get('meta') or {}
        dataset_meta = meta.get('dataset_meta')
        if not isinstance(dataset_meta, dict) or not isinstance(
                dataset_meta.get('class_semantics'), dict):
            return
        dataset_meta['class_semantics'] = ClassSemantics.from_meta(
            dataset_meta['class_semantics'])
        loader = self._loader_of(runner, 'train')
        current = getattr(getattr(loader, 'dataset', None), 'metainfo', None)
        if isinstance(current, dict) and _same_values(dataset_meta, current):
            meta['dataset_meta'] = current


def _same_values(first: dict, second: dict) -> bool:
    """Whether two metainfo dicts hold equal values (arrays by value)."""
    if set(first) != set(second):
        return False
    for key, value in first.items():
        other = second[key]
        if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            if not np.array_equal(np.asarray(value), np.asarray(other)):
                return False
        elif value != other:
            return False
    return True
