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
from .accuracy import (check_inputs, group_ids, gzsl_accuracy, harmonic_mean,
                       mean_per_class_accuracy, per_class_accuracy, zsl_top1)
from .score_spaces import (DEFAULT_SCORE_SPACE, SCORE_SPACES,
                           calibrated_predict, class_ids, to_numpy,
                           to_score_space)
from .seen_unseen import (BREAKPOINT_RTOL, SeenUnseenCurve, area_under_curve,
                          best_gamma_on_curve, seen_unseen_curve,
                          seen_unseen_curve_bruteforce)

__all__ = [
    'SCORE_SPACES', 'DEFAULT_SCORE_SPACE', 'to_numpy', 'class_ids',
    'to_score_space', 'calibrated_predict', 'check_inputs', 'group_ids',
    'per_class_accuracy', 'mean_per_class_accuracy', 'harmonic_mean',
    'zsl_top1', 'gzsl_accuracy', 'SeenUnseenCurve', 'seen_unseen_curve',
    'seen_unseen_curve_bruteforce', 'area_under_curve', 'best_gamma_on_curve',
    'BREAKPOINT_RTOL'
]
