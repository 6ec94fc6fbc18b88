"""GlobalMamba's frequency serialization of an image into causal tokens.

GlobalMamba: "Global Image Serialization for Vision Mamba", Wang, Zheng et
al. (https://arxiv.org/abs/2410.10316). As the released code does it: the
image is split into K low-pass levels by a global 2-D DCT
(:class:`~zeromamba_mm.models.utils.dct.DCTLevels`), every level goes
through the *same* patch embedding, the level-k map is resized (bilinear)
to a ``g_k x g_k`` grid with ``g_k = floor(H / 2^(K-1-k) / p)``, and the
grids are flattened row-major and concatenated low to high frequency. At
224 / 16 with K = 4 the grids are 1, 3, 7, 14: 1 + 9 + 49 + 196 = 255
tokens, the last 196 being the ordinary patch tokens of the image.
"""
from typing import Callable, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..utils.dct import DCTLevels

#: Grid resize modes of :func:`torch.nn.functional.interpolate` accepted.
RESIZE_MODES = ('bilinear', 'area', 'nearest', 'bicubic')


class FrequencySerialization(nn.Module):
    """Low-to-high frequency token sequence of an image.

    Args:
        patch_size (int): p of the patch embedding.
        num_levels (int): K. Defaults to 4.
        mask_shape (str): ``'triangle'`` (code), ``'square'`` or
            ``'radial'``.
        mode (str): ``'lowpass'`` (nested levels, code) or ``'band'``
            (disjoint bands that sum to the image; our option).
        resize_mode (str): How each level's patch map is resized to its
            grid. ``'bilinear'`` (align_corners=False) as the code.
    """

    def __init__(self,
                 patch_size: int,
                 num_levels: int = 4,
                 mask_shape: str = 'triangle',
                 mode: str = 'lowpass',
                 resize_mode: str = 'bilinear') -> None:
        super().__init__()
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f'Unknown resize_mode {resize_mode!r}; choose '
                             f'one of {RESIZE_MODES}')
        self.patch_size = int(patch_size)
        self.num_levels = int(num_levels)
        self.resize_mode = resize_mode
        self.levels = DCTLevels(num_levels, mask_shape, mode)

    def level_grids(self, height: int, width: int) -> List[Tuple[int, int]]:
        """Token grids (g_h, g_w) of the K levels, low to high.

        Args:
            height (int): Image H, a multiple of the patch size.
            width (int): Image W, a multiple of the patch size.
        """
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f'FrequencySerialization: image size {height}x{width} is not '
                f'divisible by the patch size {p}; resize or pad the input '
                f'to a multiple of {p}.')
        grids = []
        for k in range(self.num_levels):
            div = 2**(self.num_levels - 1 - k)
            grids.append((max(1,
                              height // div // p), max(1, width // div // p)))
        return grids

    def num_tokens(self, height: int, width: int) -> int:
        """Length of the sequence for an image of this size."""
        return sum(h * w for h, w in self.level_grids(height, width))

    def forward(
        self, x: Tensor,
        embed: Callable[[Tensor],
                        Tensor]) -> Tuple[Tensor, List[Tuple[int, int]]]:
        """Serialize images.

        Args:
            x (Tensor): (B, C, H, W) images.
            embed (callable): The shared patch embedding, (N, C, H, W) ->
                (N, D, H/p, W/p).

        Returns:
            tuple: Tokens (B, L, D) low to high frequency, and the level
            grids.
        """
        batch = x.shape[0]
        grids = self.level_grids(*x.shape[-2:])
        levels = self.levels(x)  # K x (B, C, H, W)
        # One call of the shared embedding for all levels.
        maps = embed(torch.cat(levels, dim=0))
        tokens = []
        for k, (gh, gw) in enumerate(grids):
            m = maps[k * batch:(k + 1) * batch]
            if m.shape[-2:] != (gh, gw):
                kwargs = dict(align_corners=False) if self.resize_mode in (
                    'bilinear', 'bicubic') else {}
                m = F.interpolate(
                    m, size=(gh, gw), mode=self.resize_mode, **kwargs)
            tokens.append(m.flatten(2).transpose(1, 2))
        return torch.cat(tokens, dim=1), grids
