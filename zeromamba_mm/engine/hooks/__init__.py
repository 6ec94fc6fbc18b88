from .zsl_semantics_hook import ZSLSemanticsHook

__all__ = ['ZSLSemanticsHook']
