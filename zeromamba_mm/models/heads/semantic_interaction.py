"""SIT: DRMN's Semantic Interaction Transformer (training only).

DRMN (Han et al., `arXiv:2405.03613 <https://arxiv.org/abs/2405.03613>`_)
refines the attribute features ``H`` (B, A, C) of a batch with a post-LN
Transformer encoder "among images" during training and drops it at test
time. Its size and attention axis are not published; the defaults follow
BatchFormer (Hou et al., CVPR 2022), the training-only
batch transformer it matches: one layer, 4 heads, feed-forward width C,
dropout 0.5, attention across the images of the batch.
"""
from typing import List, Optional, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS

SIT_AXES = ('batch', 'attr')


@MODELS.register_module()
class SemanticInteractionTransformer(BaseModule):
    """Post-LN Transformer encoder over the attribute features of a batch.

    Each layer computes ``H' = LN(MHSA(H) + H)``, ``Ĥ = LN(MLP(H') + H')``
    (PyTorch's ``TransformerEncoderLayer`` with ``norm_first=False``).

    - ``axis='batch'``: for each attribute, its B features (one per image)
      attend to each other (sequence length B): the refined feature of an
      image depends on the other images of the batch, and permuting the
      images permutes the output the same way.
    - ``axis='attr'``: within each image, its A attribute features attend to
      each other (sequence length A); images stay independent.

    In ``eval()`` the module is the identity (SIT is removed at test time).

    Args:
        channels (int): Feature channels C.
        num_layers (int): Encoder layers. Defaults to 1.
        num_heads (int): Attention heads (must divide C). Defaults to 4.
        ffn_ratio (float): Feed-forward width as a multiple of C. Defaults
            to 1.0.
        dropout (float): Dropout of attention and MLP. Defaults to 0.5.
        axis (str): ``'batch'`` or ``'attr'``. Defaults to ``'batch'``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 channels: int,
                 num_layers: int = 1,
                 num_heads: int = 4,
                 ffn_ratio: float = 1.0,
                 dropout: float = 0.5,
                 axis: str = 'batch',
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if axis not in SIT_AXES:
            raise ValueError(
                f'sit_axis must be one of {SIT_AXES}, got {axis!r}.')
        if channels % num_heads:
            raise ValueError(
                f'SIT num_heads={num_heads} must divide the feature channels '
                f'{channels}.')
        if num_layers < 1:
            raise ValueError(f'SIT num_layers must be >= 1, got {num_layers}.')
        self.axis = axis
        # batch_first=False reads (B, A, C) as (sequence=B, batch=A, C).
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(
                channels,
                num_heads,
                dim_feedforward=max(1, int(round(channels * ffn_ratio))),
                dropout=dropout,
                batch_first=(axis == 'attr'),
                norm_first=False) for _ in range(num_layers)
        ])

    def forward(self, features: Tensor) -> Tensor:
        """Refine attribute features (B, A, C); identity in ``eval()``."""
        if not self.training:
            return features
        for layer in self.layers:
            features = layer(features)
        return features
