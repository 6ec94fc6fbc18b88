"""Orthonormal 2-D DCT by cached matrices and GlobalMamba's frequency levels.

GlobalMamba: "Global Image Serialization for Vision Mamba", Wang, Zheng et
al. (https://arxiv.org/abs/2410.10316). The image goes to the frequency
domain, is split into K frequency levels, and each level is transformed back
to the spatial domain. The transforms here are plain matrix products with
the orthonormal DCT-II matrix (no FFT package): ``X = M_H x M_W^T`` and
``x = M_H^T X M_W``.
"""
from typing import Dict, List, Tuple

import torch
from torch import Tensor

#: Shapes of the low-pass region in the coefficient plane.
MASK_SHAPES = ('triangle', 'square', 'radial')
#: 'lowpass': nested (cumulative) levels, as the released code; 'band': the
#: disjoint differences of consecutive levels (they sum to the image).
LEVEL_MODES = ('lowpass', 'band')

_MATRIX_CACHE: Dict[Tuple[int, torch.dtype, str], Tensor] = {}


def dct_matrix(n: int,
               dtype: torch.dtype = torch.float32,
               device='cpu') -> Tensor:
    """The orthonormal DCT-II matrix M (n x n), ``M[k, i] = a_k cos(pi (2i +
    1) k / 2n)`` with ``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)``. Cached per
    size, dtype and device; do not modify the result in place.

    Args:
        n (int): Signal length.
        dtype (torch.dtype): Dtype of the result.
        device: Device of the result.

    Returns:
        Tensor: (n, n), orthogonal: ``M @ M.T == I``.
    """
    if n < 1:
        raise ValueError(f'dct_matrix: n must be >= 1, got {n}')
    key = (int(n), dtype, str(device))
    cached = _MATRIX_CACHE.get(key)
    if cached is None:
        k = torch.arange(n, dtype=torch.float64)[:, None]
        i = torch.arange(n, dtype=torch.float64)[None, :]
        mat = torch.cos(torch.pi * (2 * i + 1) * k / (2 * n))
        mat *= (2.0 / n)**0.5
        mat[0] /= 2**0.5
        cached = mat.to(dtype=dtype, device=device)
        _MATRIX_CACHE[key] = cached
    return cached


def dct_2d(x: Tensor) -> Tensor:
    """Orthonormal 2-D DCT-II over the last two axes (scipy's
    ``dctn(x, axes=(-2, -1), norm='ortho')``)."""
    mh = dct_matrix(x.shape[-2], x.dtype, x.device)
    mw = dct_matrix(x.shape[-1], x.dtype, x.device)
    return mh @ x @ mw.T


def idct_2d(x: Tensor) -> Tensor:
    """Inverse of :func:`dct_2d` (scipy's ``idctn(norm='ortho')``)."""
    mh = dct_matrix(x.shape[-2], x.dtype, x.device)
    mw = dct_matrix(x.shape[-1], x.dtype, x.device)
    return mh.T @ x @ mw


def lowpass_masks(height: int,
                  width: int,
                  num_levels: int = 4,
                  shape: str = 'triangle') -> Tensor:
    """Nested low-pass masks in the DCT coefficient plane (DC top-left).

    Level k < K-1 keeps the coefficients (u, v) with ``u < s_h``, ``v < s_w``
    inside the shape, where ``s_h = H / 2^(K-2-k)`` (and ``s_w`` for W); the
    last level keeps everything. ``'triangle'`` is the released code's
    anti-diagonal corner ``(u + 1/2)/s_h + (v + 1/2)/s_w <= 1`` (for a square
    grid: ``u + v <= s - 1``, ``s(s+1)/2`` coefficients: 1596, 6328, 25200,
    50176 at 224 with K = 4); ``'square'`` keeps the whole ``s_h x s_w``
    block; ``'radial'`` the quarter ellipse ``((u+1/2)/s_h)^2 + ((v+1/2)/
    s_w)^2 <= 1``.

    Args:
        height (int): H of the image.
        width (int): W of the image.
        num_levels (int): K >= 1.
        shape (str): One of :data:`MASK_SHAPES`.

    Returns:
        Tensor: (K, H, W) bool.
    """
    if shape not in MASK_SHAPES:
        raise ValueError(f'Unknown mask shape {shape!r}; choose one of '
                         f'{MASK_SHAPES}')
    if num_levels < 1:
        raise ValueError(f'num_levels must be >= 1, got {num_levels}')
    u = torch.arange(height, dtype=torch.float64)[:, None] + 0.5
    v = torch.arange(width, dtype=torch.float64)[None, :] + 0.5
    masks = [
        _inside(u, v, height, width, k, num_levels, shape)
        for k in range(num_levels - 1)
    ]
    masks.append(torch.ones(height, width, dtype=torch.bool))
    return torch.stack(masks)


