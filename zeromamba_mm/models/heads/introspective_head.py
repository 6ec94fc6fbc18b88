"""IDML's uncertainty branch and introspective training scores for ZSL."""
from typing import Dict, List, Optional, Tuple, Union

import torch.nn.functional as F
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS
from ..losses.introspective import IntrospectiveSimilarity
from .attribute_head import AttributeHead
from .head_wrapper import HeadWrapper, pooled_feature

_ACTIVATIONS = {'relu': F.relu, 'softplus': F.softplus}


@MODELS.register_module()
class IntrospectiveHead(HeadWrapper):
    """An attribute head trained with IDML's introspective similarity.

    IDML (`arXiv:2205.04449 <https://arxiv.org/abs/2205.04449>`_,
    `arXiv:2309.09982 <https://arxiv.org/abs/2309.09982>`_) adds an
    uncertainty embedding ``u`` to the semantic one and scores an image
    against zero-uncertainty prototypes by a similarity that ``u`` relaxes.
    In ZSL the prototypes are the class attribute vectors and the semantic
    embedding is the wrapped head's ``Â``:

    - ``u = act(W_u · f)`` on the pooled backbone feature ``f`` (ReLU as the
      classification code, or softplus), never L2-normalised: with a unit
      ``u`` the uncertainty ``β = ‖u‖² ≡ 1`` is constant and the branch
      learns nothing;
    - training: the wrapped head's loss over the seen classes on the
      introspective scores (default classification form
      ``1 − (1 − Â·a_c)·exp(−β / (γ‖Â − a_c‖²))``, equal to the plain
      scores at ``β = 0``), plus its attribute regression on ``Â``;
    - prediction: the plain scores of the wrapped head (GZSL calibration
      unchanged), or the introspective ones with ``test_introspective``.

    Args:
        head (dict): Config of the wrapped attribute head.
        in_channels (int): Channels of the pooled backbone feature.
        uncertainty_dim (int): Dimension of ``u``. Defaults to 512 (IDML's
            classification code).
        activation (str): ``'relu'`` or ``'softplus'``. Defaults to 'relu'.
        similarity (dict): Options of :class:`IntrospectiveSimilarity`
            (``form``, ``gamma``, ``offset``, ``scale``, ``eps``). Defaults
            to the classification form.
        feature_index (int, optional): Index of the feature the branch
            pools; by default the first 4-D map, else the last pooled
            tensor.
        test_introspective (bool): Score with the introspective similarity
            at test too. Defaults to False.
        init_cfg (dict, optional): Init config of the uncertainty branch.
    """

    training_only_prefixes = ('uncertainty.', )

    def __init__(self,
                 head: Union[dict, AttributeHead],
                 in_channels: int,
                 uncertainty_dim: int = 512,
                 activation: str = 'relu',
                 similarity: Optional[dict] = None,
                 feature_index: Optional[int] = None,
                 test_introspective: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(head, init_cfg=init_cfg)
        if activation not in _ACTIVATIONS:
            raise ValueError(f'activation must be one of '
                             f'{sorted(_ACTIVATIONS)}; got {activation!r}.')
        for name, value in (('in_channels', in_channels),
                            ('uncertainty_dim', uncertainty_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be an int >= 1; got '
                                 f'{value!r}.')
        self.in_channels = in_channels
        self.activation = activation
        self.feature_index = feature_index
        self.test_introspective = bool(test_introspective)
        self.uncertainty = nn.Linear(in_channels, uncertainty_dim)
        self.similarity = IntrospectiveSimilarity(**(similarity or {}))

    def uncertainty_embedding(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """``u`` (B, K) from the pooled feature (not normalised)."""
        pooled = pooled_feature(feats, self.in_channels, self.feature_index,
                                type(self).__name__)
        return _ACTIVATIONS[self.activation](self.uncertainty(pooled))

    def introspective_scores(self,
                             feats: Tuple[Tensor, ...],
                             class_attributes: Optional[Tensor] = None,
                             pred_attributes: Optional[Tensor] = None
                             ) -> Tensor:
        """Introspective scores (B, C) of the given (default: all) classes.

        Args:
            feats (tuple[Tensor]): Features from the neck/backbone.
            class_attributes (Tensor, optional): (C, A) classes to score.
            pred_attributes (Tensor, optional): ``Â`` if already computed.
        """
        if class_attributes is None:
            class_attributes = self.class_attributes
        if pred_attributes is None:
            pred_attributes = self.base(feats)
        beta = self.uncertainty_embedding(feats).pow(2).sum(dim=1)
        plain = self.base.class_scores(pred_attributes, class_attributes)
        return self.similarity(pred_attributes, beta, class_attributes, plain)

    def loss(self, feats: Tuple[Tensor, ...],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The wrapped head's losses on the introspective seen scores.

        Returns:
            dict[str, Tensor]: ``loss_ce``, ``loss_attr`` (when the wrapped
            head has an attribute loss) and ``idml_uncertainty`` (mean
            ``β``, logged, not summed).
        """
        self.check_class_attributes()
        pred_attributes = self.base(feats)
        target, attr_target = self.seen_targets(data_samples,
                                                pred_attributes.device)
        seen = self.seen_attributes
        beta = self.uncertainty_embedding(feats).pow(2).sum(dim=1)
        plain = self.base.class_scores(pred_attributes, seen)
        scores = self.similarity(pred_attributes, beta, seen, plain)
        losses = {'loss_ce': self.loss_module(scores, target)}
        if self.attr_loss_module is not None:
            losses['loss_attr'] = self.attr_loss_module(
                pred_attributes, attr_target)
        losses['idml_uncertainty'] = beta.detach().mean()
        return losses

    def predict_outputs(self, feats: Tuple[Tensor, ...]) -> Dict[str, Tensor]:
        """The wrapped head's predictions; with ``test_introspective`` the
        scores are the introspective ones of its ``Â``."""
        outputs = self.base.predict_outputs(feats)
        if self.test_introspective:
            outputs['pred_score'] = self.introspective_scores(
                feats, pred_attributes=outputs['pred_attributes'])
        return outputs
