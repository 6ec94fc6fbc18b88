"""Self-calibration loss against seen-class bias (DAZLE's form)."""
import torch
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS


@MODELS.register_module()
class SelfCalibrationLoss(nn.Module):
    """``loss_weight · −log( mean_b Σ_{u ∈ unseen} softmax(o_b)_u )``.

    The self-calibration term of DAZLE (Huynh & Elhamifar, "Fine-Grained
    Generalized Zero-Shot Learning via Dense Attribute-Based Attention",
    CVPR 2020), used by MSDN,
    TransZero and (per a secondary summary) DRMN
    (`arXiv:2405.03613 <https://arxiv.org/abs/2405.03613>`_): on seen-class
    training images it rewards probability mass on the unseen classes, which
    counters the seen-class bias of the cross-entropy. The softmax runs over
    all C classes; the loss falls as the unseen mass rises.

    Args:
        loss_weight (float): Weight λ_cal (>= 0). Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        if not loss_weight >= 0:
            raise ValueError(
                f'loss_weight must be >= 0, but got {loss_weight!r}.')
        self.loss_weight = float(loss_weight)

    def forward(self, scores: Tensor, unseen_classes: Tensor) -> Tensor:
        """The weighted loss.

        Args:
            scores (Tensor): (B, C) logits over all classes.
            unseen_classes (Tensor): Ids (long) or a (C,) boolean mask of the
                unseen classes; must select at least one class.

        Returns:
            Tensor: The scalar loss.
        """
        if scores.dim() != 2:
            raise ValueError('SelfCalibrationLoss expects (B, C) scores, got '
                             f'shape {tuple(scores.shape)}.')
        if unseen_classes.dtype == torch.bool:
            if unseen_classes.shape != scores.shape[1:]:
                raise ValueError(
                    f'The unseen mask has shape {tuple(unseen_classes.shape)}'
                    f' but the scores have {scores.shape[1]} classes.')
            unseen_classes = unseen_classes.nonzero().flatten()
        if unseen_classes.numel() == 0:
            raise ValueError('SelfCalibrationLoss needs at least one unseen '
                             'class (the mass it rewards).')
        log_prob = torch.log_softmax(scores, dim=1)
        # log Σ_u p_u, computed in log space to stay finite when p_u ≈ 0.
        log_mass = torch.logsumexp(log_prob[:, unseen_classes], dim=1)
        log_mean = torch.logsumexp(
            log_mass, dim=0) - torch.log(
                torch.tensor(float(scores.shape[0]), device=scores.device))
        return -self.loss_weight * log_mean
