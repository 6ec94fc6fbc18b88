"""Read the classes a zero-shot model scores: names and attribute vectors.

A zero-shot model scores any class by its attribute vector, so the classes
are an input of inference. They come from the same files as the datasets'
(an xlsa17 ``att_splits.mat``, a class-attribute CSV table) or a ``.npy``
array, and are read with the dataset loaders' own readers and checks.
"""
import os.path as osp
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .data_checks import (ZSLDataError, check_finite, check_no_duplicates,
                          normalize_rows)
from .table_format import read_attribute_table
from .text_files import read_name_list
from .xlsa17 import (_cell_strings, check_loc_unique, read_cell_names,
                     read_mat)

__all__ = ['ClassSemantics', 'load_class_semantics', 'read_name_list']

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]
Names = Union[None, str, Path, Sequence[str]]
#: File types :func:`load_class_semantics` reads.
SEMANTICS_SUFFIXES = ('.npy', '.csv', '.mat')


@dataclass
class ClassSemantics:
    """The classes a zero-shot model scores.

    Attributes:
        attributes (np.ndarray): (C, A) float32 attribute vectors.
        class_names (tuple[str]): C unique class names.
        seen_classes (np.ndarray, optional): Sorted ids of the classes seen in
            training (needed for calibrated stacking and label spaces).
        attribute_names (tuple[str], optional): A attribute names.
        source (str): Where the semantics came from (for messages).
    """
    attributes: np.ndarray
    class_names: Tuple[str, ...]
    seen_classes: Optional[np.ndarray] = None
    attribute_names: Optional[Tuple[str, ...]] = None
    source: str = 'the given array'

    @property
    def num_classes(self) -> int:
        return int(self.attributes.shape[0])

    @property
    def num_attributes(self) -> int:
        return int(self.attributes.shape[1])

    @property
    def unseen_classes(self) -> Optional[np.ndarray]:
        """Ids of the classes not seen in training (None if unknown)."""
        if self.seen_classes is None:
            return None
        return np.setdiff1d(np.arange(self.num_classes), self.seen_classes)


def _as_names(names: Names, what: str) -> Optional[Tuple[str, ...]]:
    """Names given as a list or a file (``what``: ``'class'``...)."""
    if names is None:
        return None
    if isinstance(names, (str, Path)):
        return read_name_list(str(names), f'{what.capitalize()}-name file')
    names = tuple(str(n) for n in names)
    if not names:
        raise ZSLDataError(f'{what}_names: the list of names is empty.')
    check_no_duplicates(names, f'{what}_names', f'{what} names')
    return names


def _read_xlsa17(path: str, attribute_key: str):
    """``att`` (A, C) as (C, A), class names and, when ``res101.mat`` lies
    beside the file, the seen classes (labels of the ``trainval`` images; the
    large ``features`` array is not read)."""
    mat = read_mat(
        path, [attribute_key], optional=['allclasses_names', 'trainval_loc'])
    att = np.asarray(mat[attribute_key], dtype=np.float64)
    if att.ndim != 2:
        raise ZSLDataError(f'{path}: {attribute_key!r} must be 2-D (A, C), '
                           f'got shape {att.shape}.')
    att = att.T  # the file stores one class per column
    names = None
    if 'allclasses_names' in mat:
        names = tuple(read_cell_names(mat, 'allclasses_names', path))
        if len(names) != att.shape[0]:
            raise ZSLDataError(
                f'{path}: allclasses_names has {len(names)} entries but '
                f'{attribute_key!r} has {att.shape[0]} classes (columns).')
    seen = None
    res101 = osp.join(osp.dirname(path), 'res101.mat')
    if 'trainval_loc' in mat and osp.isfile(res101):
        images = read_mat(res101, ['labels'], optional=['image_files'])
        labels = np.asarray(images['labels']).ravel().astype(np.int64)
        loc = np.asarray(mat['trainval_loc']).ravel().astype(np.int64)
        if loc.size and (loc.min() < 1 or loc.max() > labels.size):
            raise ZSLDataError(
                f'{path}: trainval_loc holds 1-based indices outside [1, '
                f'{labels.size}] (the images of {res101}).')
        files = (
            _cell_strings(images['image_files'], res101, 'image_files')
            if 'image_files' in images else None)
        check_loc_unique(loc - 1, files, path, 'trainval_loc')
        seen = np.unique(labels[loc - 1] - 1)
        if seen.size and (seen.min() < 0 or seen.max() >= att.shape[0]):
            raise ZSLDataError(
                f'{res101}: labels of trainval images fall outside the '
                f'{att.shape[0]} classes of {path}.')
    return att, names, seen


def _seen_ids(seen: ArrayLike, names: Sequence[str],
              source: str) -> np.ndarray:
    """Seen classes given as ids or names -> sorted unique int64 ids."""
    values = list(seen) if isinstance(seen, (list, tuple)) else list(
        np.asarray(seen).ravel())
    index = {n: i for i, n in enumerate(names)}
    ids = []
    for value in values:
        if isinstance(value, (str, np.str_)):
            if str(value) not in index:
                raise ZSLDataError(f'Seen class {str(value)!r} is not one of '
                                   f'the classes of {source}.')
            ids.append(index[str(value)])
        else:
            ids.append(int(value))
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if ids.size and (ids.min() < 0 or ids.max() >= len(names)):
        raise ZSLDataError(
            f'Seen class ids must be in [0, {len(names)}) (the classes of '
            f'{source}); got min {ids.min()}, max {ids.max()}.')
    return ids


