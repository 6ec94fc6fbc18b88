"""ZeroMamba's attribute head: SLP + GRL fused by SeF."""
from typing import Dict, Optional, Sequence, Tuple, Union

from torch import Tensor

from zeromamba_mm.registry import MODELS
from zeromamba_mm.utils.word_vectors import WordVectorSource
from .attribute_head import AttributeHead
from .grl import GlobalRepresentationLearning
from .sef import SemanticFusion
from .slp import SemanticLocalProjection


@MODELS.register_module()
class ZeroMambaHead(AttributeHead):
    """The head of ZeroMamba (`arXiv:2408.14868
    <https://arxiv.org/abs/2408.14868>`_).

    Input ``feats = (x_pre, imagenet_logits)`` as produced by
    :class:`~zeromamba_mm.models.necks.ZeroMambaNeck`: the last backbone stage
    before the classifier norm (B, C, H, W) and the backbone's fine-tuned
    ImageNet logits (B, 1000). Output ``Â = SeF(GRL(logits), SLP(x_pre))``.
    Scores, loss (seen-class CE + λ·L1) and prediction come from
    :class:`AttributeHead`; ``predict`` also reports SLP's attention maps.

    Sub-modules (parameter names for ``paramwise_cfg``):

    - ``slp``: :class:`SemanticLocalProjection` — ``slp.V``, ``slp.W1``,
      ``slp.W2`` and ``slp.mlp_local`` (``MLP_ls``, lr 1e-4 in the recipe);
    - ``grl``: :class:`GlobalRepresentationLearning` — ``grl.fc``;
    - ``sef``: :class:`SemanticFusion` (no parameters).

    Args:
        num_attributes (int): Number of attributes A.
        in_channels (int): Channels of ``x_pre``. Defaults to 768.
        imagenet_classes (int): Number of ImageNet classes, the dimension of
            the logits GRL reads. Defaults to 1000.
        w2v_dim (int): Word-vector dimension. Defaults to 300.
        word_vectors (str | Path | ndarray | Tensor, optional): Attribute word
            vectors ``V₀`` initialising SLP's ``V``; None learns ``V`` from a
            random init. Defaults to None.
        mlp_hidden (int): Hidden width of ``MLP_ls``. Defaults to 512.
        grl_bias (bool): Bias in GRL's linear map (True = the authors' test
            script; their training has none). Defaults to False.
        l2_eps (float): Epsilon of SeF's L2 norm; 0 reproduces the authors'
            bare division. Defaults to 1e-12.
        normalize_local (bool): L2-normalise ``Ã_local`` in SeF. Defaults to
            True (the authors' training).
        **kwargs: Loss options of :class:`AttributeHead` (``loss``, and
            ``attr_loss`` = L1 with weight λ: 1.0 CUB, 0.2 SUN, 0.0 AWA2) and
            ``init_cfg``.
    """

    def __init__(self,
                 num_attributes: int,
                 in_channels: int = 768,
                 imagenet_classes: int = 1000,
                 w2v_dim: int = 300,
                 word_vectors: Optional[WordVectorSource] = None,
                 mlp_hidden: int = 512,
                 grl_bias: bool = False,
                 l2_eps: float = 1e-12,
                 normalize_local: bool = True,
                 **kwargs):
        super().__init__(num_attributes, **kwargs)
        self.slp = SemanticLocalProjection(
            num_attributes,
            in_channels=in_channels,
            w2v_dim=w2v_dim,
            word_vectors=word_vectors,
            mlp_hidden=mlp_hidden)
        self.grl = GlobalRepresentationLearning(
            num_attributes, in_channels=imagenet_classes, bias=grl_bias)
        self.sef = SemanticFusion(eps=l2_eps, normalize_local=normalize_local)

    @staticmethod
    def _split(feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        if not isinstance(feats, (tuple, list)) or len(feats) != 2:
            got = (f'{len(feats)} tensors' if isinstance(feats, (tuple, list))
                   else type(feats).__name__)
            raise ValueError(
                'ZeroMambaHead expects feats = (x_pre, imagenet_logits) from '
                f"dict(type='zeromamba_mm.ZeroMambaNeck'); got {got}.")
        return feats[0], feats[1]

    def forward_parts(self, feats: Sequence[Tensor]) -> Dict[str, Tensor]:
        """All intermediate predictions, for analysis and visualisation.

        Returns:
            dict[str, Tensor]: ``fused`` (Â, B×A), ``global_pred``
            (Ã_global, B×A), ``local_pred`` (Ã_local before SeF's
            normalisation, B×A) and ``attention`` (SLP's maps M, B×A×H×W).
        """
        x_pre, logits = self._split(feats)
        local, attention = self.slp(x_pre, return_attention=True)
        global_pred = self.grl(logits)
        return dict(
            fused=self.sef(global_pred, local),
            global_pred=global_pred,
            local_pred=local,
            attention=attention)

    def pre_logits(self, feats: Sequence[Tensor]) -> Tensor:
        """The fused attribute prediction ``Â`` (B, A)."""
        x_pre, logits = self._split(feats)
        return self.sef(self.grl(logits), self.slp(x_pre))

    def predict_outputs(self, feats: Sequence[Tensor]) -> Dict[str, Tensor]:
        """``Â``, its class scores and SLP's maps ``M`` from one pass."""
        parts = self.forward_parts(feats)
        return dict(
            pred_attributes=parts['fused'],
            pred_score=self.class_scores(parts['fused']),
            attention_maps=parts['attention'])

    def attention_maps(self, feats: Union[Sequence[Tensor], Tensor]) -> Tensor:
        """SLP's attribute attention maps ``M`` (B, A, H, W).

        Each map is a softmax over the H×W regions of ``x_pre`` (sums to 1).

        Args:
            feats (tuple[Tensor] | Tensor): ``(x_pre, imagenet_logits)`` or
                ``x_pre`` alone.
        """
        x_pre = feats if isinstance(feats, Tensor) else self._split(feats)[0]
        return self.slp.attend(x_pre)[1]
