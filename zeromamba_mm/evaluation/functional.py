"""Pure functions of the (generalized) zero-shot evaluation protocol.

Everything here works on plain arrays: ``scores`` is an (N, C) array of
compatibility scores over *all* C classes (``Â · a_c``, not softmaxed),
``target`` the (N,) global class ids, ``seen_classes`` / ``unseen_classes``
the global ids of the two class groups. Accuracies are fractions in [0, 1];
:class:`~zeromamba_mm.evaluation.GZSLMetric` turns them into percent.

Protocol (`Xian et al., TPAMI 2018 <https://arxiv.org/abs/1707.00600>`_):

- per-class mean top-1: mean over classes of ``correct_c / n_c``; classes
  without a sample are left out of the mean;
- ZSL T1: unseen-class samples, label space = unseen classes;
- GZSL: label space = seen ∪ unseen; U on unseen-class samples, S on
  seen-class samples, ``H = 2US / (U + S)``.

Calibrated stacking (`Chao et al., ECCV 2016
<https://arxiv.org/abs/1605.04253>`_) predicts
``argmax_c [s(x, c) - γ·1(c ∈ seen)]``. The score space ``s`` matters:
``'softmax'`` (ZeroMamba, ZSLViT) applies a softmax over the label space
first, ``'raw'`` (APN, DUET) uses the scores as they are.

The seen-unseen accuracy curve (SUC) and its area (AUSUC) come from sweeping
γ over *every* break point, i.e. every γ at which some sample's prediction
changes. :func:`seen_unseen_curve` does that in O(N log N + N·C);
:func:`seen_unseen_curve_bruteforce` is the slow reference used by the tests.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    'SCORE_SPACES', 'to_numpy', 'to_score_space', 'calibrated_predict',
    'per_class_accuracy', 'mean_per_class_accuracy', 'harmonic_mean',
    'zsl_top1', 'gzsl_accuracy', 'SeenUnseenCurve', 'seen_unseen_curve',
    'seen_unseen_curve_bruteforce', 'area_under_curve', 'best_gamma_on_curve',
    'BREAKPOINT_RTOL'
]

SCORE_SPACES = ('softmax', 'raw')

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def to_numpy(x: ArrayLike, dtype=None) -> np.ndarray:
    """Convert a tensor, array or sequence to a numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def _class_ids(classes: ArrayLike, name: str) -> np.ndarray:
    ids = to_numpy(classes).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f'{name} must hold integer class ids, got dtype '
                        f'{ids.dtype}.')
    return np.unique(ids.astype(np.int64))


