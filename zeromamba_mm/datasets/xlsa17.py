"""Read the xlsa17 split files of Xian et al. into a :class:`ZSLAnnotation`.

The proposed splits of `Zero-Shot Learning - The Good, the Bad and the Ugly
<https://arxiv.org/abs/1703.04394>`_ come as two MATLAB files per dataset:

* ``att_splits.mat``: ``att`` / ``original_att`` (A, C), ``allclasses_names``
  (C, 1) cell (absent from FLO), and the (n, 1) **uint16, 1-based** index
  arrays ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc`` (plus
  ``train_loc`` / ``val_loc``, which overlap ``test_seen_loc``).
* ``res101.mat``: ``image_files`` (N, 1) cell of the authors' original paths,
  ``labels`` (N, 1) **1-based** class indices and ``features`` (2048, N),
  which is never read here.

Everything is turned into a :class:`ZSLAnnotation` with 0-based indices, the
in-memory form shared with the table format of :mod:`.table_format`. An
optional (A, 1) ``attribute_names`` cell in ``att_splits.mat`` (written by
the demo generator; the published files have none) names the attributes.
Image paths are mapped to the image root by :mod:`.path_rules`.

Refused at load: NaN/inf attributes (naming class and attribute), duplicate
class or attribute names, an image listed twice inside one split (by index
or by file), and train/test leaks (an image index, or a file, in trainval
and a test split). Files are read through :mod:`mmengine.fileio` backends.
"""
import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.fileio import get_file_backend

from .data_checks import (ZSLDataError, check_finite, check_no_duplicates,
                          normalize_rows)
from .path_rules import (DEMO_PATH_PREFIX, PATH_PRESETS, detect_path_preset,
                         register_path_preset, remap_image_paths)

__all__ = [
    'ZSLDataError', 'ZSLAnnotation', 'PATH_PRESETS', 'DEMO_PATH_PREFIX',
    'register_path_preset', 'detect_path_preset', 'remap_image_paths',
    'read_mat', 'load_xlsa17', 'normalize_rows', 'holdout_per_class',
    'check_finite', 'check_no_duplicates', 'check_loc_unique',
    'read_cell_names'
]

#: The split keys of ``att_splits.mat`` that every dataset must have.
REQUIRED_LOC_KEYS = ('trainval_loc', 'test_seen_loc', 'test_unseen_loc')
#: Optional split keys; they overlap ``test_seen_loc`` (see the module doc).
OPTIONAL_LOC_KEYS = ('train_loc', 'val_loc')


@dataclass
class ZSLAnnotation:
    """A zero-shot dataset in memory, independent of its file format.

    Attributes:
        class_names (tuple[str]): Names of the C classes, in global order.
        attributes (np.ndarray): (C, A) float32 class-attribute matrix, already
            in the form the dataset hands out (normalised or raw).
        image_paths (list[str]): N image paths, relative to the image root
            (or absolute).
        labels (np.ndarray): (N,) int64 global class ids, 0-based.
        splits (dict[str, np.ndarray]): split name (``trainval``,
            ``test_seen``, ``test_unseen`` and optionally ``train``, ``val``)
            -> int64 0-based indices into ``image_paths``.
        attribute_names (tuple[str], optional): A attribute names if known.
        seen_classes (np.ndarray, optional): Declared seen classes (table
            format). ``None`` derives them from the ``trainval`` labels.
        unseen_classes (np.ndarray, optional): Declared unseen classes.
            ``None`` derives them from the ``test_unseen`` labels.
        source (str): Where the annotation came from, for error messages.
    """
    class_names: Tuple[str, ...]
    attributes: np.ndarray
    image_paths: List[str]
    labels: np.ndarray
    splits: Dict[str, np.ndarray]
    attribute_names: Optional[Tuple[str, ...]] = None
    seen_classes: Optional[np.ndarray] = None
    unseen_classes: Optional[np.ndarray] = None
    source: str = field(default='')

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_attributes(self) -> int:
        return int(self.attributes.shape[1])


# ----------------------------------------------------------------------------
# .mat reading
# ----------------------------------------------------------------------------
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
    import scipy.io as sio
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


