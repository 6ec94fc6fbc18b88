"""Ranking classes at an operating point (calibrated stacking).

The same functions as the metric's (:mod:`zeromamba_mm.evaluation`), so that
inference ranks exactly as ``tools/test.py`` scores.
"""
import math
from typing import Optional, Tuple

import numpy as np

from zeromamba_mm.evaluation.score_spaces import (SCORE_SPACES,
                                                  calibrated_predict,
                                                  to_score_space)

__all__ = ['LABEL_SPACES', 'rank_classes']

#: Label spaces of :meth:`ZSLInferencer.postprocess`.
LABEL_SPACES = ('all', 'seen', 'unseen')


def rank_classes(
        raw: np.ndarray,
        seen: Optional[np.ndarray],
        unseen: Optional[np.ndarray],
        gamma: float,
        score_space: str,
        topk: int = 5,
        label_space: str = 'all',
        gamma_needs_seen: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Calibrated scores (N, C) and the top-k class ids (N, k).

    Scores in ``score_space`` over the label space (other classes get
    ``-inf``; :func:`~zeromamba_mm.evaluation.to_score_space`), minus
    ``gamma`` on the seen classes (calibrated stacking, Chao et al. 2016,
    https://arxiv.org/abs/1605.04253). The top-1 is
    :func:`~zeromamba_mm.evaluation.calibrated_predict`'s, the metric's.

    Args:
        raw (np.ndarray): (N, C) raw class scores.
        seen (np.ndarray, optional): Ids of the seen classes (None: unknown,
            then only ``gamma=0`` and ``label_space='all'`` are possible).
        unseen (np.ndarray, optional): Ids of the other classes.
        gamma (float): Calibration factor.
        score_space (str): One of ``SCORE_SPACES``.
        topk (int): Classes per image. Defaults to 5.
        label_space (str): ``'all'``, ``'seen'`` or ``'unseen'``.
        gamma_needs_seen (bool): With unknown seen classes, refuse a γ ≠ 0
            (True: the caller asked for it) or leave it out (False: the
            checkpoint's γ, which has no seen class of the scored set to
            act on, e.g. classes from a user file). Defaults to True.

    Returns:
        tuple[np.ndarray, np.ndarray]: Scores and top-k ids (best first).
    """
    if not isinstance(topk, int) or topk < 1:
        raise ValueError(f'topk must be a positive int, got {topk!r}.')
    if score_space not in SCORE_SPACES:
        raise ValueError(f'score_space must be one of {SCORE_SPACES}, got '
                         f'{score_space!r}.')
    if label_space not in LABEL_SPACES:
        raise ValueError(f'label_space must be one of {LABEL_SPACES}, got '
                         f'{label_space!r}.')
    if isinstance(
            gamma,
            bool) or not isinstance(gamma,
                                    (int, float)) or not math.isfinite(gamma):
        raise ValueError(f'gamma must be a finite number, got {gamma!r}.')
    if seen is None and not gamma_needs_seen:
        gamma = 0.0
    if (gamma != 0 or label_space != 'all') and seen is None:
        raise ValueError(
            f'gamma={gamma} / label_space={label_space!r} need the seen '
            'classes, which are unknown: pass seen_classes=[...] (ids or '
            'names; tools/infer.py --seen-classes), an att_splits.mat with '
            'res101.mat beside it, or gamma=0 (--gamma 0).')
    ids = {
        'all': np.arange(raw.shape[1]),
        'seen': seen,
        'unseen': unseen
    }[label_space]
    if ids.size == 0:
        raise ValueError(f'label_space={label_space!r}: there are no '
                         f'{label_space} classes.')
    space = to_score_space(raw, score_space, ids)
    scores = space.copy()
    if gamma and seen is not None:
        scores[:, seen] -= gamma
    k = min(topk, ids.size)
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    if seen is not None:
        # Ties and rounding exactly as the metric decides them.
        top[:, 0] = calibrated_predict(space, seen, gamma)
        rest = [[j for j in row if j != first][:k - 1]
                for row, first in zip(top, top[:, 0])]
        top = np.column_stack([
            top[:, :1],
            np.asarray(rest, dtype=top.dtype).reshape(len(top), k - 1)
        ])
    return scores, top
