"""Export to ONNX and inference with onnxruntime (``pip install
'zeromamba_mm[deploy]'``); see docs/deploy.md."""
from .exportable import ExportableClassifier
from .exporter import ExportMismatchError, export_onnx
from .metadata import MODES, DeployedModelError
from .onnx_inferencer import ONNXZSLInferencer

__all__ = [
    'ExportableClassifier', 'ExportMismatchError', 'export_onnx', 'MODES',
    'DeployedModelError', 'ONNXZSLInferencer'
]
