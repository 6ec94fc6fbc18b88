from .zsl_inferencer import (ClassSemantics, ZSLInferencer,
                             load_class_semantics, read_checkpoint)

__all__ = [
    'ZSLInferencer', 'ClassSemantics', 'load_class_semantics',
    'read_checkpoint'
]
