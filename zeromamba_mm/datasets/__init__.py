from .class_semantics import ClassSemantics, load_class_semantics
from .demo_data import attribute_names, make_demo_data
from .image_check import check_image_files
from .samplers import EpochAwareSampler, SeededIndex
from .table_dataset import TableZSLDataset
from .table_format import load_table_annotation, save_table_annotation
from .text_files import read_rows
from .xlsa17 import (PATH_PRESETS, ZSLAnnotation, ZSLDataError,
                     detect_path_preset, holdout_per_class, load_xlsa17,
                     normalize_rows, read_mat, register_path_preset,
                     remap_image_paths)
from .xlsa17_dataset import XLSA17Dataset
from .zsl_dataset import (CleanSplit, SampleLoadError, ZSLDataset,
                          make_clean_split)

__all__ = [
    'ClassSemantics', 'load_class_semantics', 'ZSLDataset', 'XLSA17Dataset',
    'TableZSLDataset', 'CleanSplit', 'make_clean_split', 'ZSLAnnotation',
    'ZSLDataError', 'SampleLoadError', 'PATH_PRESETS', 'register_path_preset',
    'detect_path_preset', 'remap_image_paths', 'load_xlsa17', 'read_mat',
    'normalize_rows', 'holdout_per_class', 'load_table_annotation',
    'save_table_annotation', 'read_rows', 'make_demo_data', 'attribute_names',
    'check_image_files', 'EpochAwareSampler', 'SeededIndex'
]
