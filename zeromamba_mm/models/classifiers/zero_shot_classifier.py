"""Zero-shot image classifier: backbone -> neck -> attribute head."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample
from torch import Tensor

from zeromamba_mm.registry import MODELS

ArrayLike = Union[Tensor, np.ndarray, Sequence]


@MODELS.register_module()
class ZeroShotClassifier(ImageClassifier):
    """An mmpretrain-style classifier that scores classes by their attributes.

    The head (an :class:`~zeromamba_mm.models.heads.AttributeHead`) predicts an
    attribute vector per image; classes are scored against the
    *class-attribute matrix* (C, A) held by this model. That matrix and the
    ids of the seen classes describe the dataset, not the model, so they are
    non-persistent buffers: they are never written to checkpoints and are set
    per phase by :class:`~zeromamba_mm.engine.ZSLSemanticsHook`
    (train/val/test) or by :meth:`set_class_semantics` (inference on any
    classes, including ones described only by attribute vectors).

    ``predict`` scores **all** classes; ``loss`` is the head's loss (ZeroMamba:
    CE over seen classes + λ·L1 attribute regression).

    Args:
        backbone (dict): Backbone config.
        neck (dict, optional): Neck config. Defaults to None.
        head (dict): Attribute head config.
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
        self.register_buffer(
            'class_attributes', torch.zeros(0, 0), persistent=False)
        self.register_buffer(
            'seen_classes', torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer(
            'unseen_classes', torch.zeros(0, dtype=torch.long),
            persistent=False)
        self.class_names: Optional[tuple] = None

    def set_class_semantics(self,
                            class_attributes: ArrayLike,
                            seen_classes: Optional[ArrayLike] = None,
                            unseen_classes: Optional[ArrayLike] = None,
                            class_names: Optional[Sequence[str]] = None
                            ) -> None:
        """Set the classes the model scores.

        Args:
            class_attributes: (C, A) attribute vector of every class, in the
                order of the global class ids.
            seen_classes: Global ids of the training classes (needed for the
                loss only). Defaults to none.
            unseen_classes: Global ids of the classes never seen in training
                (informative; the model scores all C classes anyway).
            class_names: Optional names of the C classes.
        """
        device = self.class_attributes.device
        attributes = torch.as_tensor(
            np.asarray(class_attributes), dtype=torch.float32, device=device)
        self.head.check_class_attributes(attributes)
        num_classes = attributes.shape[0]

        def ids(values, what):
            if values is None:
                return torch.zeros(0, dtype=torch.long, device=device)
            ids = torch.as_tensor(
                np.asarray(values), dtype=torch.long, device=device).flatten()
            if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
                raise ValueError(
                    f'{what} must be ids in [0, {num_classes}) (the number of '
                    f'rows of class_attributes); got min {int(ids.min())}, '
                    f'max {int(ids.max())}.')
            return ids.unique(sorted=True)

        self.class_attributes = attributes
        self.seen_classes = ids(seen_classes, 'seen_classes')
        self.unseen_classes = ids(unseen_classes, 'unseen_classes')
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f'Got {len(class_names)} class names for {num_classes} '
                'classes in class_attributes.')
        self.class_names = tuple(class_names) if class_names else None

    def loss(self, inputs: Tensor, data_samples: List[DataSample]) -> dict:
        """Features -> head loss against the current class semantics."""
        # Fail before the (possibly long) backbone pass if nothing is set.
        self.head.check_class_attributes(self.class_attributes)
        feats = self.extract_feat(inputs)
        return self.head.loss(feats, data_samples, self.class_attributes,
                              self.seen_classes)

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Scores of all classes in ``pred_score`` (raw compatibility)."""
        self.head.check_class_attributes(self.class_attributes)
        feats = self.extract_feat(inputs)
        return self.head.predict(feats, self.class_attributes, data_samples)
