"""Diagonal-Gaussian pieces of the PDML-inspired probabilistic head.

PDML (`arXiv:2211.08349 <https://arxiv.org/abs/2211.08349>`_) models each
pixel of a patch by a distribution and compares distributions with a
probabilistic metric; its body and code are not public. These are the
standard diagonal-Gaussian tools our PDML-inspired head uses: the
reparameterisation trick, the KL divergence to the standard normal (as in
VIB / HIB practice) and the closed-form squared 2-Wasserstein distance.
"""
from typing import Optional

import torch
from torch import Tensor


def reparameterize(mean: Tensor,
                   log_var: Tensor,
                   num_samples: int,
                   noise: Optional[Tensor] = None) -> Tensor:
    """``z = μ + σ·ε`` with ``σ = exp(½ log σ²)``, ``ε ~ N(0, I)``.

    Args:
        mean (Tensor): (..., A) means.
        log_var (Tensor): (..., A) log-variances.
        num_samples (int): Number of samples K.
        noise (Tensor, optional): (K, ..., A) fixed ``ε`` (for tests).

    Returns:
        Tensor: (K, ..., A) samples.
    """
    if noise is None:
        noise = torch.randn((num_samples, ) + tuple(mean.shape),
                            dtype=mean.dtype,
                            device=mean.device)
    return mean.unsqueeze(0) + torch.exp(0.5 * log_var).unsqueeze(0) * noise


def kl_to_standard_normal(mean: Tensor, log_var: Tensor) -> Tensor:
    """``KL(N(μ, σ²) ‖ N(0, I))`` summed over the last dimension.

    ``½ Σ (μ² + σ² − log σ² − 1)``.
    """
    return 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(-1)


def wasserstein2_sq_diag(mean1: Tensor, std1: Tensor, mean2: Tensor,
                         std2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance of diagonal Gaussians.

    ``‖μ₁ − μ₂‖² + ‖σ₁ − σ₂‖²`` summed over the last dimension. Against a
    Dirac prototype (``σ₂ = 0``) the variance enters additively, which a
    softmax cancels: the head therefore does not train with it.
    """
    return ((mean1 - mean2).pow(2) + (std1 - std2).pow(2)).sum(-1)
