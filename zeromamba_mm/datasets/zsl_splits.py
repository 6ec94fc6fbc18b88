"""The splits of a zero-shot annotation: the standard protocol's, and the
clean validation protocol carved out of its seen classes.

:func:`select_split` gives the image indices and the metainfo of each split
name of :class:`~zeromamba_mm.datasets.ZSLDataset`.
"""
from typing import NamedTuple, Tuple

import numpy as np

from zeromamba_mm.structures.class_semantics import ClassSemantics
from .annotation import ZSLAnnotation, holdout_per_class
from .data_checks import ZSLDataError

__all__ = [
    'CleanSplit', 'make_clean_split', 'protocol_classes', 'select_split',
    'split_metainfo', 'CLEAN_SPLITS'
]

#: The splits of the clean validation protocol (see :func:`make_clean_split`).
CLEAN_SPLITS = ('clean_train', 'clean_val')


class CleanSplit(NamedTuple):
    """A validation split carved from the seen classes only.

    Attributes:
        train (np.ndarray): ``clean_train`` image indices.
        val_seen (np.ndarray): Held-out images of the remaining seen classes
            (pseudo test-seen).
        val_unseen (np.ndarray): All trainval images of the pseudo-unseen
            classes.
        seen_classes (np.ndarray): Remaining seen classes (sorted).
        unseen_classes (np.ndarray): Pseudo-unseen classes (sorted).
    """
    train: np.ndarray
    val_seen: np.ndarray
    val_unseen: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray


def make_clean_split(trainval: np.ndarray,
                     labels: np.ndarray,
                     seen_classes: np.ndarray,
                     unseen_ratio: float = 0.2,
                     val_ratio: float = 0.2,
                     seed: int = 0) -> CleanSplit:
    """Carve a model-selection split out of the trainval images.

    Published ZSL results pick epochs and calibration on the test sets; this
    split lets one select on seen-class data only. With
    ``rng = numpy.random.default_rng(seed)``:

    1. ``max(1, round(unseen_ratio * S))`` of the S seen classes are drawn
       with ``rng.choice`` as pseudo-unseen;
    2. in each remaining class, :func:`holdout_per_class` draws
       ``round(val_ratio * n)`` trainval images as pseudo test-seen.

    Args:
        trainval (np.ndarray): Trainval image indices.
        labels (np.ndarray): Global labels of all images.
        seen_classes (np.ndarray): The seen classes.
        unseen_ratio (float): Fraction of seen classes held out, in (0, 1).
        val_ratio (float): Fraction of the remaining classes' images held
            out, in [0, 1).
        seed (int): Seed of both draws.

    Returns:
        CleanSplit: Disjoint index sets covering ``trainval``.
    """
    seen_classes = np.unique(np.asarray(seen_classes, dtype=np.int64))
    if not 0 < unseen_ratio < 1:
        raise ValueError(
            f'clean_unseen_ratio must be in (0, 1), got {unseen_ratio}.')
    num_pseudo = max(1, int(round(unseen_ratio * len(seen_classes))))
    if num_pseudo >= len(seen_classes):
        raise ZSLDataError(
            f'The clean split needs at least 2 seen classes; there are '
            f'{len(seen_classes)} and clean_unseen_ratio={unseen_ratio} '
            f'holds out {num_pseudo}.')
    rng = np.random.default_rng(seed)
    pseudo_unseen = np.sort(
        rng.choice(seen_classes, size=num_pseudo, replace=False))
    remaining = np.setdiff1d(seen_classes, pseudo_unseen)
    trainval = np.asarray(trainval, dtype=np.int64)
    in_pseudo = np.isin(labels[trainval], pseudo_unseen)
    train, val_seen = holdout_per_class(trainval[~in_pseudo], labels,
                                        val_ratio, rng)
    return CleanSplit(train, val_seen, trainval[in_pseudo], remaining,
                      pseudo_unseen)


