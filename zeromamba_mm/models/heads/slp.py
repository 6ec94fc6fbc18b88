"""SLP: ZeroMamba's Semantic-aware Local Projection.

Dense attribute attention over the regions of the last backbone stage (the
attention of DAZLE, as used by ZeroMamba, `arXiv:2408.14868
<https://arxiv.org/abs/2408.14868>`_), followed by the small MLP ``MLP_ls``
that maps the per-attribute scores to the local attribute prediction
``Ã_local``.
"""
import logging
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from zeromamba_mm.checkpoint import is_checkpoint_placeholder
from zeromamba_mm.registry import MODELS
from zeromamba_mm.utils.word_vectors import WordVectorSource, load_word_vectors


@MODELS.register_module()
class SemanticLocalProjection(BaseModule):
    """Semantic-aware Local Projection (SLP) of ZeroMamba.

    With ``vv = normalize(V)`` (one row per attribute) and
    ``F = normalize(x_pre)`` over channels (C × R regions)::

        M   = softmax_R(vv · W1 · F)   # (B, A, R) attention over regions
        F_p = M · Fᵀ                   # (B, A, C) attended features
        f_s[b, i] = Σ_c (vv · W2)[i, c] F_p[b, i, c]   # (B, A)
        Ã_local = mlp_local(f_s)   # Linear(A, h) → ReLU → Linear(h, A)

    The MLP is called ``mlp_local`` so that an optimizer ``paramwise_cfg``
    can address it alone (ZeroMamba trains it at lr 1e-4, the rest at 1e-3):
    ``paramwise_cfg=dict(custom_keys={'mlp_local': dict(lr_mult=0.1)})``.
    Its layers are indices 0 and 2, as the authors' ``clf_head2``.

    Args:
        num_attributes (int): Number of attributes A.
        in_channels (int): Channels C of the feature map. Defaults to 768
            (VMamba-S stage 4).
        w2v_dim (int): Word-vector dimension. Defaults to 300.
        word_vectors (str | Path | ndarray | Tensor, optional): ``V₀``, the
            (A, w2v_dim) attribute word vectors (a ``.npy``/``.pkl`` file or an
            array, see :func:`~zeromamba_mm.utils.load_word_vectors`). ``V``
            starts at ``normalize(V₀, dim=1)``. If None, ``V`` is learned from
            a random unit-row init (no semantic prior; the choice is logged),
            as with ``WORD_VECTORS_FROM_CHECKPOINT`` (set only by
            :func:`zeromamba_mm.checkpoint.config_for_loading`: V is then
            replaced by the checkpoint loaded next). Defaults to None.
        mlp_hidden (int): Hidden width of ``mlp_local``. Defaults to 512.
        init_cfg (dict, optional): Initialisation config. Defaults to None
            (``W1``, ``W2`` ~ N(0, 1) and PyTorch's Linear init, as the
            authors).
    """

    def __init__(self,
                 num_attributes: int,
                 in_channels: int = 768,
                 w2v_dim: int = 300,
                 word_vectors: Optional[WordVectorSource] = None,
                 mlp_hidden: int = 512,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.num_attributes = int(num_attributes)
        self.in_channels = int(in_channels)
        self.w2v_dim = int(w2v_dim)
        if is_checkpoint_placeholder(word_vectors):
            word_vectors = None  # V is replaced by the checkpoint loaded next
        if word_vectors is not None:
            v0 = torch.from_numpy(
                load_word_vectors(word_vectors, self.num_attributes,
                                  self.w2v_dim)).float()
            self.word_vector_init = True
            zero_rows = (v0.norm(dim=1) == 0).nonzero().flatten().tolist()
            if zero_rows:
                # normalize() keeps them at zero, as in the authors' code:
                # those attributes start with uniform attention, and their
                # first gradient step through normalize() is scaled by 1/eps.
                print_log(
                    f'SemanticLocalProjection: word vectors of attributes '
                    f'{zero_rows} are all zero; their rows of V start at '
                    'zero (as in the authors\' code).',
                    logger='current',
                    level=logging.WARNING)
        else:
            v0 = torch.randn(self.num_attributes, self.w2v_dim)
            self.word_vector_init = False
            print_log(
                'SemanticLocalProjection: no word vectors given, V is learned '
                'from a random init (set word_vectors=... for the ZeroMamba '
                'init; weights loaded later from a checkpoint replace it).',
                logger='current',
                level=logging.INFO)
        self.V = nn.Parameter(F.normalize(v0, dim=1))
        self.W1 = nn.Parameter(torch.randn(self.w2v_dim, self.in_channels))
        self.W2 = nn.Parameter(torch.randn(self.w2v_dim, self.in_channels))
        self.mlp_local = nn.Sequential(
            nn.Linear(self.num_attributes, mlp_hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(mlp_hidden, self.num_attributes, bias=False))

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                'SemanticLocalProjection expects a feature map (B, '
                f'{self.in_channels}, H, W) (in_channels={self.in_channels}); '
                f'got shape {tuple(x.shape)}.')

    def attend(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Dense attribute attention.

        Args:
            x (Tensor): Feature map ``x_pre`` (B, C, H, W).

        Returns:
            tuple[Tensor, Tensor]: The per-attribute scores ``f_s`` (B, A)
            and the attention maps ``M`` (B, A, H, W), each map summing to 1
            over its H×W regions.
        """
        self._check_input(x)
        b, _, h, w = x.shape
        vv = F.normalize(self.V, dim=1)  # (A, w2v_dim)
        feats = F.normalize(x.flatten(2), dim=1)  # (B, C, R)
        # Fold the word vectors into the projections first: (A, C) matrices
        # are much smaller than (B, w2v_dim, R) intermediates.
        query = vv @ self.W1  # (A, C)
        key = vv @ self.W2  # (A, C)
        attention = torch.softmax(
            torch.matmul(query, feats), dim=-1)  # (B, A, R)
        attended = torch.matmul(attention, feats.transpose(1, 2))  # (B, A, C)
        scores = (attended * key).sum(dim=-1)  # (B, A)
        return scores, attention.reshape(b, self.num_attributes, h, w)

    def forward(
        self,
        x: Tensor,
        return_attention: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Local attribute prediction ``Ã_local``.

        Args:
            x (Tensor): Feature map ``x_pre`` (B, C, H, W).
            return_attention (bool): Also return the attention maps
                (B, A, H, W). Defaults to False.

        Returns:
            Tensor | tuple[Tensor, Tensor]: ``Ã_local`` (B, A), and the
            attention maps when asked.
        """
        scores, attention = self.attend(x)
        local = self.mlp_local(scores)
        return (local, attention) if return_attention else local