def _read_matrix(class_attributes, attribute_key: str):
    """The source -> (matrix, source, file names, attribute names, seen)."""
    if isinstance(class_attributes, torch.Tensor):
        return (class_attributes.detach().cpu().numpy(), 'the given tensor',
                None, None, None)
    if not isinstance(class_attributes, (str, Path)):
        return np.asarray(class_attributes), 'the given array', None, None, \
            None
    source = str(class_attributes)
    if not osp.isfile(source):
        raise FileNotFoundError(f'Class-attribute file not found: {source}')
    suffix = osp.splitext(source)[1].lower()
    if suffix == '.npy':
        try:
            return np.load(source, allow_pickle=False), source, None, None, \
                None
        except ValueError as e:
            raise ZSLDataError(f'Cannot read {source} as a numeric .npy '
                               f'array: {e}') from e
    if suffix == '.csv':
        names, matrix, attr_names = read_attribute_table(
            source, first_column='class')
        return matrix, source, names, attr_names, None
    if suffix == '.mat':
        matrix, names, seen = _read_xlsa17(source, attribute_key)
        return matrix, source, names, None, seen
    raise ZSLDataError(
        f'Unknown class-attribute file type {suffix!r} of {source}: expected '
        f'one of {SEMANTICS_SUFFIXES} (.npy (C, A), .csv with a "class,'
        'attr_1,..." header, or an xlsa17 att_splits.mat).')


def load_class_semantics(class_attributes: Union[str, Path, ArrayLike],
                         class_names: Names = None,
                         seen_classes: Optional[ArrayLike] = None,
                         attribute_names: Names = None,
                         normalize: bool = True,
                         attribute_key: str = 'att') -> ClassSemantics:
    """Read the classes to score from a file or an array.

    Sources: a ``.npy`` (C, A) array (names from ``class_names``, else
    ``class_0 ...``); a ``.csv`` with the header ``class,attr_1,...`` and one
    row per class; an xlsa17 ``att_splits.mat`` (``att`` or ``original_att``
    and ``allclasses_names``; the seen classes when ``res101.mat`` lies
    beside it); or a (C, A) array, tensor or nested list.

    Args:
        class_attributes (str | Path | array): The source, see above.
        class_names (str | Path | Sequence[str], optional): Names of the C
            classes (a list or a text file, one per line); overrides the
            file's.
        seen_classes (array | Sequence[int | str], optional): Ids or names of
            the classes seen in training; overrides what the file says.
        attribute_names (str | Path | Sequence[str], optional): Names of the
            A attributes; overrides the CSV header.
        normalize (bool): L2-normalise each class row, as the xlsa17 ``att``
            rows the models are trained with. Defaults to True.
        attribute_key (str): Key of a ``.mat`` file: ``'att'`` or
            ``'original_att'``. Defaults to ``'att'``.

    Returns:
        ClassSemantics: The classes.

    Raises:
        FileNotFoundError: If a file does not exist.
        ZSLDataError: On a malformed file, NaN/inf values (naming class and
            attribute), a zero row (with ``normalize``), duplicate class
            names, or name/seen lists that do not match the matrix.
    """
    matrix, source, file_names, file_attr_names, file_seen = _read_matrix(
        class_attributes, attribute_key)
    if matrix.dtype.kind not in 'fiub':
        raise ZSLDataError(f'Class attributes of {source} must be numeric, '
                           f'got dtype {matrix.dtype}.')
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ZSLDataError(f'Class attributes of {source} must be a 2-D '
                           f'(C, A) array with C, A > 0, got shape '
                           f'{matrix.shape}.')
    num_classes, num_attributes = matrix.shape
    names = _as_names(class_names, 'class') or file_names or tuple(
        f'class_{i}' for i in range(num_classes))
    if len(names) != num_classes:
        raise ZSLDataError(
            f'{len(names)} class names were given for the {num_classes} '
            f'classes (rows) of {source}.')
    if class_names is None:  # given names were checked where they came from
        check_no_duplicates(names, source, 'class names')
    attr_names = _as_names(attribute_names, 'attribute') or file_attr_names
    if attr_names is not None and len(attr_names) != num_attributes:
        raise ZSLDataError(
            f'{len(attr_names)} attribute names were given for the '
            f'{num_attributes} attributes (columns) of {source}.')
    check_finite(matrix, source, names, attr_names)
    matrix = normalize_rows(matrix, f'the class attributes of {source}') \
        if normalize else matrix.astype(np.float32)
    seen = file_seen if seen_classes is None else _seen_ids(
        seen_classes, names, source)
    return ClassSemantics(
        attributes=matrix,
        class_names=tuple(names),
        seen_classes=seen,
        attribute_names=attr_names,
        source=source)
