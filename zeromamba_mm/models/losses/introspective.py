"""Introspective similarity of IDML (arXiv:2205.04449, arXiv:2309.09982).

IDML represents an image by a semantic embedding and an uncertainty
embedding and judges its similarity to a prototype from both. Prototypes
(here: class attribute vectors) carry zero uncertainty, so the uncertainty
distance ``β`` is the squared norm of the image's uncertainty embedding.
Three forms exist and differ:

- ``'figure'`` (the method figure): a *distance* ``D = α·exp(−β/α)`` from
  the semantic distance ``α``;
- ``'retrieval'`` (the released retrieval code's form, re-derived): a
  similarity ``s' = 1 − (1 − cos)·exp(−(β + c) / (γ·d))`` with ``d`` the
  squared Euclidean distance; it is *not* the identity at ``β = 0``;
- ``'classification'`` (the released classification code's form,
  re-derived): ``z' = 1 − (1 − z)·exp(−β / (γ·d))`` on raw compatibility
  scores ``z``; the identity at ``β = 0``. The default.

Every form clamps its denominator at ``eps`` (the released code has no
epsilon, so a prediction equal to a prototype divides by zero).
"""
from typing import Optional

import torch
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS

INTROSPECTIVE_FORMS = ('classification', 'retrieval', 'figure')


def _check_positive(value: float, name: str, allow_zero: bool = False):
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float)) and ok
            and value != float('inf')):
        bound = '>= 0' if allow_zero else '> 0'
        raise ValueError(f'{name} must be a finite number {bound}; got '
                         f'{value!r}.')


def introspective_distance_figure(alpha: Tensor,
                                  beta: Tensor,
                                  eps: float = 1e-6) -> Tensor:
    """The figure's introspective distance ``D = α·exp(−β/α)``.

    ``∂D/∂α = (1 + β/α)·exp(−β/α)`` lies in (0, 1] and decreases in ``β``:
    the semantic gradient is damped more for more uncertain images.

    Args:
        alpha (Tensor): Semantic distances ``α`` (>= 0).
        beta (Tensor): Uncertainty distances ``β`` (>= 0), broadcastable.
        eps (float): Lower clamp of ``α`` in the exponent. Defaults to 1e-6.

    Returns:
        Tensor: ``D`` of the broadcast shape.
    """
    return alpha * torch.exp(-beta / alpha.clamp(min=eps))


def introspective_similarity_retrieval(cosine: Tensor,
                                       beta: Tensor,
                                       dist_sq: Tensor,
                                       gamma: float = 5.0,
                                       offset: float = 4.0,
                                       eps: float = 1e-6) -> Tensor:
    """The retrieval form ``1 − (1 − cos)·exp(−(β + c) / (γ·d))``.

    Args:
        cosine (Tensor): Cosine similarities to the prototypes.
        beta (Tensor): Uncertainty distances ``β`` (>= 0), broadcastable.
        dist_sq (Tensor): Squared Euclidean distances ``d`` to the
            prototypes.
        gamma (float): Scale ``γ`` of the distance. Defaults to 5.
        offset (float): Constant ``c`` added to ``β``. Defaults to 4.
        eps (float): Lower clamp of ``d``. Defaults to 1e-6.
    """
    # 1 − (1 − s)·e^{−x} written as s + (1 − s)·(1 − e^{−x}): same value,
    # exact where e^{−x} = 1.
    shrink = -torch.expm1(-(beta + offset) / (gamma * dist_sq.clamp(min=eps)))
    return cosine + (1 - cosine) * shrink


def introspective_scores_classification(scores: Tensor,
                                        beta: Tensor,
                                        dist_sq: Tensor,
                                        gamma: float = 5.0,
                                        eps: float = 1e-6) -> Tensor:
    """The classification form ``z' = 1 − (1 − z)·exp(−β / (γ·d))``.

    ``z' = z`` exactly when ``β = 0``; ``∂z'/∂z = exp(−β/(γ·d)) < 1`` for
    ``β > 0``.

    Args:
        scores (Tensor): (B, C) compatibility scores ``z``.
        beta (Tensor): (B, 1) uncertainty distances ``β`` (>= 0).
        dist_sq (Tensor): (B, C) squared distances ``d`` of the predictions
            to the class prototypes.
        gamma (float): Scale ``γ`` of the distance. Defaults to 5.
        eps (float): Lower clamp of ``d``. Defaults to 1e-6.
    """
    # s + (1 − s)·(1 − e^{−x}): bit-identical to s where β = 0.
    shrink = -torch.expm1(-beta / (gamma * dist_sq.clamp(min=eps)))
    return scores + (1 - scores) * shrink


