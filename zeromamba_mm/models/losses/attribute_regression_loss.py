"""Regression of predicted attribute vectors to class attribute vectors."""
import torch.nn.functional as F
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS

_CRITERIA = {'l1': F.l1_loss, 'mse': F.mse_loss}


@MODELS.register_module()
class AttributeRegressionLoss(nn.Module):
    """``loss_weight · mean |Â − a_y|`` (L1) or its squared (MSE) variant.

    ZeroMamba (`arXiv:2408.14868 <https://arxiv.org/abs/2408.14868>`_) adds
    this term with the L1 criterion and weight λ = 1.0 (CUB), 0.2 (SUN) and
    0.0 (AWA2) to the seen-class cross-entropy. The mean runs over the batch
    and the attribute dimensions, as ``torch.nn.functional.l1_loss`` does.

    Args:
        criterion (str): ``'l1'`` (ZeroMamba) or ``'mse'``. Defaults to 'l1'.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self, criterion: str = 'l1', loss_weight: float = 1.0):
        super().__init__()
        if criterion not in _CRITERIA:
            raise ValueError(f'criterion must be one of {sorted(_CRITERIA)}, '
                             f'but got {criterion!r}.')
        if not loss_weight >= 0:
            raise ValueError(
                f'loss_weight must be >= 0, but got {loss_weight!r}.')
        self.criterion = criterion
        self.loss_weight = float(loss_weight)

    def forward(self, pred_attributes: Tensor, target: Tensor) -> Tensor:
        """The weighted regression loss.

        Args:
            pred_attributes (Tensor): (B, A) predicted attributes ``Â``.
            target (Tensor): (B, A) attribute vectors of the ground truth
                (for soft labels, the label-weighted mixture).
        """
        return self.loss_weight * _CRITERIA[self.criterion](pred_attributes,
                                                            target)

    def extra_repr(self) -> str:
        return f'criterion={self.criterion!r}, loss_weight={self.loss_weight}'
