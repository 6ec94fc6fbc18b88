"""The one set of readers of class-attribute files: ``.mat``, CSV, ``.npy``.

The dataset loaders (:mod:`.xlsa17`, :mod:`.table_format`) and inference
(:func:`load_class_semantics`) read the class-attribute matrix, the class and
attribute names with these functions, and turn what they read into a
:class:`~zeromamba_mm.structures.ClassSemantics` with
:func:`semantics_from_raw`, which records the normalisation it applied.
"""
import io
import os.path as osp
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.fileio import get_file_backend

from zeromamba_mm.structures.class_semantics import (ClassSemantics,
                                                     apply_normalization)
from .data_checks import ZSLDataError, check_finite, check_no_duplicates
from .mat_files import cell_strings, check_loc_unique, read_cell_names, \
    read_mat
from .text_files import read_name_list, read_rows

__all__ = [
    'load_class_semantics', 'read_name_list', 'read_mat_attributes',
    'read_npy_matrix', 'read_attribute_table', 'semantics_from_raw',
    'as_names', 'ATTRIBUTE_KEYS'
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]
Names = Union[None, str, Path, Sequence[str]]
#: File types :func:`load_class_semantics` reads.
SEMANTICS_SUFFIXES = ('.npy', '.csv', '.mat')
#: ``attribute_key`` of the datasets -> the normalisation it stands for:
#: xlsa17's ``att`` has unit rows, ``original_att`` the raw values.
ATTRIBUTE_KEYS = {'att': 'l2', 'original_att': 'none'}


def normalization_of(attribute_key: str) -> str:
    """The normalisation an ``attribute_key`` stands for (see
    :data:`ATTRIBUTE_KEYS`)."""
    if attribute_key not in ATTRIBUTE_KEYS:
        raise ValueError(f'attribute_key must be one of '
                         f'{sorted(ATTRIBUTE_KEYS)}, got {attribute_key!r}.')
    return ATTRIBUTE_KEYS[attribute_key]


def semantics_from_raw(raw: np.ndarray,
                       normalization: str,
                       source: str,
                       class_names: Optional[Sequence[str]] = None,
                       attribute_names: Optional[Sequence[str]] = None,
                       seen_classes=None,
                       unseen_classes=None,
                       key: str = 'attributes') -> ClassSemantics:
    """Check raw (C, A) values, normalise them and make the value.

    Args:
        raw (np.ndarray): (C, A) values as the file stores them.
        normalization (str): ``'l2'`` or ``'none'``.
        source (str): The file(s), for messages.
        class_names, attribute_names: Names, if known.
        seen_classes, unseen_classes: Class ids, if known.
        key (str): The variable of the file, for messages.
    """
    raw = np.asarray(raw)
    fields = dict(
        class_names=None if class_names is None else tuple(class_names),
        seen_classes=seen_classes,
        unseen_classes=unseen_classes,
        attribute_names=(None if attribute_names is None else
                         tuple(attribute_names)),
        normalization=normalization,
        source=source)
    if raw.ndim != 2 or 0 in raw.shape or raw.dtype.kind not in 'fiub':
        return ClassSemantics(raw, **fields)  # refused, naming the shape
    # Name the file's variable and place of a NaN before normalising.
    check_finite(
        raw, source, class_names if class_names is not None
        and len(class_names) == raw.shape[0] else None,
        attribute_names if attribute_names is not None
        and len(attribute_names) == raw.shape[1] else None, key)
    return ClassSemantics(
        apply_normalization(raw, normalization, f'{source}:{key}'), **fields)


