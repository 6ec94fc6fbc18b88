"""Values shared by training, testing and inference."""
from .class_semantics import ClassSemantics  # noqa: F401
