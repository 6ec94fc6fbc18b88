"""Export to ONNX and inference with onnxruntime (``pip install
'zeromamba_mm[deploy]'``); see docs/deploy.md."""
from .exportable import ExportableClassifier
from .exporter import ExportMismatchError, export_onnx
from .metadata import MODES, DeployedModelError
from .onnx_inferencer import ONNXZSLInferencer
from .operating_point import operating_point

__all__ = [
    'ExportableClassifier', 'ExportMismatchError', 'export_onnx', 'MODES',
    'DeployedModelError', 'ONNXZSLInferencer', 'operating_point'
]
