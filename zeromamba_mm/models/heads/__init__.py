from .attribute_head import AttributeHead
from .drmn_head import DRMNHead
from .dual_attention import AttributeChannelAttention, DualAttentionBlock
from .grl import GlobalRepresentationLearning
from .head_wrapper import HeadWrapper
from .hyperspherical_classifier import HypersphericalClassifier
from .introspective_head import IntrospectiveHead
from .linear_attribute_head import LinearAttributeHead
from .probabilistic_head import ProbabilisticRegionHead
from .sef import SemanticFusion
from .semantic_interaction import SemanticInteractionTransformer
from .slp import SemanticLocalProjection
from .zeromamba_head import ZeroMambaHead

__all__ = [
    'AttributeHead', 'LinearAttributeHead', 'SemanticLocalProjection',
    'GlobalRepresentationLearning', 'SemanticFusion', 'ZeroMambaHead',
    'DRMNHead', 'DualAttentionBlock', 'AttributeChannelAttention',
    'SemanticInteractionTransformer', 'HypersphericalClassifier',
    'HeadWrapper', 'IntrospectiveHead', 'ProbabilisticRegionHead'
]
