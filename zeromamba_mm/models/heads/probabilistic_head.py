"""A PDML-inspired probabilistic region head (not PDML itself).

PDML (`arXiv:2211.08349 <https://arxiv.org/abs/2211.08349>`_) learns a
distribution for each pixel of a hyperspectral patch and treats each pixel
as a training sample; neither its equations nor its code are public. This
head transfers the idea to ZSL under our own design: each region of the
backbone's last stage map gets a diagonal Gaussian in attribute space and is
a training sample with the image's label.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS
from ..losses.gaussian import kl_to_standard_normal, reparameterize
from .attribute_head import AttributeHead
from .head_wrapper import HeadWrapper, region_map


@MODELS.register_module()
class ProbabilisticRegionHead(HeadWrapper):
    """PDML-inspired per-region Gaussians trained beside an attribute head.

    For each region ``r`` of the (B, C, H, W) map with pooled feature ``x̄``:
    ``μ_r = W_μ·[x_r; x̄]`` and ``log σ²_r = W_σ·[x_r; x̄]`` (A-dim). The
    region losses average the wrapped head's loss terms (seen-class CE on
    ``z·aᵀ``, attribute regression of ``z``) over K reparameterised samples
    ``z = μ_r + σ_r·ε`` and all regions, plus ``kl_weight`` times the mean
    ``KL(N(μ_r, σ_r²) ‖ N(0, I))``. Sampling makes the CE depend on ``σ``
    (an additive variance term such as the 2-Wasserstein ``‖σ‖²`` against
    Dirac prototypes is a per-image constant that softmax cancels, so it is
    not used). The wrapped head's own loss and prediction are unchanged.

    Args:
        head (dict): Config of the wrapped attribute head.
        in_channels (int): Channels C of the region map.
        num_samples (int): Samples K per region. Defaults to 4.
        region_weight (float): Weight of the region losses. Defaults to 1.0.
        kl_weight (float): Weight of the KL term. Defaults to 1e-3.
        init_log_var (float): Initial log-variance (bias of ``W_σ``).
            Defaults to -4.0.
        feature_index (int, optional): Index of the region map in the
            features (default: the first 4-D tensor).
        init_cfg (dict, optional): Init config of the Gaussian branch.
    """

    training_only_prefixes = ('mean_proj.', 'log_var_proj.')

    def __init__(self,
                 head: Union[dict, AttributeHead],
                 in_channels: int,
                 num_samples: int = 4,
                 region_weight: float = 1.0,
                 kl_weight: float = 1e-3,
                 init_log_var: float = -4.0,
                 feature_index: Optional[int] = None,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(head, init_cfg=init_cfg)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(
                f'num_samples must be an int >= 1; got {num_samples!r}.')
        for name, value in (('region_weight', region_weight),
                            ('kl_weight', kl_weight)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1e6):
                raise ValueError(
                    f'{name} must be a finite number >= 0; got {value!r}.')
        self.in_channels = int(in_channels)
        self.num_samples = num_samples
        self.region_weight = float(region_weight)
        self.kl_weight = float(kl_weight)
        self.feature_index = feature_index
        self.mean_proj = nn.Linear(2 * self.in_channels, self.num_attributes)
        self.log_var_proj = nn.Linear(2 * self.in_channels,
                                      self.num_attributes)
        self.init_log_var = float(init_log_var)
        nn.init.zeros_(self.log_var_proj.weight)
        nn.init.constant_(self.log_var_proj.bias, self.init_log_var)

    def region_gaussians(self,
                         feats: Tuple[Tensor, ...]) -> Tuple[Tensor, Tensor]:
        """Means and log-variances (B, R, A) of the R = H·W regions."""
        feat = region_map(feats, self.in_channels, self.feature_index,
                          type(self).__name__)
        regions = feat.flatten(2).transpose(1, 2)  # (B, R, C)
        pooled = regions.mean(dim=1, keepdim=True).expand_as(regions)
        joint = torch.cat([regions, pooled], dim=-1)
        return self.mean_proj(joint), self.log_var_proj(joint)

    def region_losses(self,
                      mean: Tensor,
                      log_var: Tensor,
                      data_samples: List[DataSample],
                      noise: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Sampled region losses for given Gaussians (B, R, A).

        Args:
            mean (Tensor): (B, R, A) means.
            log_var (Tensor): (B, R, A) log-variances.
            data_samples (list[DataSample]): The image labels.
            noise (Tensor, optional): (K, B, R, A) fixed ``ε`` (tests).
        """
        batch, regions, _ = mean.shape
        target, attr_target = self.seen_targets(data_samples, mean.device)
        samples = reparameterize(mean, log_var, self.num_samples, noise)
        num = samples.shape[0] * regions
        # (K, B, R, A) -> (B·K·R, A): every region sample is a training
        # sample with its image's label.
        flat = samples.permute(1, 0, 2, 3).reshape(batch * num, -1)
        scores = self.base.class_scores(flat, self.seen_attributes)
        losses = {
            'loss_region_ce':
            self.region_weight * self.loss_module(
                scores, target.repeat_interleave(num, dim=0))
        }
        if self.attr_loss_module is not None:
            losses['loss_region_attr'] = (
                self.region_weight * self.attr_loss_module(
                    flat, attr_target.repeat_interleave(num, dim=0)))
        losses['loss_region_kl'] = self.kl_weight * kl_to_standard_normal(
            mean, log_var).mean()
        return losses

    def loss(self, feats: Tuple[Tensor, ...],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The wrapped head's losses plus the sampled region losses."""
        losses = self.base.loss(feats, data_samples)
        mean, log_var = self.region_gaussians(feats)
        region = self.region_losses(mean, log_var, data_samples)
        clash = sorted(set(region) & set(losses))
        if clash:
            raise KeyError(f'The wrapped head already returns {clash}.')
        losses.update(region)
        losses['pdml_log_var'] = log_var.detach().mean()
        return losses