def read_mat_attributes(path: str,
                        attribute_key: str = 'att',
                        required: Sequence[str] = (),
                        optional: Sequence[str] = (),
                        backend_args: Optional[dict] = None):
    """Read ``attribute_key`` (A, C) of an ``att_splits.mat`` as (C, A).

    Args:
        path (str): The ``.mat`` file.
        attribute_key (str): ``'att'`` or ``'original_att'``.
        required (Sequence[str]): More variables that must be present.
        optional (Sequence[str]): More variables read when present.
        backend_args (dict, optional): Arguments of the file backend.

    Returns:
        tuple: the (C, A) float64 values, the class names
        (``allclasses_names``) and attribute names (``attribute_names``, the
        demo writes one) or None each, and the dict of variables read.
    """
    mat = read_mat(
        path, [attribute_key, *required],
        optional=['allclasses_names', 'attribute_names', *optional],
        backend_args=backend_args)
    att = np.asarray(mat[attribute_key], dtype=np.float64)
    if att.ndim != 2:
        raise ZSLDataError(f'{path}: {attribute_key!r} must be 2-D (A, C), '
                           f'got shape {att.shape}.')
    att = att.T  # the file stores one class per column
    names = attr_names = None
    if 'allclasses_names' in mat:
        names = tuple(read_cell_names(mat, 'allclasses_names', path))
        if len(names) != att.shape[0]:
            raise ZSLDataError(
                f'{path}: allclasses_names has {len(names)} entries but '
                f'{attribute_key!r} has {att.shape[0]} classes (columns).')
    if 'attribute_names' in mat:
        attr_names = tuple(read_cell_names(mat, 'attribute_names', path))
        if len(attr_names) != att.shape[1]:
            raise ZSLDataError(
                f'{path}: attribute_names has {len(attr_names)} entries but '
                f'{attribute_key!r} has {att.shape[1]} attributes (rows).')
    return att, names, attr_names, mat


def read_npy_matrix(path: str,
                    backend_args: Optional[dict] = None) -> np.ndarray:
    """A (C, A) numeric ``.npy`` array (pickled arrays are refused), as
    float64, on any file backend."""
    backend = get_file_backend(
        path, backend_args=backend_args, enable_singleton=True)
    if not backend.exists(path):
        raise FileNotFoundError(f'Class-attribute file not found: {path}')
    try:
        matrix = np.load(io.BytesIO(backend.get(path)), allow_pickle=False)
    except ValueError as e:
        raise ZSLDataError(f'Cannot read {path} as a plain numeric .npy '
                           f'array (pickled arrays are refused): {e}') from e
    if matrix.dtype.kind not in 'fiub' or matrix.ndim != 2 or \
            0 in matrix.shape:
        raise ZSLDataError(
            f'{path} must hold a numeric 2-D (C, A) array with C, A > 0; '
            f'got dtype {matrix.dtype}, shape {matrix.shape}.')
    return matrix.astype(np.float64)


def read_attribute_table(
    path: str,
    backend_args: Optional[dict] = None,
    first_column: Optional[str] = None
) -> Tuple[Tuple[str, ...], np.ndarray, Tuple[str, ...]]:
    """Read a class-attribute CSV: a header ``class,attr_1,attr_2,...`` and
    one ``name,v_1,v_2,...`` row per class.

    Args:
        path (str): Path or URI of the CSV file.
        backend_args (dict, optional): Arguments of the file backend.
        first_column (str, optional): The name the header's first column
            must have (any case), e.g. ``'class'``; None accepts any.

    Returns:
        tuple: class names, the (C, A) float64 values and the A attribute
        names, in file order.

    Raises:
        ZSLDataError: naming file and line, on a bad header, a row of
            another length, a value that is not a number or is NaN/inf, and
            a class or attribute name listed twice.
    """
    rows = read_rows(path, backend_args)
    header = rows[0][1]
    attr_names = tuple(header[1:])
    if not attr_names or (first_column is not None
                          and header[0].lower() != first_column):
        raise ZSLDataError(
            f'{path}: the first row must be the header "class,attr_1,'
            f'attr_2,..." (one column per attribute), got {header[:4]}.')
    check_no_duplicates(
        attr_names,
        path,
        'attribute names',
        key='header',
        place=lambda j: f'column {j + 2}')
    check_no_duplicates([fields[0] for _, fields in rows[1:]],
                        path,
                        'class names',
                        place=lambda i: f'line {rows[i + 1][0]}')
    names, values = [], []
    for lineno, fields in rows[1:]:
        if len(fields) != len(header):
            raise ZSLDataError(
                f'{path}:{lineno}: {len(fields) - 1} attribute values but '
                f'the header names {len(attr_names)} attributes.')
        try:
            row = np.asarray(fields[1:], dtype=np.float64)
        except ValueError as e:
            raise ZSLDataError(f'{path}:{lineno}: {e}') from e
        bad = np.flatnonzero(~np.isfinite(row))
        if bad.size:
            raise ZSLDataError(
                f'{path}:{lineno}: class {fields[0]!r} has NaN/inf for '
                f'attribute(s) {[attr_names[j] for j in bad[:5]]} '
                f'({[fields[1 + j] for j in bad[:5]]}). Fill in the missing '
                'values before training.')
        names.append(fields[0])
        values.append(row)
    if not names:
        raise ZSLDataError(f'{path} has a header but no class rows.')
    return tuple(names), np.stack(values), attr_names


