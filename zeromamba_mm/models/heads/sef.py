"""SeF: ZeroMamba's Semantic Fusion."""
from typing import Optional, Union

from mmengine.model import BaseModule
from torch import Tensor

from zeromamba_mm.registry import MODELS


@MODELS.register_module()
class SemanticFusion(BaseModule):
    """Fuse the global and local attribute predictions.

    ``Â = Ã_global + Ã_local / max(‖Ã_local‖₂, eps)`` (ZeroMamba,
    `arXiv:2408.14868 <https://arxiv.org/abs/2408.14868>`_): the local branch
    contributes a unit-norm direction, the global branch keeps its scale.

    Args:
        eps (float): Lower bound of the L2 norm. The authors divide by the
            bare norm, which gives NaN/inf when ``Ã_local`` is zero (e.g. all
            ReLU units of ``MLP_ls`` off); ``eps=0`` reproduces that exactly.
            Defaults to 1e-12 (as ``torch.nn.functional.normalize``).
        normalize_local (bool): L2-normalise ``Ã_local``. The authors' test
            script has a switch (``norm_feat_pre``) that can turn it off;
            training always normalises. Defaults to True.
        init_cfg (dict, optional): Unused (no parameters).
    """

    def __init__(self,
                 eps: float = 1e-12,
                 normalize_local: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        if eps < 0:
            raise ValueError(f'SemanticFusion eps must be >= 0, got {eps}.')
        self.eps = float(eps)
        self.normalize_local = normalize_local

    def forward(self, global_pred: Tensor, local_pred: Tensor) -> Tensor:
        """``Â`` (B, A) from ``Ã_global`` and ``Ã_local`` (both (B, A))."""
        if global_pred.shape != local_pred.shape:
            raise ValueError(
                'SemanticFusion needs global and local predictions of the '
                f'same shape; got {tuple(global_pred.shape)} and '
                f'{tuple(local_pred.shape)}.')
        if self.normalize_local:
            norm = local_pred.norm(p=2, dim=1, keepdim=True)
            if self.eps > 0:
                norm = norm.clamp_min(self.eps)
            local_pred = local_pred / norm
        return global_pred + local_pred
