"""Zero-shot image classifier: backbone -> neck -> attribute head."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS
from zeromamba_mm.structures.class_semantics import (ClassSemantics,
                                                     as_class_semantics)

ArrayLike = Union[Tensor, np.ndarray, Sequence]


@MODELS.register_module()
class ZeroShotClassifier(ImageClassifier):
    """An mmpretrain ``ImageClassifier`` with what zero-shot learning adds.

    The head (an :class:`~zeromamba_mm.models.heads.AttributeHead`) predicts
    an attribute vector per image and scores every class of its current
    class-attribute matrix; the head works as well inside a plain
    ``ImageClassifier``. This class adds:

    - :meth:`set_class_semantics`, the model-level entry point that
      :func:`~zeromamba_mm.models.utils.semantics_adapter.
      set_model_class_semantics` uses (for the hook and the inferencer); it
      keeps the :class:`~zeromamba_mm.structures.ClassSemantics` as
      ``class_semantics``;
    - ``train_signals``: extra training losses (e.g. the IDML, OPERA or
      Mixup-twin signals of :mod:`zeromamba_mm.models.train_signals`), each a
      registered module with ``loss(model, inputs, feats, data_samples)``.
      They are called by :meth:`loss` only, so prediction never depends on
      them;
    - an early, readable failure when the class semantics are not set,
      before the (possibly long) backbone pass.

    Args:
        backbone (dict): Backbone config.
        neck (dict, optional): Neck config. Defaults to None.
        head (dict): Attribute head config.
        train_signals (list[dict], optional): Configs of extra training
            signals. Defaults to None.
        pretrained (str, optional): Checkpoint of the whole model.
        train_cfg (dict, optional): Batch augmentations, as in
            :class:`mmpretrain.models.ImageClassifier`.
        data_preprocessor (dict, optional): Defaults to
            ``ClsDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 train_signals: Optional[List[dict]] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if head is None:
            raise ValueError('ZeroShotClassifier needs an attribute head.')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not hasattr(self.head, 'set_class_semantics'):
            raise TypeError(
                'ZeroShotClassifier needs an attribute head with '
                f'set_class_semantics(); {type(self.head).__name__} has none '
                '(use e.g. zeromamba_mm.ZeroMambaHead or '
                'zeromamba_mm.LinearAttributeHead).')
        signals = [
            s if isinstance(s, nn.Module) else MODELS.build(s)
            for s in (train_signals or [])
        ]
        for signal in signals:
            if not callable(getattr(signal, 'loss', None)):
                raise TypeError(
                    f'Training signal {type(signal).__name__} has no '
                    'loss(model, inputs, feats, data_samples) method.')
        self.train_signals = nn.ModuleList(signals)

    def set_class_semantics(
            self,
            semantics_or_attributes: Union[ClassSemantics, ArrayLike],
            seen_classes: Optional[ArrayLike] = None,
            unseen_classes: Optional[ArrayLike] = None,
            class_names: Optional[Sequence[str]] = None) -> None:
        """Set the classes the model scores (on its head).

        Args:
            semantics_or_attributes (ClassSemantics | array): The classes,
                or (legacy form) the (C, A) attribute vector of every class
                in the order of the global class ids, as the model uses
                them.
            seen_classes: Legacy form: global ids of the training classes
                (needed for the loss only).
            unseen_classes: Legacy form: global ids of the classes never
                seen in training.
            class_names: Legacy form: names of the C classes.

        The legacy arguments are made into a
        :class:`~zeromamba_mm.structures.ClassSemantics`, which checks them
        (ids in range, seen and unseen disjoint, one name per class).
        """
        semantics = as_class_semantics(
            semantics_or_attributes,
            seen_classes=seen_classes,
            unseen_classes=unseen_classes,
            class_names=class_names,
            source=f'{type(self).__name__}.set_class_semantics()')
        self.head.set_class_semantics(semantics)
        self.class_semantics = semantics

    def loss(self, inputs: Tensor,
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """Head loss (plus the training signals' losses)."""
        # Fail before the (possibly long) backbone pass if nothing is set.
        self.head.check_class_attributes()
        feats = self.extract_feat(inputs)
        losses = self.head.loss(feats, data_samples)
        for signal in self.train_signals:
            extra = signal.loss(self, inputs, feats, data_samples)
            clash = sorted(set(extra) & set(losses))
            if clash:
                raise KeyError(
                    f'Training signal {type(signal).__name__} returned loss '
                    f'names {clash} that are already used; give each signal '
                    'its own prefix.')
            losses.update(extra)
        return losses

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Scores of all classes in ``pred_score`` (raw compatibility)."""
        self.head.check_class_attributes()
        return super().predict(inputs, data_samples, **kwargs)
