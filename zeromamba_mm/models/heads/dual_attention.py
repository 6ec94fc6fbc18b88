"""DAB and ACA: DRMN's attribute-guided spatial and channel attention.

DRMN (Han et al., `arXiv:2405.03613 <https://arxiv.org/abs/2405.03613>`_)
embeds an image into the attribute space with a Dual Attention Block: each
attribute's prototype attends over the regions of the (fused) feature map,
and an attribute-guided channel attention (ACA) re-weights the channels of
each attended feature to "decouple entangled semantic features". The
equations follow a secondary summary of the paper; the parts it leaves open
(prototype dimension and init, the score map ``e``) follow DAZLE (Huynh &
Elhamifar, CVPR 2020) and GEM-ZSL (Liu et al., CVPR 2021), see
``docs/drmn.md``.
"""
import logging
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from zeromamba_mm.checkpoint import is_checkpoint_placeholder
from zeromamba_mm.registry import MODELS
from zeromamba_mm.utils.word_vectors import WordVectorSource, load_word_vectors

PROTO_INITS = ('w2v', 'random')
SCORE_MODES = ('bilinear', 'dot')


@MODELS.register_module()
class AttributeChannelAttention(BaseModule):
    """ACA: attribute-guided channel attention of DRMN.

    For attribute ``a`` of image ``i``, with prototype ``p_a`` (C) and
    region features ``v_ri`` (R × C)::

        q_ai = p_a / ‖p_a‖ + v̄_i / ‖v̄_i‖,   v̄_i = (1/R) Σ_r v_ri
        η_ai = σ(fc2(ReLU(fc1(q_ai))))      # SE-style MLP, C → C/r → C
        h_ai = k_ai ⊙ η_ai

    Args:
        channels (int): Feature channels C.
        reduction (int): Reduction ratio r of the MLP (SE networks' 16).
            Defaults to 16.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 channels: int,
                 reduction: int = 16,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if reduction < 1:
            raise ValueError(f'reduction must be >= 1, got {reduction}.')
        hidden = max(1, int(channels) // int(reduction))
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def weights(self, prototypes: Tensor, regions: Tensor) -> Tensor:
        """Channel weights ``η`` (B, A, C) in (0, 1).

        Args:
            prototypes (Tensor): ``P`` (A, C).
            regions (Tensor): ``V`` (B, R, C).
        """
        query = (
            F.normalize(prototypes, dim=-1)[None] +
            F.normalize(regions.mean(dim=1), dim=-1)[:, None])
        return torch.sigmoid(self.fc2(F.relu(self.fc1(query))))

    def forward(self, attended: Tensor, prototypes: Tensor,
                regions: Tensor) -> Tensor:
        """Re-weighted attribute features ``h = k ⊙ η`` (B, A, C)."""
        return attended * self.weights(prototypes, regions)


@MODELS.register_module()
class DualAttentionBlock(BaseModule):
    """DAB: attribute prototypes, spatial attention, ACA and scores.

    With region features ``V`` (B, R, C) of the feature map and attribute
    prototypes ``P`` (A, C)::

        P      = normalize(w2v) · W_p         # proto_init='w2v' (or free P)
        ω[bar] = softmax_r( p_aᵀ W1 v_br )    # W1 (C, C), zero at init
        k_ba   = Σ_r ω[bar] v_br               # attended features (B, A, C)
        h_ba   = k_ba ⊙ η_ba                   # ACA (use_aca), else h = k
        e_ba   = p_aᵀ W2 h_ba                  # score='bilinear'
               = p_aᵀ h_ba                     # score='dot'

    :meth:`forward` returns ``h`` (and ``ω``); :meth:`score` maps any
    attribute features (``h`` or SIT's refinement) to ``e`` (B, A), so the
    scores of both share the prototypes and ``W2``.

    Args:
        num_attributes (int): Number of attributes A.
        in_channels (int): Feature channels C.
        proto_init (str): ``'w2v'`` (prototypes projected from the fixed,
            L2-normalised attribute word vectors by a learned ``W_p``, as
            GEM-ZSL) or ``'random'`` (free prototypes ``P ~ N(0, 1)``).
            Defaults to ``'w2v'``.
        word_vectors (str | Path | ndarray | Tensor, optional): The (A,
            w2v_dim) attribute word vectors; required by ``proto_init='w2v'``.
            ``WORD_VECTORS_FROM_CHECKPOINT`` (set only by
            :func:`zeromamba_mm.checkpoint.config_for_loading`) makes a
            placeholder buffer that the checkpoint loaded next replaces.
        w2v_dim (int): Word-vector dimension. Defaults to 300.
        use_aca (bool): Apply ACA. Defaults to True.
        aca_reduction (int): ACA's MLP reduction. Defaults to 16.
        score (str): ``'bilinear'`` or ``'dot'``. Defaults to ``'bilinear'``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 num_attributes: int,
                 in_channels: int,
                 proto_init: str = 'w2v',
                 word_vectors: Optional[WordVectorSource] = None,
                 w2v_dim: int = 300,
                 use_aca: bool = True,
                 aca_reduction: int = 16,
                 score: str = 'bilinear',
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if proto_init not in PROTO_INITS:
            raise ValueError(f'proto_init must be one of {PROTO_INITS}, got '
                             f'{proto_init!r}.')
        if score not in SCORE_MODES:
            raise ValueError(
                f'score must be one of {SCORE_MODES}, got {score!r}.')
        self.num_attributes = int(num_attributes)
        self.in_channels = int(in_channels)
        self.proto_init = proto_init
        self.score_mode = score
        channels = self.in_channels
        if proto_init == 'w2v':
            if word_vectors is None:
                raise ValueError(
                    "DualAttentionBlock(proto_init='w2v') needs the attribute "
                    'word vectors: set word_vectors=PATH (.npy or .pkl, shape '
                    f'({self.num_attributes}, {w2v_dim})), or use '
                    "proto_init='random' for free prototypes.")
            if is_checkpoint_placeholder(word_vectors):
                # Built to load a checkpoint, which holds the buffer.
                w2v = torch.ones(self.num_attributes, w2v_dim)
            else:
                w2v = torch.from_numpy(
                    load_word_vectors(word_vectors, self.num_attributes,
                                      w2v_dim)).float()
            if (w2v.norm(dim=1) == 0).any():
                zero_rows = (w2v.norm(dim=1) == 0).nonzero().flatten()
                print_log(
                    'DualAttentionBlock: word vectors of attributes '
                    f'{zero_rows.tolist()} are all zero; their prototypes '
                    'start at zero.',
                    logger='current',
                    level=logging.WARNING)
            # Kept in checkpoints: the prototypes are a function of them.
            self.register_buffer('word_vectors', F.normalize(w2v, dim=1))
            self.proto_proj = nn.Parameter(torch.randn(w2v_dim, channels))
        else:
            self.prototypes_free = nn.Parameter(
                torch.randn(self.num_attributes, channels))
        # Zero: ω is uniform over the regions at initialisation (DAZLE).
        self.attn_weight = nn.Parameter(torch.zeros(channels, channels))
        if score == 'bilinear':
            self.score_weight = nn.Parameter(
                torch.randn(channels, channels) / channels**0.5)
        self.aca = (
            AttributeChannelAttention(channels, aca_reduction)
            if use_aca else None)

    @property
    def prototypes(self) -> Tensor:
        """Attribute prototypes ``P`` (A, C)."""
        if self.proto_init == 'w2v':
            return self.word_vectors @ self.proto_proj
        return self.prototypes_free

    def _regions(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'DualAttentionBlock expects a feature map (B, '
                f'{self.in_channels}, H, W) (in_channels='
                f'{self.in_channels}); got shape {tuple(x.shape)}.')
        return x.flatten(2).transpose(1, 2)  # (B, R, C)

    def attention(self, x: Tensor) -> Tensor:
        """Spatial attention ``ω`` (B, A, R), each row summing to 1."""
        regions = self._regions(x)
        query = self.prototypes @ self.attn_weight  # (A, C)
        return torch.softmax(query @ regions.transpose(1, 2), dim=-1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Attribute features and attention.

        Args:
            x (Tensor): Feature map (B, C, H, W).

        Returns:
            tuple[Tensor, Tensor]: ``h`` (B, A, C) and ``ω`` (B, A, H, W).
        """
        regions = self._regions(x)
        prototypes = self.prototypes
        query = prototypes @ self.attn_weight
        attention = torch.softmax(query @ regions.transpose(1, 2), dim=-1)
        attended = attention @ regions  # (B, A, C)
        if self.aca is not None:
            attended = self.aca(attended, prototypes, regions)
        b, _, h, w = x.shape
        return attended, attention.reshape(b, self.num_attributes, h, w)

    def score(self, features: Tensor) -> Tensor:
        """Attribute scores ``e`` (B, A) of attribute features (B, A, C)."""
        prototypes = self.prototypes
        if self.score_mode == 'bilinear':
            prototypes = prototypes @ self.score_weight
        return (features * prototypes[None]).sum(dim=-1)
