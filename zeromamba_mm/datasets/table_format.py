"""Zero-shot data made by users, without xlsa17 .mat files.

Three plain files describe a dataset (all paths relative to ``data_root`` in
:class:`~zeromamba_mm.datasets.ZSLDataset`):

* **class list** (``classes.csv``): one ``class,split`` row per class, split in
  ``{seen, unseen}``. Its row order *is* the global class order (label ids).
  An optional header row ``class,split`` is skipped.
* **class-attribute table**, either

  - ``attributes.csv`` with a header row ``class,attr_1,attr_2,...`` and one
    row per class (rows are matched to the class list by name, any order), or
  - ``attributes.npy``: a (C, A) array whose rows follow the class list; the
    attribute names may come from a text file (one name per line).

* **image list** (``images.csv`` / ``.txt``): rows
  ``relative/path.jpg,class_name[,split]`` with split in ``{trainval,
  test_seen, test_unseen}``; an optional header row starting with ``path`` is
  skipped. Either every row has a split or none has: without splits, the
  images of unseen classes form ``test_unseen`` and, in each seen class,
  ``round(holdout_ratio * n)`` images drawn with
  ``numpy.random.default_rng(holdout_seed)`` form ``test_seen`` (the xlsa17
  proposed splits hold out 20%); the rest is ``trainval``.

Lines starting with ``#`` and blank lines are ignored. Fields follow the
``csv`` module's quoting rules, so names with commas can be quoted. Files
are UTF-8 (a BOM, as Excel writes it, is accepted; another encoding is an
error naming file and line) and are read through :mod:`mmengine.fileio`, so
they may live on any storage backend.

Refused at load, naming file and line: NaN/inf attribute values, duplicate
class or attribute names, an image listed twice in one split or in trainval
and a test split (a leak), and image paths that are absolute or climb out of
the image root with ``..`` (unless ``allow_paths_outside_prefix=True``).
"""
import csv
import os
import os.path as osp
import posixpath
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .annotation import ZSLAnnotation, holdout_per_class
from .class_semantics import (normalization_of, read_attribute_table,
                              read_npy_matrix, semantics_from_raw)
from .data_checks import ZSLDataError, check_finite, check_no_duplicates
from .text_files import read_name_list, read_rows, read_text

__all__ = [
    'load_table_annotation', 'save_table_annotation', 'read_rows', 'read_text',
    'read_name_list', 'read_attribute_table', 'check_relative_path'
]

CLASS_SPLITS = ('seen', 'unseen')
IMAGE_SPLITS = ('trainval', 'test_seen', 'test_unseen')
_PATH_HEADERS = ('path', 'img_path', 'image', 'image_path', 'file', 'filename')


def _read_class_list(
        path: str,
        backend_args: Optional[dict]) -> Tuple[List[str], np.ndarray]:
    rows = read_rows(path, backend_args)
    if [x.lower() for x in rows[0][1]] == ['class', 'split']:
        rows = rows[1:]
    names, is_seen = [], []
    for lineno, fields in rows:
        if len(fields) != 2 or fields[1].lower() not in CLASS_SPLITS:
            raise ZSLDataError(
                f'{path}:{lineno}: expected "class,split" with split in '
                f'{CLASS_SPLITS}, got {fields}.')
        names.append(fields[0])
        is_seen.append(fields[1].lower() == 'seen')
    check_no_duplicates(
        names, path, 'class names', place=lambda i: f'line {rows[i][0]}')
    return names, np.asarray(is_seen, dtype=bool)


def _read_names(path: str, expected: int, what: str, other: str,
                backend_args: Optional[dict]) -> Tuple[str, ...]:
    names = read_name_list(path, f'{what.capitalize()} file', backend_args)
    if len(names) != expected:
        raise ZSLDataError(
            f'{path} lists {len(names)} {what} but {other} has {expected}.')
    return tuple(names)


def _read_attributes(path: str, class_names: List[str], class_list_file: str,
                     attribute_names_file: Optional[str],
                     backend_args: Optional[dict]):
    num_classes = len(class_names)
    if path.endswith('.npy'):
        matrix = read_npy_matrix(path, backend_args)
        if matrix.shape[0] != num_classes:
            raise ZSLDataError(
                f'{path} has shape {matrix.shape} but {class_list_file} '
                f'lists {num_classes} classes: expected ({num_classes}, A).')
        names = None
        if attribute_names_file is not None:
            names = _read_names(attribute_names_file, matrix.shape[1],
                                'attribute names', f'{path} (columns)',
                                backend_args)
        check_finite(matrix, path, class_names, names)
        return matrix, names

    names, matrix, attr_names = read_attribute_table(path, backend_args)
    by_name = dict(zip(names, matrix))
    missing = [n for n in class_names if n not in by_name]
    extra = [n for n in by_name if n not in set(class_names)]
    if missing or extra:
        raise ZSLDataError(
            f'{path} has {len(by_name)} classes, {class_list_file} has '
            f'{num_classes}: missing from the table {missing[:5]}, not in the '
            f'class list {extra[:5]}.')
    if attribute_names_file is not None:
        attr_names = _read_names(attribute_names_file, len(attr_names),
                                 'attribute names', f'{path} (header)',
                                 backend_args)
    return np.stack([by_name[n] for n in class_names]), attr_names