def _inside(u, v, height: int, width: int, level: int, num_levels: int,
            shape: str):
    """Whether the coefficient at (u, v) (centres: index + 1/2; tensors or
    floats) lies in the mask of prefix ``level`` < K-1 (see
    :func:`lowpass_masks`)."""
    div = 2.0**(num_levels - 2 - level)
    s_h, s_w = height / div, width / div
    inside = (u < s_h) & (v < s_w)
    if shape == 'triangle':
        inside &= u / s_h + v / s_w <= 1.0
    elif shape == 'radial':
        inside &= (u / s_h)**2 + (v / s_w)**2 <= 1.0
    return inside


def lowpass_support(height: int, width: int, level: int, num_levels: int,
                    shape: str) -> Tuple[int, int]:
    """Rows and columns of the top-left block that holds mask ``level``
    of :func:`lowpass_masks` (the whole plane for the last level).

    Computed from the mask rule in plain Python, not from a mask tensor, so
    that it stays a constant while a model is traced or exported. Every
    mask is closed towards the DC coefficient, so its extent is that of its
    first column and first row.

    Returns:
        tuple[int, int]: ``(rows, cols)``, each at least 1.
    """
    if level >= num_levels - 1:
        return height, width
    rows = sum(
        bool(_inside(u + 0.5, 0.5, height, width, level, num_levels, shape))
        for u in range(height))
    cols = sum(
        bool(_inside(0.5, v + 0.5, height, width, level, num_levels, shape))
        for v in range(width))
    return max(rows, 1), max(cols, 1)


class DCTLevels(torch.nn.Module):
    """Split images into K frequency levels in the spatial domain.

    ``L_k = IDCT2(mask_k * DCT2(x))``: with ``mode='lowpass'`` the levels are
    progressively sharper images and the last one is ``x`` (GlobalMamba's
    code); with ``mode='band'`` level k keeps ``mask_k`` minus ``mask_{k-1}``
    and the levels sum to ``x``. The masks are cached per image size on the
    input's device; the module has no parameters and no state in
    checkpoints.

    Args:
        num_levels (int): K. Defaults to 4 (the released code).
        mask_shape (str): One of :data:`MASK_SHAPES`. Defaults to
            ``'triangle'``.
        mode (str): One of :data:`LEVEL_MODES`. Defaults to ``'lowpass'``.
    """

    def __init__(self,
                 num_levels: int = 4,
                 mask_shape: str = 'triangle',
                 mode: str = 'lowpass') -> None:
        super().__init__()
        if mode not in LEVEL_MODES:
            raise ValueError(f'Unknown DCT level mode {mode!r}; choose one '
                             f'of {LEVEL_MODES}')
        lowpass_masks(2, 2, num_levels, mask_shape)  # validates the rest
        self.num_levels = int(num_levels)
        self.mask_shape = mask_shape
        self.mode = mode
        self._masks: Dict[Tuple[int, int, torch.dtype, str], Tensor] = {}

    def masks(self, height: int, width: int, dtype: torch.dtype,
              device) -> Tensor:
        """(K, H, W) masks of this mode (band masks are the differences)."""
        key = (height, width, dtype, str(device))
        if key not in self._masks:
            m = lowpass_masks(height, width, self.num_levels,
                              self.mask_shape).to(torch.float64)
            if self.mode == 'band':
                m = torch.cat([m[:1], m[1:] - m[:-1]]).clamp(min=0)
            self._masks[key] = m.to(dtype=dtype, device=device)
        return self._masks[key]

    def forward(self, x: Tensor) -> List[Tensor]:
        """Args:
            x (Tensor): (..., H, W) images.

        Returns:
            list[Tensor]: K tensors of ``x``'s shape, low to high frequency.
        """
        height, width = x.shape[-2:]
        masks = self.masks(height, width, x.dtype, x.device)
        coeffs = dct_2d(x).unsqueeze(-3)  # (..., 1, H, W)
        levels = idct_2d(coeffs * masks)  # (..., K, H, W)
        return list(levels.unbind(-3))
