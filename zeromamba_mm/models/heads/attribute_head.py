"""Base class of zero-shot heads that predict a class-attribute vector.

A zero-shot head maps image features to a vector ``Â`` in the attribute space
(A dims) and scores every class ``c`` by compatibility with its attribute
vector: ``s(x, c) = Â · a_c``. Seen and unseen classes are scored the same
way, which is what lets the model recognise classes it never saw in training.

The class-attribute matrix describes the dataset, not the model: the head
holds it (with the ids of the seen classes) as non-persistent buffers that
never reach a checkpoint and are set per phase by
:class:`~zeromamba_mm.engine.ZSLSemanticsHook` (or by
:meth:`AttributeHead.set_class_semantics` for inference on any classes).
That keeps ``loss(feats, data_samples)`` and ``predict(feats, data_samples)``
at the signatures of mmpretrain's ``ClsHead``, so an attribute head also
works inside a plain :class:`mmpretrain.models.ImageClassifier`.

The head contract (every attribute head; ``tests/test_head_contract.py``
checks it for each registered head):

- ``pre_logits(feats)`` -> ``Â`` (B, A), everything before the scoring by
  the class-attribute matrix. It is what
  ``ImageClassifier.extract_feat(x, stage='pre_logits')`` returns, and
  ``forward`` returns it too (so ``model(x, mode='tensor')`` and exported
  graphs do not depend on the classes);
- ``class_scores(Â)`` -> (B, C), the last "layer" whose weights are the
  class attributes;
- ``predict_outputs(feats)`` runs the head once and returns
  ``pred_attributes``, ``pred_score`` and, for heads with per-attribute
  attention, ``attention_maps``; ``predict`` packs them into the
  ``DataSample`` of each image (``_get_predictions``);
- ``loss(feats, data_samples)`` -> ``_get_loss(Â, data_samples)``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample
from torch import Tensor

from zeromamba_mm.registry import MODELS
from zeromamba_mm.structures.class_semantics import (ClassSemantics,
                                                     as_class_semantics)

ArrayLike = Union[Tensor, np.ndarray, Sequence]


class AttributeHead(ClsHead):
    """Shared scoring, loss and prediction of attribute-regression heads.

    An mmpretrain ``ClsHead`` whose classifier weights are the class
    attribute vectors. Sub-classes implement :meth:`pre_logits` (features
    -> ``Â`` of shape (B, A)); a head whose class scores are not
    ``Â · aᵀ`` overrides :meth:`class_scores` (or, when scoring needs more
    than ``Â``, :meth:`predict_outputs`); a head with per-attribute
    attention returns it from :meth:`predict_outputs` as
    ``attention_maps``. The loss follows ZeroMamba (`arXiv:2408.14868
    <https://arxiv.org/abs/2408.14868>`_): ``loss`` (cross-entropy by
    default) over the *seen* classes of the compatibility scores, plus the
    optional ``attr_loss`` between ``Â`` and the ground-truth class's
    attribute vector (ZeroMamba: L1 with weight λ = 1.0 CUB, 0.2 SUN, 0 AWA2).

    Soft labels from mmpretrain's batch augments (``gt_score`` from Mixup /
    CutMix over all C classes) are supported: the cross-entropy takes their
    seen-class columns and the regression target is the label-weighted
    mixture of class attribute vectors.

    Args:
        num_attributes (int): Attribute dimension A.
        loss (dict): Config of the classification loss over the seen classes'
            scores, built from the registry. Defaults to
            ``dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0)``.
        attr_loss (dict, optional): Config of the attribute regression loss,
            e.g. ``dict(type='zeromamba_mm.AttributeRegressionLoss',
            criterion='l1', loss_weight=1.0)``. None (default) disables it.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 num_attributes: int,
                 loss: dict = dict(
                     type='mmpretrain.CrossEntropyLoss', loss_weight=1.0),
                 attr_loss: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        # ClsHead keeps the built loss as ``loss_module``; topk / cal_acc
        # (training accuracy) do not apply to seen-class scores.
        super().__init__(
            loss=self._build_loss(loss, 'loss'), init_cfg=init_cfg)
        self.num_attributes = int(num_attributes)
        self.attr_loss_module = (
            None if attr_loss is None else self._build_loss(
                attr_loss, 'attr_loss'))
        self.register_buffer(
            'class_attributes', torch.zeros(0, 0), persistent=False)
        self.register_buffer(
            'seen_classes', torch.zeros(0, dtype=torch.long), persistent=False)

    @staticmethod
    def _build_loss(cfg, name: str):
        if isinstance(cfg, torch.nn.Module):
            return cfg
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(
                f'{name} must be a loss config dict with a "type" key, e.g. '
                "dict(type='mmpretrain.CrossEntropyLoss'); got "
                f'{cfg!r}.')
        return MODELS.build(cfg)

    # ----------------------------------------------------------- semantics
    def set_class_semantics(self,
                            semantics_or_attributes: Union[ClassSemantics,
                                                           ArrayLike],
                            seen_classes: Optional[ArrayLike] = None) -> None:
        """Set the classes the head scores.

        Args:
            semantics_or_attributes (ClassSemantics | array): The classes,
                or (legacy form) the (C, A) attribute vector of every class
                in the order of the global class ids.
            seen_classes: Legacy form: global ids of the training classes
                (needed by the loss only). Checked by ClassSemantics.
        """
        semantics = as_class_semantics(
            semantics_or_attributes,
            seen_classes=seen_classes,
            source=f'{type(self).__name__}.set_class_semantics()')
        device = self.class_attributes.device
        attributes = torch.as_tensor(
            semantics.attributes, dtype=torch.float32, device=device)
        self.check_class_attributes(attributes)
        self.class_attributes = attributes
        seen = semantics.seen_classes
        self.seen_classes = torch.as_tensor(
            np.zeros(0) if seen is None else seen,
            dtype=torch.long,
            device=device)

    def check_class_attributes(self,
                               class_attributes: Optional[Tensor] = None
                               ) -> None:
        """Fail clearly if the class-attribute matrix does not fit the head.

        Args:
            class_attributes (Tensor, optional): The matrix to check; the
                head's own by default.
        """
        if class_attributes is None:
            class_attributes = self.class_attributes
        if class_attributes.dim() != 2 or class_attributes.numel() == 0:
            raise RuntimeError(
                'The class-attribute matrix is not set (or empty): add '
                "dict(type='zeromamba_mm.ZSLSemanticsHook') to custom_hooks "
                'or call set_class_semantics(...) on the model first.')
        if class_attributes.shape[1] != self.num_attributes:
            raise ValueError(
                f'{type(self).__name__} was built with num_attributes='
                f'{self.num_attributes}, but the class-attribute matrix has '
                f'{class_attributes.shape[1]} attributes per class '
                f'(shape {tuple(class_attributes.shape)}).')
        if not torch.isfinite(class_attributes).all():
            raise ValueError(
                'The class-attribute matrix contains NaN or inf values.')

    @property
    def seen_attributes(self) -> Tensor:
        """(S, A) attribute vectors of the seen classes."""
        if self.seen_classes.numel() == 0:
            raise RuntimeError(
                'No seen classes are set on the model: add '
                "dict(type='zeromamba_mm.ZSLSemanticsHook') to custom_hooks.")
        return self.class_attributes[self.seen_classes]

    # ----------------------------------------------------------- scoring
    def pre_logits(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Predict the attribute vector ``Â`` (B, A) from the features.

        Args:
            feats (tuple[Tensor]): Features from the neck/backbone.
        """
        raise NotImplementedError(
            f'{type(self).__name__} must implement pre_logits(feats) -> the '
            'predicted attributes (B, num_attributes).')

    def forward(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """``Â`` (B, A), as :meth:`pre_logits`.

        Unlike ``ClsHead.forward``, this stops before the scoring layer:
        its weights (the class attributes) are an input set per phase, not
        a parameter, and are applied by :meth:`class_scores`.
        """
        return self.pre_logits(feats)

    def class_scores(self,
                     pred_attributes: Tensor,
                     class_attributes: Optional[Tensor] = None) -> Tensor:
        """Compatibility scores ``Â · aᵀ`` of shape (B, C).

        Args:
            pred_attributes (Tensor): (B, A) predicted attributes.
            class_attributes (Tensor, optional): (C, A) classes to score; the
                head's current classes by default.
        """
        if class_attributes is None:
            class_attributes = self.class_attributes
        return pred_attributes @ class_attributes.t()

    def predict_outputs(self, feats: Tuple[Tensor, ...]) -> Dict[str, Tensor]:
        """Everything :meth:`predict` reports, from one pass of the head.

        Args:
            feats (tuple[Tensor]): Features from the neck/backbone.

        Returns:
            dict[str, Tensor]: ``pred_attributes`` (``Â``, B×A),
            ``pred_score`` (raw scores of all current classes, B×C) and,
            for heads with per-attribute attention, ``attention_maps``
            (B×A×h×w).
        """
        pred_attributes = self(feats)
        return dict(
            pred_attributes=pred_attributes,
            pred_score=self.class_scores(pred_attributes))

    def predict_scores(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Raw scores (B, C) of all current classes (``pred_score``)."""
        return self.predict_outputs(feats)['pred_score']

    # ----------------------------------------------------------- labels
    @staticmethod
    def get_labels(data_samples: Sequence[DataSample],
                   device: torch.device) -> Tensor:
        """Global hard labels (B,) of the samples."""
        return torch.cat([s.gt_label for s in data_samples]).to(device)

    def get_soft_targets(self, data_samples: Sequence[DataSample],
                         device: torch.device) -> Optional[Tensor]:
        """Soft labels (B, C) from batch augments, or None for hard labels."""
        if not data_samples or 'gt_score' not in data_samples[0]:
            return None
        scores = torch.stack([s.gt_score for s in data_samples]).to(device)
        num_classes = self.class_attributes.shape[0]
        if scores.shape[1] != num_classes:
            raise ValueError(
                f'Soft labels (gt_score) have {scores.shape[1]} classes but '
                f'the class-attribute matrix has {num_classes}: set '
                f'num_classes={num_classes} (all classes, seen and unseen) in '
                'the Mixup/CutMix configs of train_cfg.augments.')
        return scores.float()

    def to_seen_local_labels(self, labels: Tensor) -> Tensor:
        """Map global class ids (B,) to positions in ``seen_classes``."""
        seen_classes = self.seen_classes
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

    def seen_targets(self, data_samples: Sequence[DataSample],
                     device: torch.device) -> Tuple[Tensor, Tensor]:
        """Targets of the seen-class loss and of the attribute regression.

        Returns:
            tuple[Tensor, Tensor]: The classification target — seen-local
            hard labels (B,) or seen-class soft labels (B, S) — and the
            regression target (B, A).
        """
        soft = self.get_soft_targets(data_samples, device)
        if soft is None:
            labels = self.get_labels(data_samples, device)
            return (self.to_seen_local_labels(labels),
                    self.class_attributes[labels])
        seen_mask = torch.zeros(
            soft.shape[1], dtype=torch.bool, device=device)
        seen_mask[self.seen_classes] = True
        if (soft[:, ~seen_mask] > 0).any():
            raise ValueError(
                'Soft labels put mass on unseen classes; a zero-shot model '
                'must not train on unseen classes (check the dataset split).')
        return soft[:, self.seen_classes], soft @ self.class_attributes

    # ----------------------------------------------------------- loss
    def loss(self, feats: Tuple[Tensor, ...], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """Seen-class classification loss plus attribute regression.

        Args:
            feats (tuple[Tensor]): Features from the neck/backbone.
            data_samples (list[DataSample]): Samples with global ``gt_label``
                (or ``gt_score`` from batch augments).
            **kwargs: Passed to the classification loss module.

        Returns:
            dict[str, Tensor]: ``loss_ce`` and, when ``attr_loss`` is set,
            ``loss_attr``.
        """
        self.check_class_attributes()
        return self._get_loss(self(feats), data_samples, **kwargs)

    def _get_loss(self, pred_attributes: Tensor,
                  data_samples: List[DataSample],
                  **kwargs) -> Dict[str, Tensor]:
        """The head's losses for given predicted attributes ``Â`` (B, A).

        Args:
            pred_attributes (Tensor): (B, A) predicted attributes.
            data_samples (list[DataSample]): Samples with labels.
            **kwargs: Passed to the classification loss module.
        """
        target, attr_target = self.seen_targets(data_samples,
                                                pred_attributes.device)
        seen_scores = self.class_scores(pred_attributes, self.seen_attributes)
        losses = {'loss_ce': self.loss_module(seen_scores, target, **kwargs)}
        if self.attr_loss_module is not None:
            losses['loss_attr'] = self.attr_loss_module(
                pred_attributes, attr_target)
        return losses

    # ----------------------------------------------------------- predict
    def predict(self,
                feats: Tuple[Tensor, ...],
                data_samples: Optional[Sequence[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Score all classes and pack predictions (one pass of the head).

        ``pred_score`` holds the raw scores over *all* current classes (seen
        and unseen); calibration (e.g. calibrated stacking) is left to the
        metric, which needs the raw scores.

        Args:
            feats (tuple[Tensor]): Features from the neck/backbone.
            data_samples (list[DataSample], optional): Samples to fill.

        Returns:
            list[DataSample]: Per image ``pred_score`` (C,), ``pred_label``,
            ``pred_attributes`` (A,) and, where the head has them,
            ``attention_maps`` (A, h, w).
        """
        self.check_class_attributes()
        return self._get_predictions(self.predict_outputs(feats), data_samples)

    def _get_predictions(
        self, outputs: Union[Dict[str, Tensor], Tensor],
        data_samples: Optional[Sequence[Optional[DataSample]]]
    ) -> List[DataSample]:
        """Pack the outputs of :meth:`predict_outputs` per image.

        Args:
            outputs (dict[str, Tensor] | Tensor): Batched outputs with
                ``pred_score`` (or the (B, C) scores alone); every other
                entry becomes a field of the same name.
            data_samples (list[DataSample], optional): Samples to fill.
        """
        if isinstance(outputs, Tensor):
            outputs = dict(pred_score=outputs)
        outputs = {name: value.detach() for name, value in outputs.items()}
        scores = outputs.pop('pred_score')
        labels = scores.argmax(dim=1, keepdim=True)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        results = []
        for i, sample in enumerate(data_samples):
            sample = DataSample() if sample is None else sample
            sample.set_pred_score(scores[i]).set_pred_label(labels[i])
            for name, value in outputs.items():
                sample.set_field(value[i], name, dtype=None)
            results.append(sample)
        return results