def check_relative_path(path: str, source: str) -> None:
    """Refuse an image path that is absolute or climbs out of ``img_prefix``.

    Args:
        path (str): A path of the image list.
        source (str): ``file:line`` for the message.

    Raises:
        ZSLDataError: for ``/abs/path``, ``C:\\...``, ``s3://...`` or a path
            whose ``..`` leave the image root.
    """
    unix = path.replace('\\', '/')
    absolute = (
        unix.startswith('/') or '://' in unix
        or (len(unix) > 1 and unix[1] == ':' and unix[0].isalpha()))
    climbs = posixpath.normpath(unix).split('/')[0] == '..'
    if absolute or climbs:
        raise ZSLDataError(
            f'{source}: image path {path!r} is '
            f'{"absolute" if absolute else "outside img_prefix (..)"}; '
            'image lists hold paths relative to img_prefix. Pass '
            'allow_paths_outside_prefix=True if this is intended.')


def _read_image_list(path: str, class_index: Dict[str, int],
                     allow_paths_outside_prefix: bool,
                     backend_args: Optional[dict]):
    rows = read_rows(path, backend_args)
    if rows[0][1][0].lower() in _PATH_HEADERS:
        rows = rows[1:]
    paths, labels, splits, lines = [], [], [], []
    for lineno, fields in rows:
        if len(fields) not in (2, 3):
            raise ZSLDataError(
                f'{path}:{lineno}: expected "path,class[,split]", got '
                f'{fields}.')
        if fields[1] not in class_index:
            raise ZSLDataError(
                f'{path}:{lineno}: class {fields[1]!r} is not in the class '
                'list.')
        if len(fields) == 3 and fields[2] not in IMAGE_SPLITS:
            raise ZSLDataError(
                f'{path}:{lineno}: split {fields[2]!r} is not one of '
                f'{IMAGE_SPLITS}.')
        if not allow_paths_outside_prefix:
            check_relative_path(fields[0], f'{path}:{lineno}')
        paths.append(fields[0])
        labels.append(class_index[fields[1]])
        splits.append(fields[2] if len(fields) == 3 else None)
        lines.append(lineno)
    with_split = sum(s is not None for s in splits)
    if 0 < with_split < len(splits):
        raise ZSLDataError(
            f'{path}: {with_split} of {len(splits)} rows have a split column; '
            'give it on every row or on none.')
    return paths, np.asarray(
        labels, dtype=np.int64), (splits if with_split else None), lines


def _check_image_rows(path: str, paths: List[str], lines: List[int],
                      splits: Dict[str, np.ndarray]) -> None:
    """Refuse an image listed twice in one split or in trainval and a test
    split (a train/test leak), naming the lines."""
    keys = {
        name: [posixpath.normpath(paths[i].replace('\\', '/')) for i in rows]
        for name, rows in splits.items()
    }
    for name in IMAGE_SPLITS:
        rows = splits[name]
        check_no_duplicates(
            keys[name],
            path,
            'images',
            key=f'split {name}',
            place=lambda j: f'line {lines[rows[j]]}',
            fix='An image counts once per split: remove the repeated line.')
    where: Dict[str, Tuple[str, int]] = {}
    for name in IMAGE_SPLITS:
        for i, key in zip(splits[name], keys[name]):
            if key in where:
                other, line = where[key]
                raise ZSLDataError(
                    f'{path}:{lines[i]}: image {paths[i]!r} is in both '
                    f'{other} and {name} (a train/test leak); first listed '
                    f'at line {line}. Keep it in one split only.')
            where[key] = (name, lines[i])


