from .attention import (AttributeAttention, compute_attribute_attention,
                        plot_attribute_attention,
                        visualize_attribute_attention)
from .curves import CurvePoints, plot_seen_unseen_curve, points_from_arrays

__all__ = [
    'AttributeAttention', 'compute_attribute_attention',
    'plot_attribute_attention', 'visualize_attribute_attention', 'CurvePoints',
    'points_from_arrays', 'plot_seen_unseen_curve'
]
