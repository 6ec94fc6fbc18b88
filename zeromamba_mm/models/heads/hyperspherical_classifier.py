"""Scaled-cosine (hyperspherical) classifier over class attribute vectors."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS


@MODELS.register_module()
class HypersphericalClassifier(BaseModule):
    """``o_ic = s · cos(e_i, z_c)`` for every class ``c``.

    DRMN (Han et al., `arXiv:2405.03613 <https://arxiv.org/abs/2405.03613>`_)
    scores an image's attribute scores ``e_i`` against each class attribute
    vector ``z_c`` on the hypersphere, ``(γ z_c/‖z_c‖)ᵀ(γ e_i/‖e_i‖)``; here
    ``s = γ²`` is the parameter. Its value is not published; GEM-ZSL (Liu et
    al., CVPR 2021) uses 20 (CUB, AWA2) and 25 (SUN) in the same score space.

    Args:
        scale (float): The scale ``s`` (> 0). Defaults to 20.
        learnable_scale (bool): Learn ``s`` (initialised at ``scale``).
            Defaults to False.
        eps (float): Epsilon of the L2 normalisations. Defaults to 1e-12.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 scale: float = 20.0,
                 learnable_scale: bool = False,
                 eps: float = 1e-12,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if not scale > 0:
            raise ValueError(f'scale must be > 0, got {scale}.')
        self.eps = float(eps)
        value = torch.tensor(float(scale))
        if learnable_scale:
            self.scale = nn.Parameter(value)
        else:
            self.register_buffer('scale', value, persistent=False)

    def forward(self, scores: Tensor, class_attributes: Tensor) -> Tensor:
        """Class logits (B, C).

        Args:
            scores (Tensor): Attribute scores ``e`` (B, A).
            class_attributes (Tensor): Class attribute vectors ``Z`` (C, A).
        """
        return self.scale * (
            F.normalize(scores, dim=-1, eps=self.eps) @ F.normalize(
                class_attributes, dim=-1, eps=self.eps).t())
