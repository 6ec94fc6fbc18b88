from .zeromamba_neck import ZeroMambaNeck

__all__ = ['ZeroMambaNeck']
