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
from typing import Dict, Optional, Sequence

import numpy as np

from .annotation import ZSLAnnotation
from .class_semantics import (normalization_of, read_mat_attributes,
                              semantics_from_raw)
from .data_checks import ZSLDataError
from .mat_files import cell_strings, check_loc_unique, one_based, read_mat
from .path_rules import remap_image_paths

__all__ = ['load_xlsa17', 'REQUIRED_LOC_KEYS', 'OPTIONAL_LOC_KEYS']

#: The split keys of ``att_splits.mat`` that every dataset must have.
REQUIRED_LOC_KEYS = ('trainval_loc', 'test_seen_loc', 'test_unseen_loc')
#: Optional split keys; they overlap ``test_seen_loc`` (see the module doc).
OPTIONAL_LOC_KEYS = ('train_loc', 'val_loc')


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
    normalization = normalization_of(attribute_key)
    att, class_names, attribute_names, splits_mat = read_mat_attributes(
        split_file,
        attribute_key,
        required=REQUIRED_LOC_KEYS,
        optional=OPTIONAL_LOC_KEYS,
        backend_args=backend_args)
    images_mat = read_mat(
        image_list_file, ['image_files', 'labels'], backend_args=backend_args)
    num_classes = att.shape[0]
    if class_names is None:  # FLO's file has no names
        class_names = tuple(f'class_{i:03d}' for i in range(num_classes))

    image_files = cell_strings(images_mat['image_files'], image_list_file,
                               'image_files')
    num_images = len(image_files)
    labels = one_based(images_mat['labels'], num_classes, image_list_file,
                       'labels', f'{num_classes} classes in {split_file}')
    if labels.size != num_images:
        raise ZSLDataError(
            f'{image_list_file}: labels has {labels.size} entries but '
            f'image_files has {num_images}.')

    splits = {}
    for key in (*REQUIRED_LOC_KEYS, *OPTIONAL_LOC_KEYS):
        if key in splits_mat:
            splits[key[:-len('_loc')]] = one_based(
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
    seen = seen.astype(np.int64)
    semantics = semantics_from_raw(
        att,
        normalization,
        split_file,
        class_names=class_names,
        attribute_names=attribute_names,
        seen_classes=seen,
        unseen_classes=np.setdiff1d(np.arange(num_classes), seen),
        key=attribute_key)
    image_paths = remap_image_paths(
        image_files, path_preset, path_rule, source=image_list_file)
    return ZSLAnnotation(
        semantics=semantics,
        image_paths=image_paths,
        labels=labels,
        splits=splits,
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
