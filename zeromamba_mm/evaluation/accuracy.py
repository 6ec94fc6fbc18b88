"""Per-class accuracies of the (generalized) zero-shot protocol.

Protocol (`Xian et al., TPAMI 2018 <https://arxiv.org/abs/1707.00600>`_):

- per-class mean top-1: mean over classes of ``correct_c / n_c``; classes
  without a sample are left out of the mean;
- ZSL T1: unseen-class samples, label space = unseen classes;
- GZSL: label space = seen ∪ unseen; U on unseen-class samples, S on
  seen-class samples, ``H = 2US / (U + S)``.
"""
from typing import Dict, Tuple

import numpy as np

from .score_spaces import (DEFAULT_SCORE_SPACE, ArrayLike, calibrated_predict,
                           class_ids, to_numpy, to_score_space)

__all__ = [
    'check_inputs', 'group_ids', 'per_class_accuracy',
    'mean_per_class_accuracy', 'harmonic_mean', 'zsl_top1', 'gzsl_accuracy'
]


def check_inputs(scores: ArrayLike,
                 target: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    scores = to_numpy(scores, np.float64)
    target = to_numpy(target).reshape(-1).astype(np.int64)
    if scores.ndim != 2:
        raise ValueError(f'scores must be (N, C), got shape {scores.shape}.')
    if scores.shape[0] != target.shape[0]:
        raise ValueError(f'scores has {scores.shape[0]} rows but target has '
                         f'{target.shape[0]} labels.')
    if not np.isfinite(scores).all():
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise ValueError('scores must be finite; first non-finite value at '
                         f'(sample {bad[0]}, class {bad[1]}).')
    return scores, target


def group_ids(num_classes: int, seen_classes: ArrayLike,
              unseen_classes: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    seen = class_ids(seen_classes, 'seen_classes')
    unseen = class_ids(unseen_classes, 'unseen_classes')
    for name, ids in (('seen_classes', seen), ('unseen_classes', unseen)):
        if ids.size == 0:
            raise ValueError(f'{name} is empty.')
        if ids[0] < 0 or ids[-1] >= num_classes:
            raise ValueError(f'{name} must lie in [0, {num_classes}) (the '
                             f'score columns); got ids {ids[0]}..{ids[-1]}.')
    both = np.intersect1d(seen, unseen)
    if both.size:
        raise ValueError('seen_classes and unseen_classes overlap: '
                         f'{both[:10].tolist()}.')
    return seen, unseen


def per_class_accuracy(pred: ArrayLike, target: ArrayLike,
                       classes: ArrayLike) -> np.ndarray:
    """Top-1 accuracy of each class, NaN for a class without samples.

    Args:
        pred (array-like): (N,) predicted global class ids.
        target (array-like): (N,) ground-truth global class ids.
        classes (array-like): The classes to report, in this order.

    Returns:
        np.ndarray: (K,) float64 ``correct_c / n_c`` (NaN where ``n_c = 0``).
    """
    pred = to_numpy(pred).reshape(-1)
    target = to_numpy(target).reshape(-1)
    classes = to_numpy(classes).reshape(-1).astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f'pred {pred.shape} and target {target.shape} '
                         'differ in length.')
    correct = pred == target
    # bincount over a remapped index keeps this O(N + K).
    target = target.astype(np.int64)
    size = int(max(classes.max(initial=-1), target.max(initial=-1))) + 1
    lookup = np.full(size, -1, dtype=np.int64)
    lookup[classes] = np.arange(len(classes))
    idx = np.where(target >= 0, lookup[np.clip(target, 0, None)], -1)
    keep = idx >= 0
    n = np.bincount(idx[keep], minlength=len(classes)).astype(np.float64)
    hit = np.bincount(idx[keep], weights=correct[keep], minlength=len(classes))
    with np.errstate(invalid='ignore', divide='ignore'):
        acc = hit / n
    acc[n == 0] = np.nan
    return acc


def mean_per_class_accuracy(pred: ArrayLike, target: ArrayLike,
                            classes: ArrayLike) -> Tuple[float, np.ndarray]:
    """Mean over classes of ``correct_c / n_c``, skipping empty classes.

    Args:
        pred (array-like): (N,) predicted global class ids.
        target (array-like): (N,) ground-truth global class ids.
        classes (array-like): The classes to average over.

    Returns:
        tuple[float, np.ndarray]: The mean (NaN when no class has a sample)
        and the ids of the classes that were skipped for having no sample.
    """
    classes = to_numpy(classes).reshape(-1).astype(np.int64)
    acc = per_class_accuracy(pred, target, classes)
    empty = classes[np.isnan(acc)]
    mean = float(np.nanmean(acc)) if empty.size < classes.size else np.nan
    return mean, empty


def harmonic_mean(u: float, s: float) -> float:
    """``H = 2US / (U + S)``, 0 when ``U + S = 0``."""
    return 0.0 if u + s == 0 else 2.0 * u * s / (u + s)


def zsl_top1(scores: ArrayLike, target: ArrayLike,
             unseen_classes: ArrayLike) -> float:
    """Conventional ZSL top-1 (T1): label space = unseen classes only.

    Only the samples of unseen classes count. The softmax is monotone per
    sample, so T1 is the same in both score spaces.

    Args:
        scores (array-like): (N, C) raw scores over all classes.
        target (array-like): (N,) global class ids.
        unseen_classes (array-like): Global ids of the unseen classes.

    Returns:
        float: per-class mean top-1 in [0, 1] (NaN without unseen samples).
    """
    scores, target = check_inputs(scores, target)
    unseen = class_ids(unseen_classes, 'unseen_classes')
    keep = np.isin(target, unseen)
    pred = unseen[scores[keep][:, unseen].argmax(axis=1)]
    return mean_per_class_accuracy(pred, target[keep], unseen)[0]


def gzsl_accuracy(scores: ArrayLike,
                  target: ArrayLike,
                  seen_classes: ArrayLike,
                  unseen_classes: ArrayLike,
                  gamma: float = 0.0,
                  score_space: str = DEFAULT_SCORE_SPACE) -> Dict[str, float]:
    """GZSL U, S and H with calibrated stacking at one γ.

    Args:
        scores (array-like): (N, C) raw scores over all classes.
        target (array-like): (N,) global class ids (each in seen ∪ unseen).
        seen_classes (array-like): Global ids of the seen classes.
        unseen_classes (array-like): Global ids of the unseen classes.
        gamma (float): Calibration factor. Defaults to 0.
        score_space (str): ``'softmax'`` or ``'raw'``. Defaults to
            :data:`DEFAULT_SCORE_SPACE`.

    Returns:
        dict: ``U``, ``S``, ``H`` as fractions (U or S is NaN when its group
        has no sample; H is then NaN too).
    """
    scores, target = check_inputs(scores, target)
    seen, unseen = group_ids(scores.shape[1], seen_classes, unseen_classes)
    label_space = np.concatenate([seen, unseen])
    space = to_score_space(scores, score_space, label_space)
    pred = calibrated_predict(space, seen, gamma)
    u = mean_per_class_accuracy(pred, target, unseen)[0]
    s = mean_per_class_accuracy(pred, target, seen)[0]
    h = np.nan if np.isnan(u) or np.isnan(s) else harmonic_mean(u, s)
    return dict(U=u, S=s, H=h)
