"""Values shared by datasets, models, metrics, checkpoints and tools."""
from .operating_point import OperatingPoint

__all__ = ['OperatingPoint']
