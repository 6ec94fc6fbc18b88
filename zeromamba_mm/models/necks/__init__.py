from .mff_neck import MFFNeck
from .zeromamba_neck import ZeroMambaNeck

__all__ = ['MFFNeck', 'ZeroMambaNeck']
