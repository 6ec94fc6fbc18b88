from .safe_load import (CheckpointLoadError, CheckpointNotFoundError,
                        UnsafeFileError, load_npy, load_numpy_pickle,
                        load_torch_file)
from .word_vectors import load_word_vectors

__all__ = [
    'CheckpointLoadError', 'CheckpointNotFoundError', 'UnsafeFileError',
    'load_npy', 'load_numpy_pickle', 'load_torch_file', 'load_word_vectors'
]
