from .attribute_regression_loss import AttributeRegressionLoss
from .contrastive import moco_v3_contrastive
from .gaussian import (kl_to_standard_normal, reparameterize,
                       wasserstein2_sq_diag)
from .introspective import IntrospectiveSimilarity
from .self_calibration_loss import SelfCalibrationLoss

__all__ = [
    'AttributeRegressionLoss', 'SelfCalibrationLoss',
    'IntrospectiveSimilarity', 'moco_v3_contrastive', 'kl_to_standard_normal',
    'reparameterize', 'wasserstein2_sq_diag'
]
