from .functional import (SeenUnseenCurve, area_under_curve,
                         best_gamma_on_curve, calibrated_predict,
                         gzsl_accuracy, harmonic_mean, mean_per_class_accuracy,
                         per_class_accuracy, seen_unseen_curve,
                         seen_unseen_curve_bruteforce, to_score_space,
                         zsl_top1)
from .metrics import SELECTED_GAMMA_KEY, GZSLMetric

__all__ = [
    'GZSLMetric', 'SELECTED_GAMMA_KEY', 'SeenUnseenCurve', 'area_under_curve',
    'best_gamma_on_curve', 'calibrated_predict', 'gzsl_accuracy',
    'harmonic_mean', 'mean_per_class_accuracy', 'per_class_accuracy',
    'seen_unseen_curve', 'seen_unseen_curve_bruteforce', 'to_score_space',
    'zsl_top1'
]
