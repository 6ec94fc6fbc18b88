from .gzsl_metric import SELECTED_GAMMA_KEY, GZSLMetric

__all__ = ['GZSLMetric', 'SELECTED_GAMMA_KEY']
