"""IDML's Mixup twin pass as a training signal of the classifier."""
from typing import Dict, List, Tuple

import numpy as np
import torch
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS

_MODES = ('mixup', 'cutmix')


def mix_batch(inputs: Tensor, lam: float, perm: Tensor,
              mode: str = 'mixup') -> Tuple[Tensor, float]:
    """Mix a batch with its permutation.

    Args:
        inputs (Tensor): (B, C, H, W) images.
        lam (float): Mixing weight of the original images.
        perm (Tensor): (B,) permutation of the batch.
        mode (str): ``'mixup'`` (``λx + (1−λ)x[perm]``) or ``'cutmix'`` (a
            box of area ``1 − λ`` pasted from ``x[perm]``).

    Returns:
        tuple[Tensor, float]: The mixed batch and the effective ``λ`` (for
        CutMix, the area kept after clipping the box to the image).
    """
    if mode == 'mixup':
        return lam * inputs + (1 - lam) * inputs[perm], lam
    height, width = inputs.shape[-2:]
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = np.random.randint(height), np.random.randint(width)
    y1, y2 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x1, x2 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    mixed = inputs.clone()
    mixed[..., y1:y2, x1:x2] = inputs[perm][..., y1:y2, x1:x2]
    return mixed, 1.0 - float((y2 - y1) * (x2 - x1)) / (height * width)


@MODELS.register_module()
class MixupTwinSignal(nn.Module):
    """A second, mixed pass of the batch, as IDML trains.

    IDML (`arXiv:2309.09982 <https://arxiv.org/abs/2309.09982>`_) adds to
    the clean loss ``L(x)`` (the head's own loss, computed by the
    classifier) the loss of a mixed batch ``x̃ = λx + (1−λ)x[perm]``,
    ``λ ~ Beta(α, α)``, against both labels::

        L(x) + w·[λ·L(x̃, y_a) + (1−λ)·L(x̃, y_b)]

    ``L`` is the head's full loss (seen-class CE on its training scores —
    introspective ones for :class:`~zeromamba_mm.models.IntrospectiveHead`
    — and its attribute regression), so the regression term is mixed the
    same way. Mixed images let the uncertainty branch learn: one embedding
    cannot match two class prototypes, only a larger uncertainty relaxes
    both. ``mode='cutmix'`` pastes a box instead (IDML's classification
    recipe uses CutMix in one pass: that is mmpretrain's
    ``train_cfg=dict(augments=dict(type='CutMix', alpha=1.0))``, which the
    attribute heads support through soft labels).

    Args:
        alpha (float): Beta distribution parameter. Defaults to 1.0.
        mode (str): ``'mixup'`` or ``'cutmix'``. Defaults to 'mixup'.
        loss_weight (float): Weight ``w`` of the mixed loss. Defaults to 1.
        prefix (str): Prefix of the returned loss names. Defaults to
            'loss_mix'.
    """

    def __init__(self,
                 alpha: float = 1.0,
                 mode: str = 'mixup',
                 loss_weight: float = 1.0,
                 prefix: str = 'loss_mix'):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}; got {mode!r}.')
        if not (isinstance(alpha, (int, float)) and 0 < alpha < 1e6):
            raise ValueError(f'alpha must be a finite number > 0; got '
                             f'{alpha!r}.')
        if not (isinstance(loss_weight, (int, float))
                and 0 <= loss_weight < 1e6):
            raise ValueError('loss_weight must be a finite number >= 0; got '
                             f'{loss_weight!r}.')
        if not prefix.startswith('loss'):
            raise ValueError(f"prefix must start with 'loss' (summed losses)"
                             f'; got {prefix!r}.')
        self.alpha = float(alpha)
        self.mode = mode
        self.loss_weight = float(loss_weight)
        self.prefix = prefix

    @staticmethod
    def relabel(data_samples: List[DataSample],
                labels: Tensor) -> List[DataSample]:
        """New samples with hard labels ``labels`` (no soft labels)."""
        out = []
        for sample, label in zip(data_samples, labels):
            new = DataSample(metainfo=sample.metainfo)
            new.set_gt_label(label.view(1))
            out.append(new)
        return out

    def mixed_loss(self, model: nn.Module, mixed: Tensor, lam: float,
                   labels_a: Tensor, labels_b: Tensor,
                   data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """``λ·L(x̃, y_a) + (1−λ)·L(x̃, y_b)`` per loss name of the head."""
        feats = model.extract_feat(mixed)
        loss_a = model.head.loss(feats, self.relabel(data_samples, labels_a))
        loss_b = model.head.loss(feats, self.relabel(data_samples, labels_b))
        out = {}
        for name, value in loss_a.items():
            if 'loss' not in name:
                continue
            short = name[len('loss'):] if name.startswith('loss') else name
            out[self.prefix + short] = self.loss_weight * (
                lam * value + (1 - lam) * loss_b[name])
        return out

    def loss(self, model: nn.Module, inputs: Tensor, feats: Tuple[Tensor,
                                                                  ...],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The mixed-batch losses (the clean loss is the head's own)."""
        labels = model.head.get_labels(data_samples, inputs.device)
        perm = torch.randperm(inputs.shape[0], device=inputs.device)
        lam = float(np.random.beta(self.alpha, self.alpha))
        mixed, lam = mix_batch(inputs, lam, perm, self.mode)
        return self.mixed_loss(model, mixed, lam, labels, labels[perm],
                               data_samples)
