from .functional import (SCORE_SPACES, SeenUnseenCurve, area_under_curve,
                         best_gamma_on_curve, calibrated_predict,
                         gzsl_accuracy, harmonic_mean, mean_per_class_accuracy,
                         per_class_accuracy, seen_unseen_curve,
                         seen_unseen_curve_bruteforce, to_score_space,
                         zsl_top1)
from .metrics import GZSLMetric

__all__ = [
    'GZSLMetric', 'SCORE_SPACES', 'SeenUnseenCurve', 'area_under_curve',
    'best_gamma_on_curve', 'calibrated_predict', 'gzsl_accuracy',
    'harmonic_mean', 'mean_per_class_accuracy', 'per_class_accuracy',
    'seen_unseen_curve', 'seen_unseen_curve_bruteforce', 'to_score_space',
    'zsl_top1'
]
