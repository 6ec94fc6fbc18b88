from .dump_results import ZSLDumpResults
from .gzsl_metric import GAMMA_MODES, PROTOCOLS, GZSLMetric

__all__ = ['GZSLMetric', 'PROTOCOLS', 'GAMMA_MODES', 'ZSLDumpResults']
