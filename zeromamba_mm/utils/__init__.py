from .atomic_files import (DiskFullError, WorkDirBusyError, WorkDirLock,
                           remove_stale_temp_files, write_atomically,
                           write_text_atomically)
from .config_files import ConfigFileError, read_config
from .safe_load import (CheckpointLoadError, CheckpointNotFoundError,
                        UnsafeFileError, load_npy, load_numpy_pickle,
                        load_torch_file)
from .word_vectors import load_word_vectors

__all__ = [
    'ConfigFileError', 'read_config', 'DiskFullError', 'WorkDirBusyError',
    'WorkDirLock',
    'remove_stale_temp_files', 'write_atomically', 'write_text_atomically',
    'CheckpointLoadError', 'CheckpointNotFoundError', 'UnsafeFileError',
    'load_npy', 'load_numpy_pickle', 'load_torch_file', 'load_word_vectors'
]
