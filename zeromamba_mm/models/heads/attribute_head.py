"""Base class of zero-shot heads that predict a class-attribute vector.

A zero-shot head maps image features to a vector ``Â`` in the attribute space
(A dims) and scores every class ``c`` by compatibility with its attribute
vector: ``s(x, c) = Â · a_c``. Seen and unseen classes are scored the same
way, which is what lets the model recognise classes it never saw in training.
The class-attribute matrix is not a parameter of the head: the classifier
passes it in (see :class:`~zeromamba_mm.models.ZeroShotClassifier`), so the
same weights serve any set of classes.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.structures import DataSample
from torch import Tensor


class AttributeHead(BaseModule):
    """Shared scoring, loss and prediction of attribute-regression heads.

    Sub-classes implement :meth:`forward` (features -> ``Â`` of shape (B, A)).
    The loss follows ZeroMamba (`arXiv:2408.14868
    <https://arxiv.org/abs/2408.14868>`_): cross-entropy over the *seen*
    classes of the compatibility scores, plus ``attr_loss_weight`` times the
    L1 distance between ``Â`` and the ground-truth class's attribute vector.

    Args:
        num_attributes (int): Attribute dimension A.
        ce_loss_weight (float): Weight of the seen-class cross-entropy.
            Defaults to 1.0.
        attr_loss_weight (float): Weight λ of the attribute regression loss
            (ZeroMamba: 1.0 CUB, 0.2 SUN, 0.0 AWA2). Defaults to 0.0.
        attr_loss (str): ``'l1'`` (ZeroMamba) or ``'mse'``. Defaults to 'l1'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_attributes: int,
                 ce_loss_weight: float = 1.0,
                 attr_loss_weight: float = 0.0,
                 attr_loss: str = 'l1',
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if attr_loss not in ('l1', 'mse'):
            raise ValueError(
                f"attr_loss must be 'l1' or 'mse', but got {attr_loss!r}")
        self.num_attributes = int(num_attributes)
        self.ce_loss_weight = ce_loss_weight
        self.attr_loss_weight = attr_loss_weight
        self.attr_loss = attr_loss

    def forward(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Predict the attribute vector ``Â`` (B, A) from the features."""
        raise NotImplementedError

    def class_scores(self, pred_attributes: Tensor,
                     class_attributes: Tensor) -> Tensor:
        """Compatibility scores ``Â · a_cᵀ`` of shape (B, C)."""
        return pred_attributes @ class_attributes.t()

    def check_class_attributes(self, class_attributes: Tensor) -> None:
        """Fail clearly if the class-attribute matrix does not fit the head."""
        if class_attributes.dim() != 2 or class_attributes.numel() == 0:
            raise RuntimeError(
                'The class-attribute matrix is not set (or empty): add '
                "dict(type='zeromamba_mm.ZSLSemanticsHook') to custom_hooks "
                'or call model.set_class_semantics(...) first.')
        if class_attributes.shape[1] != self.num_attributes:
            raise ValueError(
                f'{type(self).__name__} was built with num_attributes='
                f'{self.num_attributes}, but the class-attribute matrix has '
                f'{class_attributes.shape[1]} attributes per class '
                f'(shape {tuple(class_attributes.shape)}).')

    def loss(self, feats: Tuple[Tensor, ...], data_samples: List[DataSample],
             class_attributes: Tensor,
             seen_classes: Tensor) -> Dict[str, Tensor]:
        """Seen-class cross-entropy plus attribute regression.

        Args:
            feats (tuple[Tensor]): Features from the neck/backbone.
            data_samples (list[DataSample]): Samples with global ``gt_label``.
            class_attributes (Tensor): (C, A) attributes of all classes.
            seen_classes (Tensor): Sorted global ids of the training classes.

        Returns:
            dict[str, Tensor]: ``loss_ce`` and, when its weight is non-zero,
            ``loss_attr``.
        """
        self.check_class_attributes(class_attributes)
        pred_attributes = self(feats)
        labels = torch.cat([s.gt_label for s in data_samples]).to(
            pred_attributes.device)
        local_labels = self.to_seen_local_labels(labels, seen_classes)
        seen_scores = self.class_scores(pred_attributes,
                                        class_attributes[seen_classes])
        losses = {
            'loss_ce':
            self.ce_loss_weight * F.cross_entropy(seen_scores, local_labels)
        }
        if self.attr_loss_weight:
            target = class_attributes[labels]
            if self.attr_loss == 'l1':
                regression = F.l1_loss(pred_attributes, target)
            else:
                regression = F.mse_loss(pred_attributes, target)
            losses['loss_attr'] = self.attr_loss_weight * regression
        return losses

    @staticmethod
    def to_seen_local_labels(labels: Tensor, seen_classes: Tensor) -> Tensor:
        """Map global class ids to positions in ``seen_classes``."""
        if seen_classes.numel() == 0:
            raise RuntimeError(
                'No seen classes are set on the model: add '
                "dict(type='zeromamba_mm.ZSLSemanticsHook') to custom_hooks.")
        # seen_classes is sorted (set_class_semantics sorts it).
        local = torch.searchsorted(seen_classes, labels).clamp(
            max=len(seen_classes) - 1)
        local = torch.where(seen_classes[local] == labels, local, -1)
        if (local < 0).any():
            bad = labels[local < 0].unique().tolist()
            raise ValueError(
                f'Training samples of classes {bad[:10]} are not among the '
                f'{len(seen_classes)} seen classes; a zero-shot model must '
                'not train on unseen classes (check the dataset split).')
        return local

    def predict(self,
                feats: Tuple[Tensor, ...],
                class_attributes: Tensor,
                data_samples: Optional[Sequence[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Score all classes and pack predictions.

        ``pred_score`` holds the raw compatibility scores over *all* classes
        (seen and unseen); calibration (e.g. calibrated stacking) is left to
        the metric, which needs the raw scores.
        """
        self.check_class_attributes(class_attributes)
        scores = self.class_scores(self(feats), class_attributes).detach()
        labels = scores.argmax(dim=1, keepdim=True)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        results = []
        for sample, score, label in zip(data_samples, scores, labels):
            sample = DataSample() if sample is None else sample
            sample.set_pred_score(score).set_pred_label(label)
            results.append(sample)
        return results
