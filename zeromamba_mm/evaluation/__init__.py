from .functional import (DEFAULT_SCORE_SPACE, SCORE_SPACES, SeenUnseenCurve,
                         area_under_curve, best_gamma_on_curve,
                         calibrated_predict, gzsl_accuracy, harmonic_mean,
                         mean_per_class_accuracy, per_class_accuracy,
                         seen_unseen_curve, seen_unseen_curve_bruteforce,
                         to_score_space, zsl_top1)
from .metrics import GZSLMetric
from .operating_point import (config_operating_point, gzsl_metric_cfgs,
                              resolve_operating_point)

__all__ = [
    'GZSLMetric', 'SCORE_SPACES', 'DEFAULT_SCORE_SPACE', 'SeenUnseenCurve',
    'area_under_curve', 'best_gamma_on_curve', 'calibrated_predict',
    'gzsl_accuracy', 'harmonic_mean', 'mean_per_class_accuracy',
    'per_class_accuracy', 'seen_unseen_curve', 'seen_unseen_curve_bruteforce',
    'to_score_space', 'zsl_top1', 'config_operating_point', 'gzsl_metric_cfgs',
    'resolve_operating_point'
]
