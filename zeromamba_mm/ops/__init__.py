from .selective_scan_ref import selective_scan_ref

# Until the fast backends land the public entry point is the reference.
selective_scan = selective_scan_ref

__all__ = ['selective_scan', 'selective_scan_ref']
