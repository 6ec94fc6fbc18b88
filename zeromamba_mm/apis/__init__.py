from .model_zoo import get_model, list_plugin_models
from .zsl_inferencer import LABEL_SPACES, ZSLInferencer

__all__ = ['ZSLInferencer', 'LABEL_SPACES', 'get_model', 'list_plugin_models']
