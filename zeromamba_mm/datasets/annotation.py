"""A zero-shot dataset in memory: its class semantics plus its image splits.

Every file format (:mod:`.xlsa17`, :mod:`.table_format`) is read into a
:class:`ZSLAnnotation`; :mod:`.zsl_splits` turns it into the samples and the
metainfo of one split.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from zeromamba_mm.structures.class_semantics import ClassSemantics

__all__ = ['ZSLAnnotation', 'holdout_per_class']


@dataclass
class ZSLAnnotation:
    """A zero-shot dataset in memory, independent of its file format.

    Attributes:
        semantics (ClassSemantics): The classes: names, the (C, A) matrix in
            the form the dataset hands out, the normalisation applied, the
            seen/unseen ids of the standard protocol and attribute names.
        image_paths (list[str]): N image paths, relative to the image root
            (or absolute).
        labels (np.ndarray): (N,) int64 global class ids, 0-based.
        splits (dict[str, np.ndarray]): split name (``trainval``,
            ``test_seen``, ``test_unseen`` and optionally ``train``, ``val``)
            -> int64 0-based indices into ``image_paths``.
        source (str): Where the annotation came from, for error messages.
    """
    semantics: ClassSemantics
    image_paths: List[str]
    labels: np.ndarray
    splits: Dict[str, np.ndarray]
    source: str = field(default='')

    # Read-only views of the semantics, for the split logic and the tools.
    @property
    def class_names(self) -> Tuple[str, ...]:
        return self.semantics.class_names

    @property
    def attributes(self) -> np.ndarray:
        return self.semantics.attributes

    @property
    def attribute_names(self) -> Optional[Tuple[str, ...]]:
        return self.semantics.attribute_names

    @property
    def seen_classes(self) -> Optional[np.ndarray]:
        return self.semantics.seen_classes

    @property
    def unseen_classes(self) -> Optional[np.ndarray]:
        return self.semantics.unseen_classes

    @property
    def num_classes(self) -> int:
        return self.semantics.num_classes

    @property
    def num_attributes(self) -> int:
        return self.semantics.num_attributes


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
