from .attention import (AttributeAttention, compute_attribute_attention,
                        draw_attribute_attention, plot_attribute_attention,
                        visualize_attribute_attention)
from .curves import (CurvePoints, draw_seen_unseen_curve, figure_to_array,
                     metric_curve_points, plot_seen_unseen_curve,
                     points_from_arrays, save_seen_unseen_curve)
from .zsl_visualizer import ZSLVisualizer, draw_labelled_image

__all__ = [
    'AttributeAttention', 'compute_attribute_attention',
    'draw_attribute_attention', 'plot_attribute_attention',
    'visualize_attribute_attention', 'CurvePoints', 'points_from_arrays',
    'draw_seen_unseen_curve', 'plot_seen_unseen_curve',
    'save_seen_unseen_curve', 'figure_to_array', 'metric_curve_points',
    'ZSLVisualizer', 'draw_labelled_image'
]
