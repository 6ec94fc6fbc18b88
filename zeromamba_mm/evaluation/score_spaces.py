"""Score spaces and calibrated stacking (`Chao et al., ECCV 2016
<https://arxiv.org/abs/1605.04253>`_).

Calibrated stacking predicts ``argmax_c [s(x, c) - γ·1(c ∈ seen)]``. The
score space ``s`` matters: ``'softmax'`` (ZeroMamba, ZSLViT) applies a
softmax over the label space first, ``'raw'`` (APN, DUET) uses the scores as
they are. The names and the default live with
:class:`~zeromamba_mm.structures.OperatingPoint`.
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch

from zeromamba_mm.structures.operating_point import (DEFAULT_SCORE_SPACE,
                                                     SCORE_SPACES)

__all__ = [
    'SCORE_SPACES', 'DEFAULT_SCORE_SPACE', 'ArrayLike', 'to_numpy',
    'class_ids', 'to_score_space', 'calibrated_predict'
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def to_numpy(x: ArrayLike, dtype=None) -> np.ndarray:
    """Convert a tensor, array or sequence to a numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def class_ids(classes: ArrayLike, name: str) -> np.ndarray:
    ids = to_numpy(classes).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f'{name} must hold integer class ids, got dtype '
                        f'{ids.dtype}.')
    return np.unique(ids.astype(np.int64))


def to_score_space(scores: ArrayLike,
                   score_space: str = DEFAULT_SCORE_SPACE,
                   label_space: Optional[ArrayLike] = None) -> np.ndarray:
    """Map raw scores to the space in which γ is subtracted.

    Classes outside ``label_space`` get ``-inf`` so that no argmax can pick
    them, and they take no probability mass in the softmax. With the standard
    splits the label space is all classes; with a validation split carved from
    the seen classes it is seen ∪ pseudo-unseen.

    Args:
        scores (array-like): (N, C) raw compatibility scores.
        score_space (str): ``'softmax'`` (softmax over the label space) or
            ``'raw'``. Defaults to :data:`DEFAULT_SCORE_SPACE`.
        label_space (array-like, optional): Global ids of the candidate
            classes. Defaults to all C classes.

    Returns:
        np.ndarray: (N, C) float64 scores.
    """
    if score_space not in SCORE_SPACES:
        raise ValueError(f'score_space must be one of {SCORE_SPACES}, got '
                         f'{score_space!r}.')
    scores = to_numpy(scores, np.float64)
    num_classes = scores.shape[1]
    if label_space is None:
        cols = np.arange(num_classes)
    else:
        cols = class_ids(label_space, 'label_space')
        if cols.size == 0 or cols[0] < 0 or cols[-1] >= num_classes:
            raise ValueError('label_space must be non-empty ids in '
                             f'[0, {num_classes}).')
    out = np.full(scores.shape, -np.inf)
    sub = scores[:, cols]
    if score_space == 'softmax':
        # Shift by the row max for numerical stability (no overflow in exp).
        sub = np.exp(sub - sub.max(axis=1, keepdims=True))
        sub /= sub.sum(axis=1, keepdims=True)
    out[:, cols] = sub
    return out


def calibrated_predict(scores: np.ndarray, seen_classes: ArrayLike,
                       gamma: float) -> np.ndarray:
    """Calibrated stacking: ``argmax_c [s(x, c) - γ·1(c ∈ seen)]``.

    Args:
        scores (np.ndarray): (N, C) scores already in the chosen score space
            (see :func:`to_score_space`).
        seen_classes (array-like): Global ids of the seen classes.
        gamma (float): Calibration factor γ.

    Returns:
        np.ndarray: (N,) predicted global class ids. Ties go to the lowest
        index, as ``argmax`` in the authors' code, except that values merged
        by rounding are separated as in exact arithmetic (see below).
    """
    scores = to_numpy(scores, np.float64)
    seen = class_ids(seen_classes, 'seen_classes')
    shifted = scores.copy()
    if gamma:
        shifted[:, seen] -= float(gamma)
    # `p - γ` rounds distinct tiny probabilities (1e-20 vs 3e-20 with γ = -1)
    # to one value, and a plain argmax would then pick the lowest index, not
    # the best class. Among the classes with the largest shifted value the
    # largest original score wins; exact ties still go to the lowest index.
    top = shifted.max(axis=1, keepdims=True)
    return np.where(shifted == top, scores, -np.inf).argmax(axis=1)
