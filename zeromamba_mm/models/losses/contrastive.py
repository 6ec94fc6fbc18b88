"""MoCo-v3-style contrastive loss, as OPERA's self-supervision uses it.

OPERA (`arXiv:2210.05557 <https://arxiv.org/abs/2210.05557>`_) trains its
lower proxy with MoCo v3's InfoNCE (`arXiv:2104.02057
<https://arxiv.org/abs/2104.02057>`_): queries of one view against momentum
keys of the other view, the positives on the diagonal, scaled by ``2τ``.
mmpretrain's ``MoCoV3Head`` computes the same quantity but keeps the
predictor output to itself; OPERA needs it for its full-supervision
projector, hence this function.
"""
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank
from torch import Tensor


def check_temperature(temperature: float, name: str = 'temperature'):
    """Raise a clear error unless ``temperature`` is finite and > 0."""
    if not (isinstance(temperature, (int, float)) and 0 < temperature
            and temperature != float('inf')):
        raise ValueError(f'{name} must be a finite number > 0 (MoCo v3: 1.0 '
                         f'for CNNs, 0.2 for ViTs); got {temperature!r}.')


def moco_v3_contrastive(query: Tensor,
                        key: Tensor,
                        temperature: float = 1.0,
                        gather_keys: bool = True) -> Tensor:
    """``2τ · CE(q̂ k̂ᵀ / τ, diag)`` with L2-normalised queries and keys.

    Keys are gathered from all processes (no gradient flows into them) and
    the positive of query ``i`` of rank ``r`` is key ``r·B + i``.

    Args:
        query (Tensor): (B, D) online predictions ``q``.
        key (Tensor): (B, D) momentum keys ``k`` (detached here).
        temperature (float): Temperature ``τ``. Defaults to 1.0.
        gather_keys (bool): Gather keys across processes. Defaults to True.

    Returns:
        Tensor: The scalar loss.
    """
    check_temperature(temperature)
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError('query and key must both be (B, D); got '
                         f'{tuple(query.shape)} and {tuple(key.shape)}.')
    query = F.normalize(query, dim=1)
    key = F.normalize(key.detach(), dim=1)
    offset = 0
    if gather_keys:
        keys = all_gather(key)
        offset = get_rank() * query.shape[0]
        key = torch.cat(keys, dim=0)
    logits = query @ key.t() / temperature
    labels = torch.arange(
        query.shape[0], device=query.device, dtype=torch.long) + offset
    return 2 * temperature * F.cross_entropy(logits, labels)