def _check_inputs(scores: ArrayLike,
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


def _group_ids(num_classes: int, seen_classes: ArrayLike,
               unseen_classes: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    seen = _class_ids(seen_classes, 'seen_classes')
    unseen = _class_ids(unseen_classes, 'unseen_classes')
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


def to_score_space(scores: ArrayLike,
                   score_space: str = 'softmax',
                   label_space: Optional[ArrayLike] = None) -> np.ndarray:
    """Map raw scores to the space in which γ is subtracted.

    Classes outside ``label_space`` get ``-inf`` so that no argmax can pick
    them, and they take no probability mass in the softmax. With the standard
    splits the label space is all classes; with a validation split carved from
    the seen classes it is seen ∪ pseudo-unseen.

    Args:
        scores (array-like): (N, C) raw compatibility scores.
        score_space (str): ``'softmax'`` (softmax over the label space) or
            ``'raw'``. Defaults to ``'softmax'``.
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
        cols = _class_ids(label_space, 'label_space')
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
    seen = _class_ids(seen_classes, 'seen_classes')
    shifted = scores.copy()
    if gamma:
        shifted[:, seen] -= float(gamma)
    # `p - γ` rounds distinct tiny probabilities (1e-20 vs 3e-20 with γ = -1)
    # to one value, and a plain argmax would then pick the lowest index, not
    # the best class. Among the classes with the largest shifted value the
    # largest original score wins; exact ties still go to the lowest index.
    top = shifted.max(axis=1, keepdims=True)
    return np.where(shifted == top, scores, -np.inf).argmax(axis=1)


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
    scores, target = _check_inputs(scores, target)
    unseen = _class_ids(unseen_classes, 'unseen_classes')
    keep = np.isin(target, unseen)
    pred = unseen[scores[keep][:, unseen].argmax(axis=1)]
    return mean_per_class_accuracy(pred, target[keep], unseen)[0]


def gzsl_accuracy(scores: ArrayLike,
                  target: ArrayLike,
                  seen_classes: ArrayLike,
                  unseen_classes: ArrayLike,
                  gamma: float = 0.0,
                  score_space: str = 'softmax') -> Dict[str, float]:
    """GZSL U, S and H with calibrated stacking at one γ.

    Args:
        scores (array-like): (N, C) raw scores over all classes.
        target (array-like): (N,) global class ids (each in seen ∪ unseen).
        seen_classes (array-like): Global ids of the seen classes.
        unseen_classes (array-like): Global ids of the unseen classes.
        gamma (float): Calibration factor. Defaults to 0.
        score_space (str): ``'softmax'`` or ``'raw'``. Defaults to
            ``'softmax'``.

    Returns:
        dict: ``U``, ``S``, ``H`` as fractions (U or S is NaN when its group
        has no sample; H is then NaN too).
    """
    scores, target = _check_inputs(scores, target)
    seen, unseen = _group_ids(scores.shape[1], seen_classes, unseen_classes)
    label_space = np.concatenate([seen, unseen])
    space = to_score_space(scores, score_space, label_space)
    pred = calibrated_predict(space, seen, gamma)
    u = mean_per_class_accuracy(pred, target, unseen)[0]
    s = mean_per_class_accuracy(pred, target, seen)[0]
    h = np.nan if np.isnan(u) or np.isnan(s) else harmonic_mean(u, s)
    return dict(U=u, S=s, H=h)


@dataclass
class SeenUnseenCurve:
    """The seen-unseen accuracy curve of a γ sweep.

    Point ``k`` holds on the open γ interval ``(gamma_low[k], gamma_high[k])``
    between two consecutive break points (``-inf``/``inf`` at the ends); the
    points are ordered by increasing γ, so ``unseen`` is non-decreasing and
    ``seen`` non-increasing. The prediction exactly *at* a break point depends
    on tie-breaking and is not a point of the curve.

    Attributes:
        breakpoints (np.ndarray): (G,) sorted distinct γ at which some
            sample's prediction changes.
        gamma_low (np.ndarray): (G + 1,) lower ends of the intervals.
        gamma_high (np.ndarray): (G + 1,) upper ends of the intervals.
        unseen (np.ndarray): (G + 1,) U on each interval (fraction).
        seen (np.ndarray): (G + 1,) S on each interval (fraction).
    """
    breakpoints: np.ndarray
    gamma_low: np.ndarray
    gamma_high: np.ndarray
    unseen: np.ndarray
    seen: np.ndarray

    @property
    def harmonic(self) -> np.ndarray:
        """H on each interval."""
        total = self.unseen + self.seen
        with np.errstate(invalid='ignore', divide='ignore'):
            h = 2 * self.unseen * self.seen / total
        return np.where(total == 0, 0.0, h)

    @property
    def ausuc(self) -> float:
        """Area under the curve (fraction of the unit square)."""
        return area_under_curve(self.unseen, self.seen)


def _prepare_curve(scores, target, seen_classes, unseen_classes, score_space):
    scores, target = _check_inputs(scores, target)
    seen, unseen = _group_ids(scores.shape[1], seen_classes, unseen_classes)
    outside = ~np.isin(target, np.concatenate([seen, unseen]))
    if outside.any():
        raise ValueError(f'{int(outside.sum())} samples have labels outside '
                         f'seen ∪ unseen (first: {int(target[outside][0])}).')
    for name, ids in (('seen', seen), ('unseen', unseen)):
        if not np.isin(target, ids).any():
            raise ValueError(f'The seen-unseen curve needs samples of both '
                             f'groups; there is no sample of a {name} class.')
    space = to_score_space(scores, score_space, np.concatenate([seen, unseen]))
    return space, target, seen, unseen


def _gaps(space: np.ndarray, seen: np.ndarray, unseen: np.ndarray):
    """Best seen / best unseen class per sample and the gap between them.

    Subtracting γ from every seen score keeps the order inside each group, so
    the calibrated prediction is always the best seen or the best unseen
    class: the best seen one for γ < gap, the best unseen one for γ > gap.
    """
    rows = np.arange(space.shape[0])
    best_seen = seen[space[:, seen].argmax(axis=1)]
    best_unseen = unseen[space[:, unseen].argmax(axis=1)]
    gap = space[rows, best_seen] - space[rows, best_unseen]
    return best_seen, best_unseen, gap


#: Gaps closer than this (relative to the largest gap, at least 1) are one
#: break point: they differ only by rounding (e.g. two softmax rows that are
#: equal in exact arithmetic), and no γ between them is meaningful.
BREAKPOINT_RTOL = 1e-12


def _run_ends(sorted_gaps: np.ndarray) -> np.ndarray:
    """Index of the last element of each run of (nearly) equal gaps."""
    scale = max(1.0, float(np.abs(sorted_gaps).max(initial=0.0)))
    new_run = np.diff(sorted_gaps) > BREAKPOINT_RTOL * scale
    return np.flatnonzero(np.r_[new_run, True])


def seen_unseen_curve(scores: ArrayLike,
                      target: ArrayLike,
                      seen_classes: ArrayLike,
                      unseen_classes: ArrayLike,
                      score_space: str = 'softmax') -> SeenUnseenCurve:
    """Seen-unseen accuracy curve over every break point, in O(N log N).

    Each sample ``i`` contributes its gap ``d_i = best seen score - best
    unseen score`` (in ``score_space``). A seen-class sample is correct for
    γ < d_i iff its best seen class is its label; an unseen-class sample is
    correct for γ > d_i iff its best unseen class is its label. Sorting the
    gaps and accumulating the per-sample weights ``1 / (n_y · K_group)``
    gives U and S on every interval between consecutive distinct gaps
    (gaps equal up to :data:`BREAKPOINT_RTOL` count as one break point).

    Args:
        scores (array-like): (N, C) raw scores over all classes.
        target (array-like): (N,) global class ids in seen ∪ unseen; both
            groups must have samples.
        seen_classes (array-like): Global ids of the seen classes.
        unseen_classes (array-like): Global ids of the unseen classes.
        score_space (str): ``'softmax'`` or ``'raw'``. Defaults to
            ``'softmax'``.

    Returns:
        SeenUnseenCurve: The curve.
    """
    space, target, seen, unseen = _prepare_curve(scores, target, seen_classes,
                                                 unseen_classes, score_space)
    best_seen, best_unseen, gap = _gaps(space, seen, unseen)

    # Weight of one correct sample in its group's per-class mean; empty
    # classes are not in the mean (K counts non-empty classes only).
    counts = np.bincount(target, minlength=space.shape[1]).astype(np.float64)
    is_seen = np.isin(target, seen)
    k_seen = np.count_nonzero(counts[seen])
    k_unseen = np.count_nonzero(counts[unseen])
    weight = 1.0 / (counts[target] * np.where(is_seen, k_seen, k_unseen))
    seen_gain = np.where(is_seen & (best_seen == target), weight, 0.0)
    unseen_gain = np.where(~is_seen & (best_unseen == target), weight, 0.0)

    order = np.argsort(gap, kind='stable')
    gap_sorted = gap[order]
    # The last sample of each run of equal gaps closes one interval.
    ends = _run_ends(gap_sorted)
    breakpoints = gap_sorted[ends]
    # S after a break point sums the seen gains of the samples still above
    # it (suffix sums), U the unseen gains below it (prefix sums). Sums of
    # non-negative terms keep the curve exactly monotone, exactly 0 at its
    # ends, and free of cancellation.
    suffix = np.r_[np.cumsum(seen_gain[order][::-1])[::-1], 0.0]
    seen_acc = np.minimum(np.r_[suffix[0], suffix[ends + 1]], 1.0)
    unseen_acc = np.minimum(np.r_[0.0,
                                  np.cumsum(unseen_gain[order])[ends]], 1.0)
    return SeenUnseenCurve(
        breakpoints=breakpoints,
        gamma_low=np.r_[-np.inf, breakpoints],
        gamma_high=np.r_[breakpoints, np.inf],
        unseen=unseen_acc,
        seen=seen_acc)


def seen_unseen_curve_bruteforce(
        scores: ArrayLike,
        target: ArrayLike,
        seen_classes: ArrayLike,
        unseen_classes: ArrayLike,
        score_space: str = 'softmax') -> SeenUnseenCurve:
    """Reference implementation of :func:`seen_unseen_curve`.

    Finds the break points as the γ at which the calibrated argmax of some
    sample switches between its best seen and best unseen class, then
    evaluates full calibrated-stacking predictions and per-class means at one
    γ inside each interval (midpoints; ``±1`` beyond the ends). O(G·N·C):
    for tests only.
    """
    space, target, seen, unseen = _prepare_curve(scores, target, seen_classes,
                                                 unseen_classes, score_space)
    gap = space[:, seen].max(axis=1) - space[:, unseen].max(axis=1)
    breakpoints = np.unique(gap)
    breakpoints = breakpoints[_run_ends(breakpoints)]
    probes = np.r_[breakpoints[0] - 1.0,
                   (breakpoints[1:] + breakpoints[:-1]) / 2,
                   breakpoints[-1] + 1.0]
    u_list, s_list = [], []
    for gamma in probes:
        pred = calibrated_predict(space, seen, gamma)
        u_list.append(mean_per_class_accuracy(pred, target, unseen)[0])
        s_list.append(mean_per_class_accuracy(pred, target, seen)[0])
    return SeenUnseenCurve(
        breakpoints=breakpoints,
        gamma_low=np.r_[-np.inf, breakpoints],
        gamma_high=np.r_[breakpoints, np.inf],
        unseen=np.asarray(u_list),
        seen=np.asarray(s_list))


def area_under_curve(unseen: ArrayLike, seen: ArrayLike) -> float:
    """Trapezoidal area under the (U, S) curve, U on the x axis.

    Args:
        unseen (array-like): U of the curve points, in γ order.
        seen (array-like): S of the curve points, in γ order.

    Returns:
        float: The area, a fraction of the unit square.
    """
    u = to_numpy(unseen, np.float64)
    s = to_numpy(seen, np.float64)
    if u.shape != s.shape or u.ndim != 1:
        raise ValueError(f'unseen {u.shape} and seen {s.shape} must be 1-d '
                         'arrays of equal length.')
    return float(np.sum(np.diff(u) * (s[1:] + s[:-1]) / 2.0))


def best_gamma_on_curve(curve: SeenUnseenCurve) -> Dict[str, float]:
    """The γ interval of the curve with the largest H.

    The first maximum in γ order is taken and widened over the following
    intervals with the same U and S (their predictions differ only on
    samples that are wrong either way); the returned γ is the middle of that
    run, so it is as far as possible from a flip. An unbounded end is
    replaced by the finite one minus/plus half the span of the break points
    (at least 0.5).

    Args:
        curve (SeenUnseenCurve): A curve from :func:`seen_unseen_curve`.

    Returns:
        dict: ``gamma``, ``U``, ``S``, ``H`` (fractions) and the run's
        ``gamma_low`` / ``gamma_high``.
    """
    h = curve.harmonic
    first = int(np.argmax(h))
    last = first
    while (last + 1 < len(h) and curve.unseen[last + 1] == curve.unseen[first]
           and curve.seen[last + 1] == curve.seen[first]):
        last += 1
    low, high = curve.gamma_low[first], curve.gamma_high[last]
    bp = curve.breakpoints
    margin = 0.5 * max(float(bp[-1] - bp[0]), 1.0) if bp.size else 0.5
    if np.isinf(low) and np.isinf(high):
        gamma = 0.0
    elif np.isinf(low):
        gamma = high - margin
    elif np.isinf(high):
        gamma = low + margin
    else:
        gamma = (low + high) / 2.0
    return dict(
        gamma=float(gamma),
        U=float(curve.unseen[first]),
        S=float(curve.seen[first]),
        H=float(h[first]),
        gamma_low=float(low),
        gamma_high=float(high))
