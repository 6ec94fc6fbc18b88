# The backends live in selective_scan_{torch,triton,mamba}.py; they are not
# re-exported here so that those module names are not shadowed.
from .causal_conv1d import causal_depthwise_conv1d
from .selective_scan_dispatch import (BACKENDS, backend_unavailable_reason,
                                      resolve_backend, selective_scan)
from .selective_scan_2d import selective_scan_2d
from .selective_scan_ref import selective_scan_ref

__all__ = [
    'BACKENDS', 'backend_unavailable_reason', 'causal_depthwise_conv1d',
    'resolve_backend', 'selective_scan', 'selective_scan_2d',
    'selective_scan_ref'
]