# ---------------------------------------------------------------- inference
def as_names(names: Names, what: str) -> Optional[Tuple[str, ...]]:
    """Names given as a list or a file (``what``: ``'class'``...)."""
    if names is None:
        return None
    if isinstance(names, (str, Path)):
        return read_name_list(str(names), f'{what.capitalize()}-name file')
    names = tuple(str(n) for n in names)
    if not names:
        raise ZSLDataError(f'{what}_names: the list of names is empty.')
    return names


def _mat_seen_classes(path: str, mat: dict, num_classes: int):
    """The seen classes of an ``att_splits.mat`` when ``res101.mat`` lies
    beside it: the labels of the ``trainval`` images (``features`` is not
    read). None otherwise."""
    res101 = osp.join(osp.dirname(path), 'res101.mat')
    if 'trainval_loc' not in mat or not osp.isfile(res101):
        return None
    images = read_mat(res101, ['labels'], optional=['image_files'])
    labels = np.asarray(images['labels']).ravel().astype(np.int64)
    loc = np.asarray(mat['trainval_loc']).ravel().astype(np.int64)
    if loc.size and (loc.min() < 1 or loc.max() > labels.size):
        raise ZSLDataError(
            f'{path}: trainval_loc holds 1-based indices outside [1, '
            f'{labels.size}] (the images of {res101}).')
    files = (
        cell_strings(images['image_files'], res101, 'image_files')
        if 'image_files' in images else None)
    check_loc_unique(loc - 1, files, path, 'trainval_loc')
    seen = np.unique(labels[loc - 1] - 1)
    if seen.size and (seen.min() < 0 or seen.max() >= num_classes):
        raise ZSLDataError(
            f'{res101}: labels of trainval images fall outside the '
            f'{num_classes} classes of {path}.')
    return seen


def _seen_ids(seen: ArrayLike, names: Sequence[str], source: str) -> list:
    """Seen classes given as ids or names -> ids (checked by
    ClassSemantics)."""
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
    return ids


def _read_source(class_attributes, attribute_key: str):
    """The source -> (raw matrix, source, class names, attribute names,
    seen ids), each name/id entry None where the source has none."""
    if isinstance(class_attributes, torch.Tensor):
        class_attributes = class_attributes.detach().cpu().numpy()
    if not isinstance(class_attributes, (str, Path)):
        matrix = np.asarray(class_attributes)
        if matrix.dtype.kind not in 'fiub':
            raise ZSLDataError('Class attributes of the given array must be '
                               f'numeric, got dtype {matrix.dtype}.')
        return matrix, 'the given array', None, None, None
    source = str(class_attributes)
    if not osp.isfile(source):
        raise FileNotFoundError(f'Class-attribute file not found: {source}')
    suffix = osp.splitext(source)[1].lower()
    if suffix == '.npy':
        return read_npy_matrix(source), source, None, None, None
    if suffix == '.csv':
        names, matrix, attr_names = read_attribute_table(
            source, first_column='class')
        return matrix, source, names, attr_names, None
    if suffix == '.mat':
        matrix, names, attr_names, mat = read_mat_attributes(
            source, attribute_key, optional=['trainval_loc'])
        seen = _mat_seen_classes(source, mat, matrix.shape[0])
        return matrix, source, names, attr_names, seen
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
        normalize (bool): L2-normalise each class row (recorded as
            ``normalization='l2'``), as the xlsa17 ``att`` rows the models
            are trained with. Defaults to True.
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
    matrix, source, file_names, file_attr_names, file_seen = _read_source(
        class_attributes, attribute_key)
    names = as_names(class_names, 'class') or file_names
    if names is not None and len(names) != len(matrix):
        raise ZSLDataError(
            f'{len(names)} class names were given for the {len(matrix)} '
            f'classes (rows) of {source}.')
    attr_names = as_names(attribute_names, 'attribute') or file_attr_names
    seen = file_seen if seen_classes is None else _seen_ids(
        seen_classes, names or [], source)
    return semantics_from_raw(
        np.asarray(matrix, dtype=np.float64)
        if np.ndim(matrix) == 2 else matrix,
        'l2' if normalize else 'none',
        source,
        class_names=names,
        attribute_names=attr_names,
        seen_classes=seen)
