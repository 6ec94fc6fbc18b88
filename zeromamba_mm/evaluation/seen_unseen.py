"""The seen-unseen accuracy curve (SUC) of calibrated stacking and AUSUC.

The curve and its area come from sweeping γ over *every* break point, i.e.
every γ at which some sample's prediction changes. :func:`seen_unseen_curve`
does that in O(N log N + N·C); :func:`seen_unseen_curve_bruteforce` is the
slow reference used by the tests.
"""
from dataclasses import dataclass
from typing import Dict

import numpy as np

from .accuracy import check_inputs, group_ids, mean_per_class_accuracy
from .score_spaces import (DEFAULT_SCORE_SPACE, ArrayLike, calibrated_predict,
                           to_numpy, to_score_space)

__all__ = [
    'SeenUnseenCurve', 'seen_unseen_curve', 'seen_unseen_curve_bruteforce',
    'area_under_curve', 'best_gamma_on_curve', 'BREAKPOINT_RTOL'
]


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
    scores, target = check_inputs(scores, target)
    seen, unseen = group_ids(scores.shape[1], seen_classes, unseen_classes)
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


def seen_unseen_curve(
        scores: ArrayLike,
        target: ArrayLike,
        seen_classes: ArrayLike,
        unseen_classes: ArrayLike,
        score_space: str = DEFAULT_SCORE_SPACE) -> SeenUnseenCurve:
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
            :data:`DEFAULT_SCORE_SPACE`.

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
        score_space: str = DEFAULT_SCORE_SPACE) -> SeenUnseenCurve:
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
