"""Model complexity (parameters, FLOPs, activations) of the plugin's models.

``tools/analysis_tools/get_flops.py CONFIG`` is the command; from Python::

    from zeromamba_mm.analysis import (get_model_complexity_info,
                                       use_inference_path)
    info = get_model_complexity_info(use_inference_path(model),
                                     input_shape=(3, 224, 224))

or, with MMEngine's analyzer directly,
``add_flop_handles(FlopAnalyzer(model, inputs)).total()``.
"""
from .flops import (SCAN_OP, SCAN_SIGNATURES, ScanSignature,
                    activation_handles, add_flop_handles, flop_handles,
                    format_count, get_model_complexity_info, matmul_flop_jit,
                    scan_flop_handle, selective_scan_flops)
from .inference_path import set_placeholder_semantics, use_inference_path

__all__ = [
    'SCAN_OP', 'SCAN_SIGNATURES', 'ScanSignature', 'activation_handles',
    'add_flop_handles', 'flop_handles', 'format_count',
    'get_model_complexity_info', 'matmul_flop_jit', 'scan_flop_handle',
    'selective_scan_flops', 'set_placeholder_semantics', 'use_inference_path'
]
