"""DRMN's head: DAB + ACA, SIT, hyperspherical classifier, global branch."""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS
from zeromamba_mm.utils.word_vectors import WordVectorSource
from ..losses.self_calibration_loss import SelfCalibrationLoss
from .attribute_head import AttributeHead
from .dual_attention import DualAttentionBlock
from .hyperspherical_classifier import HypersphericalClassifier
from .semantic_interaction import SemanticInteractionTransformer

FUSION_SPACES = ('prob', 'logit')
CE_OVER = ('all', 'seen')


@MODELS.register_module()
class DRMNHead(AttributeHead):
    """The head of DRMN (Han et al., "Dual Relation Mining Network for
    Zero-Shot Learning", `arXiv:2405.03613
    <https://arxiv.org/abs/2405.03613>`_).

    Input: ``feats[-1]``, a feature map (B, C, H, W), e.g. the output of
    :class:`~zeromamba_mm.models.necks.MFFNeck`. Parts (parameter names for
    ``paramwise_cfg``):

    - ``dab``: :class:`DualAttentionBlock` — prototypes ``P``, spatial
      attention, ACA (``dab.aca``, ``use_aca``) and attribute scores ``e``;
    - ``sit``: :class:`SemanticInteractionTransformer` (``use_sit``), in
      training only: ``e`` and the losses are computed on the DAB features
      ``H`` *and* on SIT's ``Ĥ``, concatenated along the batch with
      duplicated labels (BatchFormer); in ``eval()`` SIT is skipped;
    - ``classifier``: :class:`HypersphericalClassifier`,
      ``o = s·cos(e, z_c)`` over all classes;
    - ``global_fc``: the global branch (``use_global``), ``g =
      Linear(GAP(F))`` over the ``num_seen_classes`` training classes.

    Losses: ``loss_ce`` (CE of ``o``, over all classes with ``ce_over='all'``
    as DAZLE's conservative setting, or over the seen ones), ``loss_cal``
    (:class:`SelfCalibrationLoss`, weight ``lambda_cal``; computed on
    features detached from the backbone and neck when
    ``cal_detach_backbone``), ``loss_global`` (CE of ``g``, weight
    ``lambda_gc``) and the optional ``loss_attr`` of :class:`AttributeHead`.

    Prediction (``pred_score`` over all C classes, calibration is left to
    the metric): with ``fusion_space='prob'``,
    ``log(softmax(o) + β·softmax(g)·1[seen])``; with ``'logit'``,
    ``o + β·g·1[seen]``. The unseen columns are a per-image shift of ``o``
    (or ``o`` itself), so ZSL (argmax over the unseen classes) is the
    attribute branch alone; with ``β = 0`` GZSL is too. The global branch is
    fused only on the classes it was trained on that are seen classes of
    the current semantics (none when the head scores new classes given only
    by attributes).

    Args:
        num_attributes (int): Number of attributes A.
        in_channels (int): Channels C of the feature map.
        num_seen_classes (int, optional): Training classes, the outputs of the
            global branch; required by ``use_global``.
        proto_init (str): ``'w2v'`` or ``'random'`` (see
            :class:`DualAttentionBlock`). Defaults to ``'w2v'``.
        word_vectors (str | Path | ndarray | Tensor, optional): Attribute word
            vectors (A, w2v_dim) for ``proto_init='w2v'``.
        w2v_dim (int): Word-vector dimension. Defaults to 300.
        use_aca (bool): ACA in the DAB. Defaults to True.
        aca_reduction (int): ACA's MLP reduction. Defaults to 16.
        score (str): ``'bilinear'`` or ``'dot'`` attribute scores. Defaults
            to ``'bilinear'``.
        use_sit (bool): Train with SIT. Defaults to True.
        sit_axis (str): ``'batch'`` or ``'attr'``. Defaults to ``'batch'``.
        sit_layers (int): SIT layers. Defaults to 1.
        sit_heads (int): SIT heads. Defaults to 4.
        sit_ffn_ratio (float): SIT feed-forward width / C. Defaults to 1.0.
        sit_dropout (float): SIT dropout. Defaults to 0.5.
        scale (float): Cosine scale s (20 CUB/AWA2, 25 SUN). Defaults to 20.
        learnable_scale (bool): Learn s. Defaults to False.
        use_global (bool): The global branch. Defaults to True.
        lambda_gc (float): Weight λ_GC of the global CE. Defaults to 1.0.
        beta (float): Weight β of the global branch in the GZSL fusion.
            Defaults to 0.1.
        fusion_space (str): ``'prob'`` or ``'logit'``. Defaults to
            ``'prob'``.
        lambda_cal (float): Weight λ_cal of the self-calibration loss; 0
            disables it. Defaults to 0.1.
        cal_detach_backbone (bool): Compute the self-calibration loss on
            features detached from backbone and neck (only the head learns
            from it). Defaults to True.
        ce_over (str): ``'all'`` or ``'seen'`` classes in ``loss_ce``.
            Defaults to ``'all'``.
        **kwargs: ``loss``, ``attr_loss`` and ``init_cfg`` of
            :class:`AttributeHead`.
    """

    def __init__(self,
                 num_attributes: int,
                 in_channels: int,
                 num_seen_classes: Optional[int] = None,
                 proto_init: str = 'w2v',
                 word_vectors: Optional[WordVectorSource] = None,
                 w2v_dim: int = 300,
                 use_aca: bool = True,
                 aca_reduction: int = 16,
                 score: str = 'bilinear',
                 use_sit: bool = True,
                 sit_axis: str = 'batch',
                 sit_layers: int = 1,
                 sit_heads: int = 4,
                 sit_ffn_ratio: float = 1.0,
                 sit_dropout: float = 0.5,
                 scale: float = 20.0,
                 learnable_scale: bool = False,
                 use_global: bool = True,
                 lambda_gc: float = 1.0,
                 beta: float = 0.1,
                 fusion_space: str = 'prob',
                 lambda_cal: float = 0.1,
                 cal_detach_backbone: bool = True,
                 ce_over: str = 'all',
                 **kwargs):
        super().__init__(num_attributes, **kwargs)
        if fusion_space not in FUSION_SPACES:
            raise ValueError(f'fusion_space must be one of {FUSION_SPACES}, '
                             f'got {fusion_space!r}.')
        if ce_over not in CE_OVER:
            raise ValueError(
                f'ce_over must be one of {CE_OVER}, got {ce_over!r}.')
        if not beta >= 0:
            raise ValueError(f'beta must be >= 0, got {beta!r}.')
        if not lambda_gc >= 0:
            raise ValueError(f'lambda_gc must be >= 0, got {lambda_gc!r}.')
        self.in_channels = int(in_channels)
        self.dab = DualAttentionBlock(
            num_attributes,
            in_channels,
            proto_init=proto_init,
            word_vectors=word_vectors,
            w2v_dim=w2v_dim,
            use_aca=use_aca,
            aca_reduction=aca_reduction,
            score=score)
        self.sit = SemanticInteractionTransformer(
            in_channels,
            num_layers=sit_layers,
            num_heads=sit_heads,
            ffn_ratio=sit_ffn_ratio,
            dropout=sit_dropout,
            axis=sit_axis) if use_sit else None
        self.classifier = HypersphericalClassifier(
            scale=scale, learnable_scale=learnable_scale)
        self.use_global = bool(use_global)
        self.beta = float(beta)
        self.fusion_space = fusion_space
        self.ce_over = ce_over
        self.cal_detach_backbone = bool(cal_detach_backbone)
        self.cal_loss = (
            SelfCalibrationLoss(
                loss_weight=lambda_cal) if lambda_cal > 0 else None)
        if self.use_global:
            if not num_seen_classes or num_seen_classes < 1:
                raise ValueError(
                    'DRMNHead(use_global=True) needs num_seen_classes, the '
                    'number of training classes (e.g. 150 CUB, 645 SUN, 40 '
                    'AWA2), or use_global=False.')
            self.num_seen_classes = int(num_seen_classes)
            self.global_fc = nn.Linear(self.in_channels, self.num_seen_classes)
            self.global_loss = MODELS.build(
                dict(
                    type='mmpretrain.CrossEntropyLoss',
                    loss_weight=float(lambda_gc)))
            # Global ids of the classes behind the rows of global_fc, set at
            # the first training step (-1 = not yet): kept in checkpoints so
            # that testing fuses the branch on the right columns.
            self.register_buffer(
                'global_class_ids',
                torch.full((self.num_seen_classes, ), -1, dtype=torch.long))
        else:
            self.global_fc = None

    # ----------------------------------------------------------- parts
    def feature_map(self, feats: Union[Sequence[Tensor], Tensor]) -> Tensor:
        """The (B, C, H, W) map the head reads: ``feats[-1]``."""
        x = feats[-1] if isinstance(feats, (tuple, list)) else feats
        if not isinstance(x, Tensor) or x.dim() != 4 or \
                x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
            raise ValueError(
                f'DRMNHead expects a feature map (B, {self.in_channels}, H, '
                f'W) as feats[-1] (in_channels={self.in_channels}); got '
                f'{shape}.')
        return x

    def attribute_features(self, x: Tensor) -> List[Tensor]:
        """DAB features ``H`` and, in training with SIT, also ``Ĥ``."""
        features, _ = self.dab(x)
        if self.sit is not None and self.training:
            return [features, self.sit(features)]
        return [features]

    def pre_logits(self, feats: Sequence[Tensor]) -> Tensor:
        """Attribute scores ``e`` (B, A) of the DAB features (no SIT)."""
        features, _ = self.dab(self.feature_map(feats))
        return self.dab.score(features)

    def class_scores(self,
                     pred_attributes: Tensor,
                     class_attributes: Optional[Tensor] = None) -> Tensor:
        """Hyperspherical logits ``o = s·cos(e, z_c)`` (B, C)."""
        if class_attributes is None:
            class_attributes = self.class_attributes
        return self.classifier(pred_attributes, class_attributes)

    def global_logits(self, feats: Union[Sequence[Tensor], Tensor]) -> Tensor:
        """Global branch logits ``g`` (B, num_seen_classes)."""
        if self.global_fc is None:
            raise RuntimeError('DRMNHead was built with use_global=False.')
        return self.global_fc(self.feature_map(feats).mean(dim=(2, 3)))

    def attention_maps(self, feats: Union[Sequence[Tensor], Tensor]) -> Tensor:
        """DAB's spatial attention ``ω`` (B, A, H, W)."""
        return self.dab(self.feature_map(feats))[1]

    # ----------------------------------------------------------- global ids
    def _register_global_classes(self) -> None:
        seen = self.seen_classes
        if seen.numel() != self.num_seen_classes:
            raise ValueError(
                f'DRMNHead was built with num_seen_classes='
                f'{self.num_seen_classes} (the outputs of the global branch),'
                f' but the training data has {seen.numel()} seen classes: '
                f'set model.head.num_seen_classes={seen.numel()}.')
        if (self.global_class_ids < 0).all():
            self.global_class_ids.copy_(seen)
        elif not torch.equal(self.global_class_ids, seen):
            raise ValueError(
                'The global branch of DRMNHead was trained on other seen '
                'classes than the current training data has; a checkpoint '
                'of another split cannot continue training its global '
                'branch (set use_global=False or start it afresh).')

    def _global_columns(self) -> Tuple[Tensor, Tensor]:
        """Rows of ``g`` to fuse and their columns among the current
        classes (the trained classes that are current seen classes)."""
        ids = self.global_class_ids
        if (ids < 0).all():
            if self.seen_classes.numel() != self.num_seen_classes:
                raise RuntimeError(
                    'The global branch of DRMNHead was never trained and '
                    f'the current data has {self.seen_classes.numel()} seen '
                    f'classes, not num_seen_classes={self.num_seen_classes}:'
                    ' load a trained checkpoint or set beta=0.')
            ids = self.seen_classes
        keep = torch.isin(ids, self.seen_classes)
        rows = keep.nonzero().flatten()
        return rows, ids[rows]

    # ----------------------------------------------------------- predict
    def fuse_scores(self,
                    attr_logits: Tensor,
                    global_logits: Optional[Tensor] = None) -> Tensor:
        """GZSL fusion of the two branches (see the class docstring).

        Args:
            attr_logits (Tensor): ``o`` (B, C).
            global_logits (Tensor, optional): ``g`` (B, num_seen_classes);
                None for the attribute branch alone.

        Returns:
            Tensor: (B, C) scores for ``pred_score``.
        """
        if self.fusion_space == 'logit':
            if global_logits is None:
                return attr_logits
            rows, cols = self._global_columns()
            fused = attr_logits.clone()
            fused[:, cols] += self.beta * global_logits[:, rows]
            return fused
        log_prob = torch.log_softmax(attr_logits, dim=1)
        if global_logits is None:
            return log_prob
        rows, cols = self._global_columns()
        global_log_prob = torch.log_softmax(global_logits, dim=1)[:, rows]
        fused = log_prob.clone()
        # log(p_o + β p_g) on the fused columns, stable in log space.
        fused[:, cols] = torch.logaddexp(log_prob[:, cols],
                                         global_log_prob + math.log(self.beta))
        return fused

    def predict_outputs(self, feats: Sequence[Tensor]) -> Dict[str, Tensor]:
        """``e`` (``pred_attributes``), the fused ``pred_score`` of all
        current classes (B, C) and DAB's attention ``ω``
        (``attention_maps``), from one pass."""
        x = self.feature_map(feats)
        features, attention = self.dab(x)
        pred_attributes = self.dab.score(features)
        attr_logits = self.class_scores(pred_attributes)
        fuse = (
            self.global_fc is not None and self.beta > 0
            and self.seen_classes.numel() > 0)
        scores = self.fuse_scores(attr_logits,
                                  self.global_logits(x) if fuse else None)
        return dict(
            pred_attributes=pred_attributes,
            pred_score=scores,
            attention_maps=attention)

    # ----------------------------------------------------------- loss
    def _paths_logits(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Scores ``e`` and logits ``o`` of every path, along the batch."""
        scores = torch.cat(
            [self.dab.score(f) for f in self.attribute_features(x)])
        return scores, self.class_scores(scores)

    def loss(self, feats: Sequence[Tensor],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """DRMN's training losses.

        Args:
            feats (tuple[Tensor]): Features; the head reads ``feats[-1]``.
            data_samples (list[DataSample]): Samples with global
                ``gt_label`` (or ``gt_score`` from batch augments).

        Returns:
            dict[str, Tensor]: ``loss_ce``, and ``loss_cal``,
            ``loss_global``, ``loss_attr`` when enabled.
        """
        self.check_class_attributes()
        x = self.feature_map(feats)
        device = x.device
        seen_target, attr_target = self.seen_targets(data_samples, device)
        soft = self.get_soft_targets(data_samples, device)
        scores, logits = self._paths_logits(x)
        paths = scores.shape[0] // x.shape[0]

        def repeat(t: Tensor) -> Tensor:
            return torch.cat([t] * paths)

        if self.ce_over == 'all':
            target = (
                self.get_labels(data_samples, device)
                if soft is None else soft)
            ce_logits = logits
        else:
            target, ce_logits = seen_target, logits[:, self.seen_classes]
        losses = {'loss_ce': self.loss_module(ce_logits, repeat(target))}
        if self.attr_loss_module is not None:
            losses['loss_attr'] = self.attr_loss_module(
                scores, repeat(attr_target))
        if self.cal_loss is not None:
            unseen = torch.ones(
                logits.shape[1], dtype=torch.bool, device=device)
            unseen[self.seen_classes] = False
            if not unseen.any():
                raise ValueError(
                    'DRMNHead: the self-calibration loss needs unseen classes'
                    ' in the class-attribute matrix, but all are seen; set '
                    'lambda_cal=0.')
            cal_logits = (
                self._paths_logits(x.detach())[1]
                if self.cal_detach_backbone else logits)
            losses['loss_cal'] = self.cal_loss(cal_logits, unseen)
        if self.global_fc is not None:
            if self.training:
                self._register_global_classes()
            losses['loss_global'] = self.global_loss(
                self.global_logits(x), seen_target)
        return losses
