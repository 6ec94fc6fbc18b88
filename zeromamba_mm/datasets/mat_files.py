"""Read MATLAB ``.mat`` files of zero-shot data (xlsa17's layout).

Only the named variables are decoded, through :mod:`mmengine.fileio`
backends; cell arrays of names and the 1-based index arrays of the split
files are turned into Python strings and 0-based indices, checked.
"""
import io
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence

import numpy as np
import scipy.io as sio
from mmengine.fileio import get_file_backend

from .data_checks import ZSLDataError, check_no_duplicates

__all__ = [
    'read_mat', 'cell_strings', 'read_cell_names', 'check_loc_unique',
    'one_based'
]


def read_mat(path: str,
             keys: Sequence[str],
             optional: Sequence[str] = (),
             backend_args: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """Load only ``keys`` (and the ``optional`` keys present) of a .mat file.

    Only the named variables are decoded (``variable_names=``), so the large
    ``features`` array of ``res101.mat`` is skipped when present. The file
    may live on any :mod:`mmengine.fileio` backend.

    Args:
        path (str): Path or URI of the file.
        keys (Sequence[str]): Variables that must be present.
        optional (Sequence[str]): Variables read when present.
        backend_args (dict, optional): Arguments of the file backend.

    Returns:
        dict: Variable name -> array, as ``scipy.io.loadmat`` returns them.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ZSLDataError: if a required key is missing (names the keys present)
            or the file cannot be read.
    """
    backend = get_file_backend(
        path, backend_args=backend_args, enable_singleton=True)
    if not backend.isfile(path):
        raise FileNotFoundError(f'xlsa17 file not found: {path}')
    with _local_copy(path, backend) as source:
        return _read_local_mat(path, source, keys, optional)


@contextmanager
def _local_copy(path: str, backend):
    """Yield something scipy can read: the path itself on the local disk,
    a downloaded temporary file, or the bytes in memory."""
    if hasattr(backend, 'get_local_path'):
        with backend.get_local_path(path) as local:
            yield local
    else:
        yield io.BytesIO(backend.get(path))


def _read_local_mat(path, source, keys, optional):
    try:
        present = [name for name, _, _ in sio.whosmat(source)]
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise ZSLDataError(
            f'{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; '
            "re-save it with save(..., '-v7').") from e
    except Exception as e:
        raise ZSLDataError(f'Cannot read {path} as a .mat file: {e}') from e
    missing = [k for k in keys if k not in present]
    if missing:
        raise ZSLDataError(
            f'{path} has no key(s) {missing}; it holds {sorted(present)}.')
    wanted = list(keys) + [k for k in optional if k in present]
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return sio.loadmat(source, variable_names=wanted)


def cell_strings(cell: np.ndarray, path: str, key: str) -> List[str]:
    """The strings of a MATLAB cell array, one per entry."""
    out = []
    for i, item in enumerate(np.asarray(cell, dtype=object).ravel()):
        item = np.asarray(item).ravel()
        if item.size != 1 or not isinstance(item[0], str):
            raise ZSLDataError(
                f'{path}: entry {i} of {key!r} is not a string ({item!r}).')
        out.append(str(item[0]))
    return out


def _mat_entry(i: int) -> str:
    """A 0-based position as a MATLAB user finds it (1-based)."""
    return f'entry {i + 1}'


def read_cell_names(mat: dict, key: str, path: str) -> List[str]:
    """The strings of a cell array (``allclasses_names``...), each once.

    Raises:
        ZSLDataError: on a non-string entry or a repeated name, naming the
            file, key and (1-based) entries.
    """
    names = cell_strings(mat[key], path, key)
    check_no_duplicates(
        names,
        path,
        'names',
        key=key,
        place=_mat_entry,
        fix='Each name must be unique (entries count from 1, as in '
        'MATLAB): rename or remove the repeated entry.')
    return names


def check_loc_unique(indices: np.ndarray, image_files: Optional[Sequence[str]],
                     split_file: str, key: str) -> None:
    """Refuse an image listed twice in one ``*_loc`` split, by index or by
    file: it would count twice in training or evaluation.

    Args:
        indices (np.ndarray): The split's 0-based image indices.
        image_files (Sequence[str], optional): The paths of ``res101.mat``
            (None: only repeated indices are looked for).
        split_file (str): ``att_splits.mat``, for the message.
        key (str): The split's key, e.g. ``'trainval_loc'``.

    Raises:
        ZSLDataError: naming the repeated (1-based) index or file and its
            entries in ``key``, with the fix.
    """
    fix = (f'An image counts once per split: remove the repeated entries '
           f'of {key} (entries and indices count from 1, as in MATLAB; '
           f"e.g. {key} = unique({key}, 'stable')).")
    indices = np.asarray(indices).tolist()
    check_no_duplicates(
        indices,
        split_file,
        'image indices',
        key=key,
        place=_mat_entry,
        describe=lambda i: f'index {i + 1}' +
        ('' if image_files is None else f' ({image_files[i]!r})'),
        fix=fix)
    if image_files is None:
        return
    check_no_duplicates([image_files[i] for i in indices],
                        split_file,
                        'image files (at different indices)',
                        key=key,
                        place=lambda j: f'{_mat_entry(j)}: index '
                        f'{indices[j] + 1}',
                        fix=fix)


def one_based(values: np.ndarray, upper: int, path: str, key: str,
              what: str) -> np.ndarray:
    """Turn a MATLAB 1-based index array into 0-based int64, checked."""
    values = np.asarray(values).ravel()
    if values.dtype.kind == 'f':
        if not np.all(np.isfinite(values)) or np.any(
                values != np.round(values)):
            raise ZSLDataError(f'{path}: {key!r} holds non-integer values.')
    # uint16 would wrap around on ``- 1``: widen first.
    values = values.astype(np.int64)
    bad = (values < 1) | (values > upper)
    if bad.any():
        raise ZSLDataError(
            f'{path}: {key!r} holds {int(bad.sum())} value(s) outside the '
            f'1-based range [1, {upper}] ({what}); first bad value: '
            f'{int(values[bad][0])}.')
    return values - 1
