from .zsl_inferencer import LABEL_SPACES, ZSLInferencer

__all__ = ['ZSLInferencer', 'LABEL_SPACES']
