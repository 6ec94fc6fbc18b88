from .attribute_head import AttributeHead
from .grl import GlobalRepresentationLearning
from .linear_attribute_head import LinearAttributeHead
from .sef import SemanticFusion
from .slp import SemanticLocalProjection
from .zeromamba_head import ZeroMambaHead

__all__ = [
    'AttributeHead', 'LinearAttributeHead', 'SemanticLocalProjection',
    'GlobalRepresentationLearning', 'SemanticFusion', 'ZeroMambaHead'
]
