from .demo_data import make_demo_data
from .table_format import load_table_annotation, save_table_annotation
from .xlsa17 import (PATH_PRESETS, ZSLAnnotation, ZSLDataError,
                     detect_path_preset, load_xlsa17, register_path_preset,
                     remap_image_paths)
from .zsl_dataset import CleanSplit, ZSLDataset, make_clean_split

__all__ = [
    'ZSLDataset', 'CleanSplit', 'make_clean_split', 'ZSLAnnotation',
    'ZSLDataError', 'PATH_PRESETS', 'register_path_preset',
    'detect_path_preset', 'remap_image_paths', 'load_xlsa17',
    'load_table_annotation', 'save_table_annotation', 'make_demo_data'
]