def _cell_strings(cell: np.ndarray, path: str, key: str) -> List[str]:
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
    names = _cell_strings(mat[key], path, key)
    check_no_duplicates(
        names,
        path,
        'names',
        key=key,
        place=_mat_entry,
        fix='Each name must be unique (entries count from 1, as in '
        'MATLAB): rename or remove the repeated entry.')
    return names


def check_loc_unique(indices: np.ndarray,
                     image_files: Optional[Sequence[str]], split_file: str,
                     key: str) -> None:
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


def _one_based(values: np.ndarray, upper: int, path: str, key: str,
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


def load_xlsa17(split_file: str,
                image_list_file: str,
                attribute_key: str = 'att',
                path_preset: Optional[str] = None,
                path_rule: Optional[dict] = None,
                backend_args: Optional[dict] = None) -> ZSLAnnotation:
    """Load ``att_splits.mat`` + ``res101.mat`` into a :class:`ZSLAnnotation`.

    Seen classes are the classes of the ``trainval_loc`` images, and every
    other class of the file (``allclasses_names`` / the columns of ``att``) is
    unseen, whether or not ``test_unseen_loc`` lists an image of it: a class
    whose test images are lost stays in the label space.

    Args:
        split_file (str): Path of ``att_splits.mat``.
        image_list_file (str): Path of ``res101.mat`` (``features`` is
            neither needed nor read).
        attribute_key (str): ``'att'`` (transposed, rows L2-normalised) or
            ``'original_att'`` (the raw values; AWA2 marks missing values with
            -1). Defaults to ``'att'``.
        path_preset (str, optional): See :func:`remap_image_paths`.
        path_rule (dict, optional): See :func:`remap_image_paths`.
        backend_args (dict, optional): Arguments of the mmengine file
            backend of both files. Defaults to None.

    Returns:
        ZSLAnnotation: Image paths are remapped but not yet joined to the
        image root. ``attribute_names`` comes from an optional
        ``attribute_names`` cell of ``att_splits.mat`` (the demo data writes
        one; the published files have none).
    """
    if attribute_key not in ('att', 'original_att'):
        raise ValueError("attribute_key must be 'att' or 'original_att', got "
                         f'{attribute_key!r}.')
    splits_mat = read_mat(
        split_file, [attribute_key, *REQUIRED_LOC_KEYS],
        optional=['allclasses_names', 'attribute_names', *OPTIONAL_LOC_KEYS],
        backend_args=backend_args)
    images_mat = read_mat(
        image_list_file, ['image_files', 'labels'], backend_args=backend_args)

    att = np.asarray(splits_mat[attribute_key], dtype=np.float64)
    if att.ndim != 2:
        raise ZSLDataError(f'{split_file}: {attribute_key!r} must be 2-D '
                           f'(A, C), got shape {att.shape}.')
    att = att.T  # (C, A): the files store classes as columns
    num_classes = att.shape[0]

    if 'allclasses_names' in splits_mat:
        class_names = read_cell_names(splits_mat, 'allclasses_names',
                                      split_file)
        if len(class_names) != num_classes:
            raise ZSLDataError(
                f'{split_file}: allclasses_names has {len(class_names)} '
                f'entries but {attribute_key!r} has {num_classes} classes '
                '(columns).')
    else:  # FLO's file has no names
        class_names = [f'class_{i:03d}' for i in range(num_classes)]
    attribute_names = None
    if 'attribute_names' in splits_mat:
        attribute_names = tuple(
            read_cell_names(splits_mat, 'attribute_names', split_file))
        if len(attribute_names) != att.shape[1]:
            raise ZSLDataError(
                f'{split_file}: attribute_names has {len(attribute_names)} '
                f'entries but {attribute_key!r} has {att.shape[1]} '
                'attributes (rows).')
    check_finite(att, split_file, class_names, attribute_names, attribute_key)
    attributes = (
        normalize_rows(att, f'{split_file}:{attribute_key}')
        if attribute_key == 'att' else att.astype(np.float32))

    image_files = _cell_strings(images_mat['image_files'], image_list_file,
                                'image_files')
    num_images = len(image_files)
    labels = _one_based(images_mat['labels'], num_classes, image_list_file,
                        'labels', f'{num_classes} classes in {split_file}')
    if labels.size != num_images:
        raise ZSLDataError(
            f'{image_list_file}: labels has {labels.size} entries but '
            f'image_files has {num_images}.')

    splits = {}
    for key in (*REQUIRED_LOC_KEYS, *OPTIONAL_LOC_KEYS):
        if key in splits_mat:
            splits[key[:-len('_loc')]] = _one_based(
                splits_mat[key], num_images, split_file, key,
                f'{num_images} images in {image_list_file}')
    _check_xlsa17_splits(splits, image_files, split_file, image_list_file)

    seen = np.unique(labels[splits['trainval']])
    both = np.intersect1d(seen, labels[splits['test_unseen']])
    if both.size:
        raise ZSLDataError(
            f'{split_file}: seen and unseen classes overlap: classes '
            f'{[class_names[c] for c in both[:5]]} have trainval_loc images '
            'and test_unseen_loc images.')
    image_paths = remap_image_paths(
        image_files, path_preset, path_rule, source=image_list_file)
    return ZSLAnnotation(
        class_names=tuple(class_names),
        attributes=attributes,
        image_paths=image_paths,
        labels=labels,
        splits=splits,
        attribute_names=attribute_names,
        seen_classes=seen.astype(np.int64),
        unseen_classes=np.setdiff1d(np.arange(num_classes),
                                    seen).astype(np.int64),
        source=f'{split_file} + {image_list_file}')


def _check_xlsa17_splits(splits: Dict[str,
                                      np.ndarray], image_files: Sequence[str],
                         split_file: str, image_list_file: str) -> None:
    """Refuse an image listed twice in one split and train/test leaks.

    A leak is an image index, or two indices of the same file, in trainval
    and a test split. None of the published files checked (AWA1/2, SUN,
    FLO) lists an image twice.
    """
    for name, indices in splits.items():
        check_loc_unique(indices, image_files, split_file, f'{name}_loc')
    for test_key in ('test_seen', 'test_unseen'):
        leak = np.intersect1d(splits['trainval'], splits[test_key])
        if leak.size:
            raise ZSLDataError(
                f'{split_file}: trainval_loc and {test_key}_loc share '
                f'{leak.size} images (first 0-based index {int(leak[0])}: '
                f'{image_files[int(leak[0])]!r}).')
        train_files = {image_files[i] for i in splits['trainval']}
        same = [
            image_files[i] for i in splits[test_key]
            if image_files[i] in train_files
        ]
        if same:
            raise ZSLDataError(
                f'{split_file} + {image_list_file}: {len(same)} files are '
                f'listed (at different indices) in trainval_loc and '
                f'{test_key}_loc, a train/test leak; first: {same[:3]}.')


def holdout_per_class(
        indices: np.ndarray, labels: np.ndarray, ratio: float,
        rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held out), class by class.

    In each class (sorted ids) ``round(ratio * n)`` images are drawn with
    ``rng.permutation``, at least one when ``ratio > 0`` and the class has two
    or more images, and never all of them. Both outputs keep the order of
    ``indices``.

    Args:
        indices (np.ndarray): Image indices to split.
        labels (np.ndarray): Labels of *all* images (indexed by ``indices``).
        ratio (float): Fraction to hold out, in [0, 1).
        rng (np.random.Generator): Source of randomness.

    Returns:
        tuple[np.ndarray, np.ndarray]: kept and held-out indices (int64).
    """
    if not 0 <= ratio < 1:
        raise ValueError(f'A hold-out ratio must be in [0, 1), got {ratio}.')
    indices = np.asarray(indices, dtype=np.int64)
    held = np.zeros(len(indices), dtype=bool)
    cls_of = labels[indices]
    for cls in np.unique(cls_of):
        members = np.flatnonzero(cls_of == cls)
        n = len(members)
        n_hold = int(round(ratio * n))
        if ratio > 0 and n >= 2:
            n_hold = max(n_hold, 1)
        n_hold = min(n_hold, n - 1)
        if n_hold > 0:
            held[members[rng.permutation(n)[:n_hold]]] = True
    return indices[~held], indices[held]
