"""Values shared by datasets, models, metrics, checkpoints and tools."""
from .class_semantics import ClassSemantics
from .operating_point import OperatingPoint

__all__ = ['ClassSemantics', 'OperatingPoint']
