from .attribute_regression_loss import AttributeRegressionLoss

__all__ = ['AttributeRegressionLoss']