def pairwise_sq_distances(pred: Tensor, prototypes: Tensor) -> Tensor:
    """(B, C) squared Euclidean distances, exact (no ‖a‖²+‖b‖²−2ab trick).

    Args:
        pred (Tensor): (B, A) predictions.
        prototypes (Tensor): (C, A) prototypes.
    """
    return (pred[:, None, :] - prototypes[None, :, :]).pow(2).sum(-1)


@MODELS.register_module()
class IntrospectiveSimilarity(nn.Module):
    """Parameter-free introspective scoring of predictions against classes.

    Given predicted attributes ``Â`` (B, A), the squared uncertainty norm
    ``β = ‖u‖²`` (B,) and class prototypes ``a`` (C, A) of zero
    uncertainty, returns (B, C) training scores in the chosen form
    (`IDML, arXiv:2309.09982 <https://arxiv.org/abs/2309.09982>`_):

    - ``'classification'``: ``z' = 1 − (1 − Â·a_c)·exp(−β/(γ‖Â − a_c‖²))``,
      equal to the plain scores when ``β = 0``;
    - ``'retrieval'``: ``scale·(1 − (1 − cos)·exp(−(β + c)/(γ‖Â − a_c‖²)))``
      (bounded, so it needs a ``scale``);
    - ``'figure'``: the negative distance ``−scale·α·exp(−β/α)`` with
      ``α = ‖Â − a_c‖²``; for ``β = 0`` this is a squared-distance
      classifier.

    Args:
        form (str): One of ``'classification'``, ``'retrieval'``,
            ``'figure'``. Defaults to 'classification'.
        gamma (float): Distance scale ``γ`` (code: 5). Defaults to 5.
        offset (float): Constant ``c`` of the retrieval form. Defaults to 4.
        scale (float): Logit scale of the bounded forms. Defaults to 1.
        eps (float): Lower clamp of denominators. Defaults to 1e-6.
    """

    def __init__(self,
                 form: str = 'classification',
                 gamma: float = 5.0,
                 offset: float = 4.0,
                 scale: float = 1.0,
                 eps: float = 1e-6):
        super().__init__()
        if form not in INTROSPECTIVE_FORMS:
            raise ValueError(f'form must be one of {INTROSPECTIVE_FORMS}; '
                             f'got {form!r}.')
        _check_positive(gamma, 'gamma')
        _check_positive(offset, 'offset', allow_zero=True)
        _check_positive(scale, 'scale')
        _check_positive(eps, 'eps')
        self.form = form
        self.gamma = float(gamma)
        self.offset = float(offset)
        self.scale = float(scale)
        self.eps = float(eps)

    def forward(self,
                pred_attributes: Tensor,
                uncertainty_sq: Tensor,
                class_attributes: Tensor,
                scores: Optional[Tensor] = None) -> Tensor:
        """Introspective scores (B, C), larger = more similar.

        Args:
            pred_attributes (Tensor): (B, A) predictions ``Â``.
            uncertainty_sq (Tensor): (B,) or (B, 1) ``β = ‖u‖²``.
            class_attributes (Tensor): (C, A) prototypes.
            scores (Tensor, optional): (B, C) plain scores ``Â·aᵀ`` when
                already computed (classification form).
        """
        beta = uncertainty_sq.reshape(-1, 1)
        dist_sq = pairwise_sq_distances(pred_attributes, class_attributes)
        if self.form == 'classification':
            if scores is None:
                scores = pred_attributes @ class_attributes.t()
            return introspective_scores_classification(
                scores, beta, dist_sq, self.gamma, self.eps)
        if self.form == 'retrieval':
            cosine = (
                nn.functional.normalize(pred_attributes, dim=-1, eps=self.eps)
                @ nn.functional.normalize(
                    class_attributes, dim=-1, eps=self.eps).t())
            return self.scale * introspective_similarity_retrieval(
                cosine, beta, dist_sq, self.gamma, self.offset, self.eps)
        return -self.scale * introspective_distance_figure(
            dist_sq, beta, self.eps)

    def extra_repr(self) -> str:
        return (f'form={self.form!r}, gamma={self.gamma}, '
                f'offset={self.offset}, scale={self.scale}, eps={self.eps}')
