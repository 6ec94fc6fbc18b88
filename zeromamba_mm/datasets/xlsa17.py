"""Read the xlsa17 split files of Xian et al. and remap their image paths.

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

Refused at load: NaN/inf attributes (naming class and attribute), duplicate
class names, and train/test leaks (an image index, or a file, in trainval
and a test split). A repeated image inside one split is only warned about.
Files are read through :mod:`mmengine.fileio` backends.
"""
import io
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.fileio import get_file_backend

__all__ = [
    'ZSLDataError', 'ZSLAnnotation', 'PATH_PRESETS', 'DEMO_PATH_PREFIX',
    'register_path_preset', 'detect_path_preset', 'remap_image_paths',
    'read_mat', 'load_xlsa17', 'normalize_rows', 'holdout_per_class',
    'check_finite', 'check_unique_names'
]

#: The split keys of ``att_splits.mat`` that every dataset must have.
REQUIRED_LOC_KEYS = ('trainval_loc', 'test_seen_loc', 'test_unseen_loc')
#: Optional split keys; they overlap ``test_seen_loc`` (see the module doc).
OPTIONAL_LOC_KEYS = ('train_loc', 'val_loc')

#: Image-path prefix written by :mod:`.demo_data` (original-style, so that the
#: demo needs path remapping exactly like the real files).
DEMO_PATH_PREFIX = '/BS/demo/work/data/ZSLDemo/images/'

#: Original path prefixes of ``res101.mat`` -> removed by the presets; the
#: rest of each path (``<class folder>/<image>``) is joined to ``img_prefix``.
#: AWA2's prefix really holds a double slash; matching collapses repeated
#: slashes on both sides, so it is written here with a single one.
PATH_PRESETS: Dict[str, str] = {
    'CUB': '/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images/',
    'SUN': '/BS/Deep_Fragments/work/MSc/data/SUN/images/',
    'AWA2': '/BS/xian/work/data/Animals_with_Attributes2/JPEGImages/',
    'DEMO': DEMO_PATH_PREFIX,
}


class ZSLDataError(ValueError):
    """Raised when zero-shot annotation files are inconsistent or malformed."""


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


def normalize_rows(matrix: np.ndarray, what: str = 'attributes') -> np.ndarray:
    """L2-normalise each row in float64 and return float32.

    Args:
        matrix (np.ndarray): (C, A) matrix.
        what (str): Name used in the error message.

    Returns:
        np.ndarray: (C, A) float32 with unit rows.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ZSLDataError(
            f'Cannot L2-normalise {what}: rows {zero[:5].tolist()} are all '
            'zero (a class without any attribute).')
    return (matrix / norms).astype(np.float32)


def check_finite(matrix: np.ndarray,
                 source: str,
                 class_names: Optional[Sequence[str]] = None,
                 attribute_names: Optional[Sequence[str]] = None,
                 key: str = 'attributes') -> None:
    """Refuse NaN/inf in a (C, A) class-attribute matrix, naming the place.

    A NaN attribute trains silently and only fails at the end of the first
    evaluation ("pred_score contains NaN"), so it is caught at load.

    Args:
        matrix (np.ndarray): (C, A) values, classes as rows.
        source (str): File name for the message.
        class_names (Sequence[str], optional): C class names.
        attribute_names (Sequence[str], optional): A attribute names.
        key (str): Name of the variable in the file. Defaults to
            ``'attributes'``.

    Raises:
        ZSLDataError: if any value is NaN or infinite.
    """
    bad = ~np.isfinite(np.asarray(matrix, dtype=np.float64))
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    places = []
    for c, a in list(zip(rows.tolist(), cols.tolist()))[:5]:
        cls = class_names[c] if class_names is not None else f'#{c}'
        attr = (attribute_names[a] if attribute_names is not None else f'#{a}')
        places.append(f'class {cls!r} (row {c}), attribute {attr!r} '
                      f'(column {a}) = {matrix[c, a]}')
    raise ZSLDataError(
        f'{source}: {key!r} holds {int(bad.sum())} NaN/inf value(s) in '
        f'{len(np.unique(rows))} class(es); first: ' + '; '.join(places) +
        '. Fill in the missing values (e.g. 0, or -1 as AWA2 marks them in '
        'original_att) before training.')


def check_unique_names(names: Sequence[str], source: str, what: str) -> None:
    """Refuse duplicate names (two classes named alike are one label).

    Raises:
        ZSLDataError: naming the duplicates and their positions.
    """
    first: Dict[str, int] = {}
    dup = []
    for i, name in enumerate(names):
        if name in first:
            dup.append(f'{name!r} (entries {first[name]} and {i})')
        else:
            first[name] = i
    if dup:
        raise ZSLDataError(
            f'{source}: duplicate {what} names: {", ".join(dup[:5])}.')


# ----------------------------------------------------------------------------
# Path remapping
# ----------------------------------------------------------------------------
def _collapse_slashes(path: str) -> str:
    return re.sub(r'/+', '/', path) if '//' in path else path


def register_path_preset(name: str, prefix: str) -> None:
    """Add a path preset, so that configs can say ``path_preset=name``.

    Args:
        name (str): Preset name (e.g. ``'FLO'``).
        prefix (str): The original path prefix to strip.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f'A path preset needs a non-empty prefix, got '
                         f'{prefix!r} for {name!r}.')
    PATH_PRESETS[name] = prefix if prefix.endswith('/') else prefix + '/'