def load_table_annotation(
        class_list_file: str,
        attribute_file: str,
        image_list_file: str,
        attribute_key: str = 'att',
        attribute_names_file: Optional[str] = None,
        holdout_ratio: float = 0.2,
        holdout_seed: int = 0,
        allow_paths_outside_prefix: bool = False,
        backend_args: Optional[dict] = None) -> ZSLAnnotation:
    """Load a user-made zero-shot dataset (see the module doc for formats).

    Args:
        class_list_file (str): ``class,split`` CSV (defines class order).
        attribute_file (str): Attribute CSV with header, or (C, A) ``.npy``.
        image_list_file (str): ``path,class[,split]`` CSV/TXT.
        attribute_key (str): ``'att'`` L2-normalises each class row (as the
            xlsa17 ``att``); ``'original_att'`` keeps the raw values.
        attribute_names_file (str, optional): One attribute name per line;
            overrides the CSV header. Defaults to None.
        holdout_ratio (float): Fraction of each seen class's images that form
            ``test_seen`` when the image list has no split column.
        holdout_seed (int): Seed of that hold-out draw.
        allow_paths_outside_prefix (bool): Accept absolute image paths and
            paths with ``..`` leaving the image root. Defaults to False.
        backend_args (dict, optional): Arguments of the mmengine file
            backend of the files. Defaults to None.

    Returns:
        ZSLAnnotation: With the declared seen/unseen classes.
    """
    normalization = normalization_of(attribute_key)
    class_names, is_seen = _read_class_list(class_list_file, backend_args)
    raw, attr_names = _read_attributes(attribute_file, class_names,
                                       class_list_file, attribute_names_file,
                                       backend_args)

    class_index = {name: i for i, name in enumerate(class_names)}
    paths, labels, row_splits, lines = _read_image_list(
        image_list_file, class_index, allow_paths_outside_prefix, backend_args)
    seen = np.flatnonzero(is_seen).astype(np.int64)
    unseen = np.flatnonzero(~is_seen).astype(np.int64)
    label_is_seen = is_seen[labels]

    if row_splits is not None:
        row_splits = np.asarray(row_splits)
        splits = {
            name: np.flatnonzero(row_splits == name).astype(np.int64)
            for name in IMAGE_SPLITS
        }
        for name, want_seen in (('trainval', True), ('test_seen', True),
                                ('test_unseen', False)):
            wrong = splits[name][label_is_seen[splits[name]] != want_seen]
            if wrong.size:
                i = int(wrong[0])
                raise ZSLDataError(
                    f'{image_list_file}: {wrong.size} {name} image(s) belong '
                    f'to {"unseen" if want_seen else "seen"} classes in '
                    f'{class_list_file} (first: {paths[i]!r} of class '
                    f'{class_names[labels[i]]!r}).')
    else:
        all_idx = np.arange(len(paths), dtype=np.int64)
        trainval, test_seen = holdout_per_class(
            all_idx[label_is_seen], labels, holdout_ratio,
            np.random.default_rng(holdout_seed))
        splits = dict(
            trainval=trainval,
            test_seen=test_seen,
            test_unseen=all_idx[~label_is_seen])
    _check_image_rows(image_list_file, paths, lines, splits)

    empty = [
        class_names[c] for c in seen
        if not np.any(labels[splits['trainval']] == c)
    ]
    if empty:
        raise ZSLDataError(
            f'{len(empty)} seen class(es) of {class_list_file} have no '
            f'trainval image in {image_list_file}: {empty[:5]}.')
    semantics = semantics_from_raw(
        raw,
        normalization,
        attribute_file,
        class_names=class_names,
        attribute_names=attr_names,
        seen_classes=seen,
        unseen_classes=unseen)
    return ZSLAnnotation(
        semantics=semantics,
        image_paths=paths,
        labels=labels,
        splits=splits,
        source=f'{class_list_file} + {attribute_file} + {image_list_file}')


def save_table_annotation(annotation: ZSLAnnotation,
                          out_dir: str,
                          seen_classes: Optional[Sequence[int]] = None,
                          with_split: bool = True) -> Dict[str, str]:
    """Write an annotation as ``classes.csv``, ``attributes.csv`` and
    ``images.csv`` in ``out_dir`` (e.g. to convert an xlsa17 dataset).

    Attribute values are written with ``repr`` so that float32/float64 values
    read back exactly. ``train``/``val`` splits are not written.

    Args:
        annotation (ZSLAnnotation): What to write.
        out_dir (str): Output folder (created if needed).
        seen_classes (Sequence[int], optional): Seen class ids. Defaults to
            the annotation's declared ones, else the ``trainval`` classes.
        with_split (bool): Write the split column. Defaults to True.

    Returns:
        dict: Paths written, keyed ``class_list_file``, ``attribute_file``,
        ``image_list_file``.
    """
    os.makedirs(out_dir, exist_ok=True)
    if seen_classes is None:
        seen_classes = annotation.seen_classes
    if seen_classes is None:
        seen_classes = np.unique(
            annotation.labels[annotation.splits['trainval']])
    seen_set = set(int(c) for c in seen_classes)
    files = dict(
        class_list_file=osp.join(out_dir, 'classes.csv'),
        attribute_file=osp.join(out_dir, 'attributes.csv'),
        image_list_file=osp.join(out_dir, 'images.csv'))
    with open(files['class_list_file'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['class', 'split'])
        for i, name in enumerate(annotation.class_names):
            writer.writerow([name, 'seen' if i in seen_set else 'unseen'])
    attr_names = annotation.attribute_names or tuple(
        f'attr_{j}' for j in range(annotation.num_attributes))
    with open(files['attribute_file'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['class', *attr_names])
        for name, row in zip(annotation.class_names, annotation.attributes):
            writer.writerow([name, *(repr(float(v)) for v in row)])
    with open(files['image_list_file'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['path', 'class', 'split'][:3 if with_split else 2])
        for name in IMAGE_SPLITS:
            for i in annotation.splits[name]:
                row = [
                    annotation.image_paths[i],
                    annotation.class_names[annotation.labels[i]]
                ]
                writer.writerow(row + [name] if with_split else row)
    return files