def protocol_classes(
        annotation: ZSLAnnotation) -> Tuple[np.ndarray, np.ndarray]:
    """Check the standard split and return its (seen, unseen) class ids.

    Seen classes are the declared ones, else the ``trainval`` classes;
    unseen ones the declared ones, else every other class of the list.

    Raises:
        ZSLDataError: if a split holds an image of the other group.
    """
    labels, splits = annotation.labels, annotation.splits
    seen = annotation.seen_classes
    if seen is None:
        seen = np.unique(labels[splits['trainval']])
    unseen = annotation.unseen_classes
    if unseen is None:  # the rest of the class list
        unseen = np.setdiff1d(np.arange(annotation.num_classes), seen)
    # Disjoint and in range: checked by ClassSemantics when it was made.
    seen = np.sort(np.asarray(seen, dtype=np.int64))
    unseen = np.sort(np.asarray(unseen, dtype=np.int64))
    for name, allowed, kind in (('trainval', seen, 'seen'), ('test_seen', seen,
                                                             'seen'),
                                ('test_unseen', unseen, 'unseen')):
        wrong = ~np.isin(labels[splits[name]], allowed)
        if wrong.any():
            cls = int(labels[splits[name]][wrong][0])
            raise ZSLDataError(
                f'{annotation.source}: {int(wrong.sum())} {name} images '
                f'belong to classes outside the {kind} classes (first: '
                f'{annotation.class_names[cls]!r}).')
    return seen, unseen


def select_split(annotation: ZSLAnnotation, split: str, unseen_ratio: float,
                 val_ratio: float, seed: int) -> Tuple[np.ndarray, dict]:
    """The image indices of ``split`` and its zero-shot metainfo.

    Args:
        annotation (ZSLAnnotation): The parsed files.
        split (str): A split name of :class:`~.ZSLDataset`.
        unseen_ratio (float): ``clean_unseen_ratio`` of the clean splits.
        val_ratio (float): ``clean_val_ratio`` of the clean splits.
        seed (int): ``clean_seed`` of the clean splits.

    Returns:
        tuple[np.ndarray, dict]: int64 indices into the annotation's images
        and the metainfo (see :func:`split_metainfo`) of the protocol the
        split belongs to.
    """
    seen, unseen = protocol_classes(annotation)
    splits, labels = annotation.splits, annotation.labels
    if split in ('trainval', 'test_seen', 'test_unseen'):
        indices = splits[split]
    elif split == 'test':
        indices = np.concatenate([splits['test_seen'], splits['test_unseen']])
    elif split in CLEAN_SPLITS:
        clean = make_clean_split(splits['trainval'], labels, seen,
                                 unseen_ratio, val_ratio, seed)
        indices = (
            clean.train if split == 'clean_train' else np.concatenate(
                [clean.val_seen, clean.val_unseen]))
        seen, unseen = clean.seen_classes, clean.unseen_classes
    else:  # train / val: xlsa17's own (overlapping) validation protocol
        missing = [f'{k}_loc' for k in ('train', 'val') if k not in splits]
        if missing:
            raise ZSLDataError(
                f'{annotation.source} has no {missing}; split {split!r} '
                f'needs them. Splits present: {sorted(splits)}.')
        indices = splits[split]
        # Inside the trainval classes: the train classes are seen, the
        # other trainval classes unseen.
        unseen = np.setdiff1d(seen, np.unique(labels[splits['train']]))
        seen = np.setdiff1d(seen, unseen)
    expected = {
        'trainval': seen,
        'test_seen': seen,
        'test_unseen': unseen,
        'clean_train': seen,
        'train': seen,
        'val': unseen
    }.get(split, np.union1d(seen, unseen))
    indices = np.asarray(indices, dtype=np.int64)
    without = np.setdiff1d(expected, labels[indices]).astype(np.int64)
    semantics = annotation.semantics.replace(
        seen_classes=seen, unseen_classes=unseen)
    return indices, split_metainfo(semantics, without)


def split_metainfo(semantics: ClassSemantics,
                   classes_without_samples: np.ndarray) -> dict:
    """The dataset metainfo of a split: the :class:`ClassSemantics` under
    ``class_semantics``, and for mmpretrain and older readers the same
    values under their own keys (``classes``, ``class_attributes``...)."""
    # The repeated fields are copies, not the value's own objects: a resumed
    # run compares the metainfo's pickle with the checkpoint's, where the
    # stored value shares nothing with ``classes``.
    return dict(
        class_semantics=semantics,
        classes=tuple(list(semantics.class_names)),
        class_attributes=semantics.attributes.copy(),
        seen_classes=semantics.seen_classes.copy(),
        unseen_classes=semantics.unseen_classes.copy(),
        classes_without_samples=np.asarray(
            classes_without_samples, dtype=np.int64),
        attribute_names=(None if semantics.attribute_names is None else tuple(
            list(semantics.attribute_names))),
        num_attributes=semantics.num_attributes)
