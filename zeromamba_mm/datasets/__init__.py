from .annotation import ZSLAnnotation, holdout_per_class
from .class_semantics import load_class_semantics
from .data_checks import ZSLDataError, normalize_rows
from .demo_data import attribute_names, make_demo_data
from .image_check import check_image_files
from .inference_semantics import (checkpoint_semantics,
                                  semantics_for_inference)
from .mat_files import read_mat
from .path_rules import (PATH_PRESETS, detect_path_preset,
                         register_path_preset, remap_image_paths)
from .samplers import EpochAwareSampler, SeededIndex
from .table_dataset import TableZSLDataset
from .table_format import load_table_annotation, save_table_annotation
from .text_files import read_rows
from .xlsa17 import load_xlsa17
from .xlsa17_dataset import XLSA17Dataset
from .zsl_dataset import (BaseZSLDataset, CleanSplit, SampleLoadError,
                          make_clean_split)
from .zsl_dataset_builder import ZSLDataset

__all__ = [
    'load_class_semantics', 'checkpoint_semantics', 'semantics_for_inference',
    'ZSLDataset', 'BaseZSLDataset', 'XLSA17Dataset',
    'TableZSLDataset', 'CleanSplit', 'make_clean_split', 'ZSLAnnotation',
    'ZSLDataError', 'SampleLoadError', 'PATH_PRESETS', 'register_path_preset',
    'detect_path_preset', 'remap_image_paths', 'load_xlsa17', 'read_mat',
    'normalize_rows', 'holdout_per_class', 'load_table_annotation',
    'save_table_annotation', 'read_rows', 'make_demo_data', 'attribute_names',
    'check_image_files', 'EpochAwareSampler', 'SeededIndex'
]
