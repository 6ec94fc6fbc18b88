"""OPERA's omni-supervised branch as a training signal of the classifier."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.models.utils import CosineEMA
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS
from ..heads.head_wrapper import HeadWrapper
from ..losses.contrastive import check_temperature, moco_v3_contrastive


def pool_backbone_output(outputs: Sequence[Tensor]) -> Tensor:
    """(B, C) pooled feature of the backbone's last output."""
    feat = outputs if isinstance(outputs, Tensor) else outputs[-1]
    if feat.dim() == 4:
        return feat.mean(dim=(2, 3))
    if feat.dim() == 2:
        return feat
    raise ValueError('OPERASignal needs a (B, C, H, W) or (B, C) last '
                     f'backbone output; got {tuple(feat.shape)}.')


class PooledBackbone(nn.Module):
    """``backbone`` followed by global average pooling of its last output."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs: Tensor) -> Tensor:
        return pool_backbone_output(self.backbone(inputs))


class _Projection(nn.Sequential):
    """``PooledBackbone`` → projector, the part the momentum copy follows."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__(PooledBackbone(backbone), projector)

    def forward(self, inputs: Tensor) -> Tensor:
        return self[1]((self[0](inputs), ))[0]


@MODELS.register_module()
class OPERASignal(nn.Module):
    """OPERA's hierarchy of proxies as an auxiliary ZSL training branch.

    OPERA (`arXiv:2210.05557 <https://arxiv.org/abs/2210.05557>`_) puts
    self-supervision on a lower proxy and full supervision on a higher proxy
    stacked on it. Here, on the pooled backbone feature ``f`` of two views:

    - projector ``g`` → predictor ``h``: ``q = h(g(f))``, trained with MoCo
      v3's contrastive loss against keys ``k = g'(f'(x))`` of a momentum copy
      of backbone + projector (mmpretrain's ``CosineEMA``; not trained by
      gradients, MoCo momentum 0.99 → 1 on a cosine schedule);
    - full-supervision projector ``g_f`` on ``q`` predicting attributes,
      trained with the cross-entropy over the seen classes of the head's
      compatibility scores ``g_f(q)·aᵀ``.

    Loss: ``loss_weight · [0.5·L_self + 0.5·CE(v₁) + 0.5·CE(v₂)]`` with
    ``L_self = ctr(q₁, k₂) + ctr(q₂, k₁)``, returned as ``loss_opera_self``
    and ``loss_opera_ce``; the head's own loss is computed on the clean view
    by the classifier. The views come from mmpretrain's ``MultiView``
    (``num_views=[1, 2]``: the clean image, then two augmented views) through
    :class:`MultiViewClsDataPreprocessor`. Nothing of the branch is used at
    test.

    Projector, predictor and full projector are mmpretrain
    ``NonLinearNeck`` s (BN1d, so they run without ``torch.distributed``).

    Args:
        in_channels (int): Channels of the pooled backbone feature.
        num_attributes (int): Attribute dimension A (output of ``g_f``).
        hid_channels (int): Hidden width of projector and predictor.
            Defaults to 4096 (MoCo v3).
        proj_channels (int): Output width of projector and predictor.
            Defaults to 256.
        temperature (float): Contrastive temperature τ (MoCo v3: 1.0 CNN,
            0.2 ViT). Defaults to 1.0.
        momentum (float): mmpretrain's EMA weight of the online parameters at
            the start (``1 − m`` of MoCo: 0.01 gives m = 0.99). Defaults to
            0.01.
        self_weight (float): Weight of ``L_self``. Defaults to 0.5.
        full_weight (float): Weight of each view's CE. Defaults to 0.5.
        loss_weight (float): Weight of the whole branch. Defaults to 1.0.
        projector (dict, optional): Overrides of the projector's
            ``NonLinearNeck`` config.
        predictor (dict, optional): Overrides of the predictor's config.
        full_projector (dict, optional): Overrides of ``g_f``'s config.
    """

    num_views = 2

    def __init__(self,
                 in_channels: int,
                 num_attributes: int,
                 hid_channels: int = 4096,
                 proj_channels: int = 256,
                 temperature: float = 1.0,
                 momentum: float = 0.01,
                 self_weight: float = 0.5,
                 full_weight: float = 0.5,
                 loss_weight: float = 1.0,
                 projector: Optional[dict] = None,
                 predictor: Optional[dict] = None,
                 full_projector: Optional[dict] = None):
        super().__init__()
        check_temperature(temperature, 'OPERASignal temperature')
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError('OPERASignal momentum (the EMA weight of the '
                             'online parameters, 1 - MoCo m) must be in '
                             f'(0, 1]; got {momentum!r}.')
        for name, value in (('self_weight', self_weight),
                            ('full_weight', full_weight),
                            ('loss_weight', loss_weight)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1e6):
                raise ValueError(f'OPERASignal {name} must be a finite '
                                 f'number >= 0; got {value!r}.')
        norm = dict(type='BN1d')
        common = dict(with_avg_pool=False, norm_cfg=norm)
        self.projector = MODELS.build(
            dict(
                dict(
                    type='mmpretrain.NonLinearNeck',
                    in_channels=in_channels,
                    hid_channels=hid_channels,
                    out_channels=proj_channels,
                    num_layers=2,
                    with_last_bn=True,
                    with_last_bn_affine=False,
                    **common), **(projector or {})))
        self.predictor = MODELS.build(
            dict(
                dict(
                    type='mmpretrain.NonLinearNeck',
                    in_channels=proj_channels,
                    hid_channels=hid_channels,
                    out_channels=proj_channels,
                    num_layers=2,
                    with_last_bn=False,
                    **common), **(predictor or {})))
        self.full_projector = MODELS.build(
            dict(
                dict(
                    type='mmpretrain.NonLinearNeck',
                    in_channels=proj_channels,
                    hid_channels=proj_channels,
                    out_channels=num_attributes,
                    num_layers=2,
                    with_last_bn=False,
                    with_last_bias=True,
                    **common), **(full_projector or {})))
        self.in_channels = int(in_channels)
        self.num_attributes = int(num_attributes)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.self_weight = float(self_weight)
        self.full_weight = float(full_weight)
        self.loss_weight = float(loss_weight)
        # Created from the model's backbone at the first training step.
        self.momentum_encoder: Optional[CosineEMA] = None
        self._pending_momentum_state: Optional[Dict[str, Tensor]] = None

    # ------------------------------------------------------ momentum copy
    def _online_projection(self, model: nn.Module) -> nn.Module:
        return _Projection(model.backbone, self.projector)

    def update_momentum_encoder(self, model: nn.Module) -> None:
        """Create the momentum copy (first call) and apply one EMA step."""
        online = self._online_projection(model)
        if self.momentum_encoder is None:
            self.momentum_encoder = CosineEMA(
                online, momentum=self.momentum, end_momentum=0.0)
            if self._pending_momentum_state is not None:
                self.momentum_encoder.load_state_dict(
                    self._pending_momentum_state)
                self._pending_momentum_state = None
        if int(self.momentum_encoder.steps) > 0 and MessageHub.\
                get_current_instance().get_info('max_iters') is None:
            raise RuntimeError(
                'OPERASignal needs the total number of iterations for its '
                'cosine momentum schedule: train with an mmengine Runner, or '
                "call MessageHub.get_current_instance().update_info("
                "'max_iters', N) first.")
        self.momentum_encoder.update_parameters(online)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # The momentum copy is created at the first training step; keep a
        # checkpoint's copy until then (resume stays exact).
        key_prefix = prefix + 'momentum_encoder.'
        mine = {
            k[len(key_prefix):]: v
            for k, v in state_dict.items() if k.startswith(key_prefix)
        }
        if mine and self.momentum_encoder is None:
            self._pending_momentum_state = mine
            state_dict = {
                k: v
                for k, v in state_dict.items() if not k.startswith(key_prefix)
            }
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------- views
    def get_views(self, data_samples: List[DataSample]) -> Tuple[Tensor, ...]:
        """The two augmented views (B, C, H, W) each, from the samples."""
        if not data_samples or 'views' not in data_samples[0]:
            raise ValueError(
                'OPERASignal needs two augmented views per image: use '
                "dict(type='MultiView', num_views=[1, 2], transforms=[clean, "
                "view]) in the training pipeline and data_preprocessor="
                "dict(type='zeromamba_mm.MultiViewClsDataPreprocessor').")
        counts = {len(s.views) for s in data_samples}
        if counts != {self.num_views}:
            raise ValueError(
                f'OPERASignal needs exactly {self.num_views} augmented views '
                f'per image besides the clean one (MultiView num_views=[1, '
                f'{self.num_views}]); got {sorted(counts)}.')
        return tuple(
            torch.stack([s.views[i] for s in data_samples])
            for i in range(self.num_views))

    # -------------------------------------------------------------- loss
    def hierarchy(self, model: nn.Module,
                  view: Tensor) -> Tuple[Tensor, Tensor]:
        """Online ``q = h(g(f(x)))`` and attribute proxy ``g_f(q)``."""
        pooled = pool_backbone_output(model.backbone(view))
        if pooled.shape[1] != self.in_channels:
            raise ValueError(
                f'OPERASignal was built with in_channels={self.in_channels}, '
                f'but the pooled backbone feature has {pooled.shape[1]}.')
        query = self.predictor(self.projector((pooled, )))[0]
        return query, self.full_projector((query, ))[0]

    def full_supervision_loss(self, model: nn.Module, pred_attributes: Tensor,
                              labels: Tensor) -> Tensor:
        """CE over the seen classes of the head's scores of ``g_f(q)``."""
        scores = model.head.class_scores(pred_attributes,
                                         model.head.seen_attributes)
        return F.cross_entropy(scores, labels)

    def combine(self, self_loss: Tensor, ce_1: Tensor,
                ce_2: Tensor) -> Dict[str, Tensor]:
        """``w·[0.5·L_self + 0.5·CE₁ + 0.5·CE₂]`` as two named losses."""
        return {
            'loss_opera_self': self.loss_weight * self.self_weight * self_loss,
            'loss_opera_ce':
            self.loss_weight * self.full_weight * (ce_1 + ce_2),
        }

    def loss(self, model: nn.Module, inputs: Tensor, feats: Tuple[Tensor,
                                                                  ...],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The omni-supervised losses of the two views."""
        if model.head.num_attributes != self.num_attributes:
            raise ValueError(
                f'OPERASignal num_attributes={self.num_attributes} differs '
                f'from the head ({model.head.num_attributes}).')
        view_1, view_2 = self.get_views(data_samples)
        labels = model.head.to_seen_local_labels(
            model.head.get_labels(data_samples, inputs.device))
        self.update_momentum_encoder(model)
        q_1, attr_1 = self.hierarchy(model, view_1)
        q_2, attr_2 = self.hierarchy(model, view_2)
        with torch.no_grad():
            k_1 = self.momentum_encoder(view_1)
            k_2 = self.momentum_encoder(view_2)
        self_loss = (
            moco_v3_contrastive(q_1, k_2, self.temperature) +
            moco_v3_contrastive(q_2, k_1, self.temperature))
        return self.combine(
            self_loss, self.full_supervision_loss(model, attr_1, labels),
            self.full_supervision_loss(model, attr_2, labels))


def plain_state_dict(model: nn.Module) -> Dict[str, Tensor]:
    """The state dict of ``model`` without its training-only branches.

    Drops every ``train_signals.*`` entry (OPERA's projectors and momentum
    copy, ...) and, for a wrapping head (IDML, PDML-inspired), its own
    branch, renaming the wrapped head's keys to those of the plain model.

    Args:
        model (nn.Module): A classifier with a ``head``.
    """
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith('train_signals.')
    }
    if isinstance(getattr(model, 'head', None), HeadWrapper):
        state = model.head.plain_state_dict(state)
    return copy.copy(state)
