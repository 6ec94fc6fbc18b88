"""MFF: DRMN's multi-level feature fusion, as a neck for any backbone.

DRMN (Han et al., `arXiv:2405.03613 <https://arxiv.org/abs/2405.03613>`_)
enriches the last backbone stage with an earlier one, because the last stage
alone loses the low-level detail that fine attributes (a beak's shape) need.
Which stages are fused and how is not published; this neck fuses one earlier
stage into the last one with a residual branch whose batch norm starts at
zero, so training starts exactly from the last stage.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS

FUSE_MODES = ('add', 'concat')


@MODELS.register_module()
class MFFNeck(BaseModule):
    """Multi-level feature fusion (MFF) of DRMN.

    With ``S_l`` the last stage (B, C_l, H, W) and ``S_e`` the earlier stage
    to fuse (B, C_e, H', W'), ``P = AdaptiveAvgPool(S_e)`` to (H, W) (a 2×2
    average pool for ResNet layer3 → layer4 or VMamba stage 3 → 4)::

        fuse='add':    F = S_l + BN(Conv1x1(P))
        fuse='concat': F = S_l + BN(Conv1x1([S_l ; Conv1x1(P)]))

    The weight and bias of ``BN`` start at zero, so ``F = S_l`` at
    initialisation and the fusion branch grows from there (a choice of this
    plugin; the paper's fusion operator is unknown). The neck returns
    ``(F, )``, a one-element tuple as mmpretrain necks do.

    Args:
        in_channels (Sequence[int]): Channels of the feature maps the backbone
            returns, in order, e.g. ``(1024, 2048)`` for mmpretrain's ResNet
            with ``out_indices=(2, 3)``.
        fuse_index (int): Position in ``in_channels`` of the stage fused into
            the last one. Defaults to -2 (the penultimate map).
        fuse (str): ``'add'`` or ``'concat'``. Defaults to ``'add'``.
        use_mff (bool): Ablation switch. False returns the last map alone
            (``F = S_l``) and builds no fusion layers. Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 fuse_index: int = -2,
                 fuse: str = 'add',
                 use_mff: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int):
            in_channels = (in_channels, )
        self.in_channels = tuple(int(c) for c in in_channels)
        if fuse not in FUSE_MODES:
            raise ValueError(
                f'MFFNeck fuse must be one of {FUSE_MODES}, got {fuse!r}.')
        self.fuse = fuse
        self.use_mff = bool(use_mff)
        num = len(self.in_channels)
        if self.use_mff:
            if num < 2:
                raise ValueError(
                    'MFFNeck needs at least two stages to fuse: give '
                    'in_channels of every map the backbone returns (and set '
                    'the backbone\'s out_indices accordingly, e.g. '
                    'out_indices=(2, 3) for ResNet); got in_channels='
                    f'{self.in_channels}.')
            if not -num <= fuse_index < num or fuse_index % num == num - 1:
                raise ValueError(
                    f'MFFNeck fuse_index={fuse_index} must point to a map '
                    f'before the last one of in_channels={self.in_channels}.')
        self.fuse_index = fuse_index % num
        self.out_channels = self.in_channels[-1]
        if not self.use_mff:
            return
        early, last = self.in_channels[self.fuse_index], self.out_channels
        if fuse == 'add':
            self.proj = nn.Conv2d(early, last, 1, bias=False)
        else:
            self.proj = nn.Conv2d(early, last, 1, bias=False)
            self.mix = nn.Conv2d(2 * last, last, 1, bias=False)
        self.norm = nn.BatchNorm2d(last)
        self._zero_fusion()

    def _zero_fusion(self) -> None:
        # Zero at construction (no init_weights override, so that weights
        # loaded through init_cfg are kept): F = S_l until the BN learns.
        nn.init.zeros_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def _check_inputs(self, feats: Sequence[Tensor]) -> None:
        if not isinstance(feats, (tuple, list)):
            raise TypeError('MFFNeck expects the tuple of backbone feature '
                            f'maps, got {type(feats).__name__}.')
        got = tuple(int(f.shape[1]) for f in feats)
        if got != self.in_channels:
            raise ValueError(
                f'MFFNeck was built for {len(self.in_channels)} feature maps '
                f'with channels {self.in_channels}, but the backbone returned '
                f'{len(feats)} with channels {got}: set the backbone\'s '
                'out_indices to the stages to fuse (e.g. out_indices=(2, 3) '
                'for ResNet layer3 and layer4, or for VMamba stages 3 and 4) '
                'and in_channels to their channels.')

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor]:
        """Fuse the earlier map into the last one.

        Args:
            feats (tuple[Tensor]): Backbone maps, one per ``in_channels``.

        Returns:
            tuple[Tensor]: ``(F, )`` of shape (B, C_l, H, W).
        """
        self._check_inputs(feats)
        last = feats[-1]
        if not self.use_mff:
            return (last, )
        pooled = F.adaptive_avg_pool2d(feats[self.fuse_index], last.shape[-2:])
        branch = self.proj(pooled)
        if self.fuse == 'concat':
            branch = self.mix(torch.cat([last, branch], dim=1))
        return (last + self.norm(branch), )