def detect_path_preset(paths: Sequence[str]) -> str:
    """Return the name of the preset whose prefix matches all ``paths``.

    Raises:
        ZSLDataError: if no preset matches (a ``path_rule`` is needed then).
    """
    if len(paths) == 0:
        raise ZSLDataError('Cannot detect a path preset from an empty list.')
    collapsed = [_collapse_slashes(p) for p in paths]
    for name, prefix in PATH_PRESETS.items():
        prefix = _collapse_slashes(prefix)
        if all(p.startswith(prefix) for p in collapsed):
            return name
    known = ', '.join(f'{k}: {v!r}' for k, v in PATH_PRESETS.items())
    raise ZSLDataError(
        f"path_preset='auto' found no preset matching the image paths "
        f'(first: {paths[0]!r}). Known presets: {known}. Use '
        "path_rule=dict(old_prefix=..., new_prefix='') for other datasets.")


def remap_image_paths(paths: Sequence[str],
                      path_preset: Optional[str] = None,
                      path_rule: Optional[dict] = None,
                      source: str = 'image list') -> List[str]:
    """Map the authors' original image paths to paths under the image root.

    Args:
        paths (Sequence[str]): Paths as stored in ``res101.mat``.
        path_preset (str, optional): ``'CUB'``, ``'SUN'``, ``'AWA2'``,
            ``'DEMO'`` (or a registered name) strips that dataset's original
            prefix; ``'auto'`` detects it. Defaults to None.
        path_rule (dict, optional): A rule for any dataset, either
            ``dict(old_prefix='/BS/.../jpg/', new_prefix='')`` (replace a
            prefix; repeated slashes are ignored when matching) or
            ``dict(keep_last=2)`` (keep the last N path components, e.g.
            ``class_folder/image.jpg``). Defaults to None.
        source (str): File name used in error messages.

    Returns:
        list[str]: Remapped paths. With neither a preset nor a rule, the
        paths are returned unchanged.
    """
    paths = list(paths)
    if path_preset is not None and path_rule is not None:
        raise ValueError(
            f'Give either path_preset or path_rule, not both (got '
            f'path_preset={path_preset!r} and path_rule={path_rule!r}). The '
            'preset may come from a base config: the demo base '
            "configs/_base_/datasets/zsl_demo.py sets path_preset='DEMO' and "
            'the xlsa17 dataset bases set CUB/SUN/AWA2. To use your '
            'path_rule, set path_preset=None in the same dataset dict.')
    if path_preset is not None:
        if path_preset == 'auto':
            path_preset = detect_path_preset(paths)
        if path_preset not in PATH_PRESETS:
            raise ValueError(
                f'Unknown path_preset {path_preset!r}; choose one of '
                f"{sorted(PATH_PRESETS)} or 'auto', or give a path_rule.")
        path_rule = dict(old_prefix=PATH_PRESETS[path_preset], new_prefix='')
    if path_rule is None:
        return paths
    if not isinstance(path_rule, dict):
        raise TypeError(f'path_rule must be a dict, got {type(path_rule)}.')

    rule = dict(path_rule)
    if 'keep_last' in rule:
        keep = rule.pop('keep_last')
        if rule or not isinstance(keep, int) or keep < 1:
            raise ValueError(
                'path_rule=dict(keep_last=N) takes a single positive int, '
                f'got {path_rule!r}.')
        short = [p for p in paths if len(p.strip('/').split('/')) < keep]
        if short:
            raise ZSLDataError(
                f'{len(short)} paths in {source} have fewer than {keep} '
                f'components (first: {short[:3]}).')
        return [
            '/'.join(_collapse_slashes(p).strip('/').split('/')[-keep:])
            for p in paths
        ]

    unknown = set(rule) - {'old_prefix', 'new_prefix'}
    if 'old_prefix' not in rule or unknown:
        raise ValueError(
            'path_rule must be dict(old_prefix=..., new_prefix=...) or '
            f'dict(keep_last=N), got {path_rule!r}.')
    old = _collapse_slashes(rule['old_prefix'])
    new = rule.get('new_prefix', '')
    if old and not old.endswith('/'):
        old += '/'
    if new and not new.endswith('/'):
        new += '/'
    out, bad = [], []
    for path in paths:
        collapsed = _collapse_slashes(path)
        if not collapsed.startswith(old):
            bad.append(path)
            continue
        out.append(new + collapsed[len(old):])
    if bad:
        raise ZSLDataError(
            f'{len(bad)} of {len(paths)} image paths in {source} do not '
            f'start with the prefix {old!r} (first: {bad[:3]}). Check '
            'path_preset / path_rule.')
    return out


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
        class_names = _cell_strings(splits_mat['allclasses_names'], split_file,
                                    'allclasses_names')
        if len(class_names) != num_classes:
            raise ZSLDataError(
                f'{split_file}: allclasses_names has {len(class_names)} '
                f'entries but {attribute_key!r} has {num_classes} classes '
                '(columns).')
        # The published files (AWA1/2, SUN, CUB) have unique names.
        check_unique_names(class_names, split_file, 'class')
    else:  # FLO's file has no names
        class_names = [f'class_{i:03d}' for i in range(num_classes)]
    attribute_names = None
    if 'attribute_names' in splits_mat:
        attribute_names = tuple(
            _cell_strings(splits_mat['attribute_names'], split_file,
                          'attribute_names'))
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
    """Refuse train/test leaks; warn about repeated images.

    A leak is an image index, or two indices of the same file, in trainval
    and a test split. Repeats inside one split are only warned about: none of
    the published files checked (AWA1/2, SUN, FLO) has any, but a released
    file with one should still load.
    """
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
    for name, indices in splits.items():
        files = [image_files[i] for i in indices]
        repeated = len(files) - len(set(files))
        if repeated:
            warnings.warn(
                f'{split_file}: {name}_loc lists {repeated} image(s) more '
                'than once (by index or by file name); they count twice in '
                'training or evaluation.')


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
