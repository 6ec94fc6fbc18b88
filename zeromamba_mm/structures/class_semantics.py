"""The class semantics of a zero-shot model, as one value.

A zero-shot model scores any class by its attribute vector, so the classes
(their names, attribute vectors, which ones were seen in training) are data
that travel with the model: the dataset readers make a
:class:`ClassSemantics`, the model or head receives it (through
:func:`zeromamba_mm.models.utils.set_model_class_semantics`), the metric reads
it from ``dataset_meta['class_semantics']``, training stores it in
``checkpoint['meta']['zsl_class_semantics']`` (:meth:`ClassSemantics.to_meta`)
and testing and inference restore it (:meth:`ClassSemantics.from_meta`).

The value validates itself when it is made, and is the only place where
class ids are checked.
"""
import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'ClassSemantics', 'ZSLDataError', 'NORMALIZATIONS', 'normalize_rows',
    'apply_normalization', 'check_finite', 'as_class_semantics',
    'CHECKPOINT_META_KEY'
]

#: Where a checkpoint keeps the class semantics it is tested on:
#: ``checkpoint['meta'][CHECKPOINT_META_KEY]`` (:meth:`ClassSemantics.to_meta`).
CHECKPOINT_META_KEY = 'zsl_class_semantics'

#: What may have been applied to the file's rows: ``'l2'`` (each class row
#: divided by its L2 norm, as xlsa17's ``att``) or ``'none'`` (the values as
#: stored, as xlsa17's ``original_att``).
NORMALIZATIONS = ('l2', 'none')
#: The keys of :meth:`ClassSemantics.to_meta`.
META_KEYS = ('attributes', 'normalization', 'class_names', 'seen_classes',
             'unseen_classes', 'attribute_names')


class ZSLDataError(ValueError):
    """Raised when zero-shot annotation files or class semantics are
    inconsistent or malformed."""


def normalize_rows(matrix: np.ndarray, what: str = 'attributes') -> np.ndarray:
    """L2-normalise each row in float64 and return float32.

    Args:
        matrix (np.ndarray): (C, A) matrix.
        what (str): Name used in the error message.

    Returns:
        np.ndarray: (C, A) float32 with unit rows.

    Raises:
        ZSLDataError: if a row is all zero (it has no direction).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ZSLDataError(
            f'Cannot L2-normalise {what}: rows {zero[:5].tolist()} are all '
            'zero (a class without any attribute).')
    return (matrix / norms).astype(np.float32)


def apply_normalization(rows: np.ndarray,
                        normalization: str,
                        what: str = 'attributes') -> np.ndarray:
    """Bring raw attribute rows into the form a model was trained with.

    Args:
        rows (np.ndarray): (N, A) raw values (the units of the file).
        normalization (str): One of :data:`NORMALIZATIONS`, e.g. the
            ``normalization`` of the model's :class:`ClassSemantics`.
        what (str): Name used in the error message.

    Returns:
        np.ndarray: (N, A) float32.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, '
                         f'got {normalization!r}.')
    if normalization == 'l2':
        return normalize_rows(rows, what)
    return np.asarray(rows, dtype=np.float32)


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


def _repeated(names: Sequence[str]) -> Dict[str, list]:
    counts = Counter(names)
    return {
        name: [i for i, n in enumerate(names) if n == name]
        for name, count in counts.items() if count > 1
    }


IdsLike = Union[None, np.ndarray, Sequence[int]]


@dataclass(frozen=True)
class ClassSemantics:
    """The classes a zero-shot model scores, in the form the model uses.

    Made by the dataset readers, the inferencer's class files, or
    :meth:`from_meta`; validated once when made (see ``Raises``).

    Attributes:
        attributes (np.ndarray): (C, A) float32 attribute vectors *as the
            model uses them* (after ``normalization``), one row per global
            class id.
        class_names (tuple[str]): C unique class names. Defaults to
            ``class_0 ...``.
        seen_classes (np.ndarray, optional): Sorted int64 ids of the classes
            seen in training (None: unknown).
        unseen_classes (np.ndarray, optional): Sorted int64 ids of the
            zero-shot classes; disjoint from ``seen_classes``. Defaults to
            all other classes when ``seen_classes`` is given (a protocol such
            as the clean validation split may leave classes in neither).
        attribute_names (tuple[str], optional): A unique attribute names.
        normalization (str): What was applied to the file's rows:
            ``'l2'`` or ``'none'`` (see :data:`NORMALIZATIONS`); new rows
            get the same (:meth:`normalize_new_rows`). Defaults to
            ``'none'``.
        source (str): Where the semantics came from, for messages.

    Raises:
        ZSLDataError: On a matrix that is not a finite 2-D (C, A) array with
            C, A > 0, names of another count or repeated, ids out of
            ``[0, C)``, or a class both seen and unseen; the message names
            ``source``.
    """
    attributes: np.ndarray
    class_names: Optional[Tuple[str, ...]] = None
    seen_classes: IdsLike = None
    unseen_classes: IdsLike = None
    attribute_names: Optional[Tuple[str, ...]] = None
    normalization: str = 'none'
    source: str = 'the given array'

    def __post_init__(self) -> None:
        matrix = self.attributes
        if hasattr(matrix, 'detach'):  # a torch.Tensor, on any device
            matrix = matrix.detach().cpu().numpy()
        matrix = np.asarray(matrix)
        where = f'The class semantics of {self.source}'
        if matrix.dtype.kind not in 'fiub':
            raise ZSLDataError(f'{where}: attributes must be numeric, got '
                               f'dtype {matrix.dtype}.')
        if matrix.ndim != 2 or 0 in matrix.shape:
            raise ZSLDataError(
                f'{where}: attributes must be a 2-D (C, A) array with C, '
                f'A > 0 (one row per class), got shape {matrix.shape}.')
        num_classes, num_attributes = matrix.shape
        names = self._names(self.class_names, num_classes, 'class', where)
        if names is None:
            names = tuple(f'class_{i}' for i in range(num_classes))
        attr_names = self._names(self.attribute_names, num_attributes,
                                 'attribute', where)
        check_finite(matrix, self.source, names, attr_names)
        if self.normalization not in NORMALIZATIONS:
            raise ZSLDataError(
                f'{where}: normalization must be one of {NORMALIZATIONS}, '
                f'got {self.normalization!r}.')
        seen = self._ids(self.seen_classes, num_classes, 'seen_classes', where)
        unseen = self._ids(self.unseen_classes, num_classes, 'unseen_classes',
                           where)
        if unseen is None and seen is not None:
            unseen = np.setdiff1d(np.arange(num_classes), seen)
        if seen is not None and unseen is not None:
            both = np.intersect1d(seen, unseen)
            if both.size:
                raise ZSLDataError(
                    f'{where}: classes {both[:5].tolist()} are both seen '
                    f'and unseen ({[names[c] for c in both[:5]]}); each '
                    'class is one or the other. Fix the class split.')
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        checked = dict(
            attributes=matrix,
            class_names=names,
            attribute_names=attr_names,
            seen_classes=seen,
            unseen_classes=unseen)
        for name, value in checked.items():  # frozen: set once, checked
            object.__setattr__(self, name, value)

    @staticmethod
    def _names(names, expected: int, what: str,
               where: str) -> Optional[Tuple[str, ...]]:
        if names is None:
            return None
        if isinstance(names, str):
            raise ZSLDataError(f'{where}: {what}_names must be a sequence of '
                               f'names, got the string {names!r}.')
        names = tuple(str(n) for n in names)
        if len(names) != expected:
            unit = 'classes (rows)' if what == 'class' else \
                'attributes (columns)'
            raise ZSLDataError(
                f'{where}: {len(names)} {what} names for {expected} {unit}; '
                f'give one name per {what}.')
        repeated = _repeated(names)
        if repeated:
            listed = '; '.join(f'{name!r} (' +
                               ', '.join(f'entry {i}' for i in entries) + ')'
                               for name, entries in list(repeated.items())[:5])
            raise ZSLDataError(
                f'{where}: {what}_names: duplicate {what} names: {listed}. '
                'Each name must be unique: rename or remove the repeated '
                'entry.')
        return names

    @staticmethod
    def _ids(values, num_classes: int, what: str,
             where: str) -> Optional[np.ndarray]:
        if values is None:
            return None
        if hasattr(values, 'detach'):  # a torch.Tensor
            values = values.detach().cpu().numpy()
        ids = np.asarray(values).ravel()
        if ids.size and ids.dtype.kind not in 'iu':
            if ids.dtype.kind != 'f' or np.any(ids != np.round(ids)):
                raise ZSLDataError(
                    f'{where}: {what} must be integer class ids, got '
                    f'{ids[:5].tolist()} (dtype {ids.dtype}).')
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ZSLDataError(
                f'{where}: {what} must be ids in [0, {num_classes}) (the '
                f'rows of the attribute matrix); got min {int(ids.min())}, '
                f'max {int(ids.max())}.')
        return np.unique(ids)

    # ---------------------------------------------------------- properties
    @property
    def num_classes(self) -> int:
        """The number of classes C."""
        return int(self.attributes.shape[0])

    @property
    def num_attributes(self) -> int:
        """The attribute dimension A."""
        return int(self.attributes.shape[1])

    def replace(self, **changes) -> 'ClassSemantics':
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def normalize_new_rows(self, rows: np.ndarray) -> np.ndarray:
        """Raw (N, A) rows -> the form of :attr:`attributes` (the same
        :attr:`normalization`), e.g. for classes added at inference."""
        return apply_normalization(rows, self.normalization,
                                   f'new classes for {self.source}')

    # ---------------------------------------------------------- meta dict
    def to_meta(self) -> Dict[str, Any]:
        """Plain lists, strings and floats, readable by a weights-only
        ``torch.load`` (stored in ``checkpoint['meta']``)."""

        def ids(values):
            return None if values is None else [int(i) for i in values]

        return dict(
            attributes=[[float(v) for v in row] for row in self.attributes],
            normalization=str(self.normalization),
            class_names=list(self.class_names),
            seen_classes=ids(self.seen_classes),
            unseen_classes=ids(self.unseen_classes),
            attribute_names=(None if self.attribute_names is None else list(
                self.attribute_names)),
            source=str(self.source))

    @classmethod
    def from_meta(cls,
                  meta: Dict[str, Any],
                  source: Optional[str] = None) -> 'ClassSemantics':
        """Rebuild the value :meth:`to_meta` wrote (validated again).

        Args:
            meta (dict): The dict of :meth:`to_meta`.
            source (str, optional): Where it was read, e.g. the checkpoint
                path; None keeps the stored ``source`` as it is.

        Raises:
            ZSLDataError: if a key is missing, naming ``source``.
        """
        origin = meta.get('source') if isinstance(meta, dict) else None
        if source is None:
            source, origin = origin or 'checkpoint meta', None
        if not isinstance(meta, dict):
            raise ZSLDataError(f'{source}: the stored class semantics must '
                               f'be a dict, got {type(meta).__name__}.')
        missing = [key for key in META_KEYS if key not in meta]
        if missing:
            raise ZSLDataError(
                f'{source}: the stored class semantics lack {missing}; '
                f'expected the keys {list(META_KEYS)} of '
                'ClassSemantics.to_meta(). Re-save the checkpoint with this '
                'version or give the classes explicitly.')
        return cls(
            attributes=np.asarray(meta['attributes'], dtype=np.float32),
            class_names=meta['class_names'],
            seen_classes=meta['seen_classes'],
            unseen_classes=meta['unseen_classes'],
            attribute_names=meta['attribute_names'],
            normalization=meta['normalization'],
            source=f'{source} (from {origin})' if origin else source)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ClassSemantics):
            return NotImplemented

        def same(a, b):
            if a is None or b is None:
                return a is b
            return np.array_equal(a, b)

        return (same(self.attributes, other.attributes)
                and self.class_names == other.class_names
                and same(self.seen_classes, other.seen_classes)
                and same(self.unseen_classes, other.unseen_classes)
                and self.attribute_names == other.attribute_names
                and self.normalization == other.normalization)

    __hash__ = None


def as_class_semantics(
        semantics_or_attributes,
        seen_classes: IdsLike = None,
        unseen_classes: IdsLike = None,
        class_names: Optional[Sequence[str]] = None,
        source: str = 'set_class_semantics()') -> ClassSemantics:
    """A :class:`ClassSemantics` as given, or made (and so validated) from
    the legacy arguments of ``set_class_semantics``.

    Args:
        semantics_or_attributes (ClassSemantics | array | Tensor): The value,
            or a (C, A) matrix already in the form the model uses (recorded
            as ``normalization='none'``: nothing is applied to it).
        seen_classes, unseen_classes: Class ids (legacy form only).
        class_names (Sequence[str], optional): Names (legacy form only).
        source (str): Named in messages (legacy form only).

    Raises:
        TypeError: if a ClassSemantics comes with legacy arguments.
    """
    if isinstance(semantics_or_attributes, ClassSemantics):
        legacy = dict(
            seen_classes=seen_classes,
            unseen_classes=unseen_classes,
            class_names=class_names)
        extra = [name for name, value in legacy.items() if value is not None]
        if extra:
            raise TypeError(
                f'set_class_semantics() got a ClassSemantics and {extra}; '
                'the value carries them: pass semantics.replace(...) '
                'instead.')
        return semantics_or_attributes
    return ClassSemantics(
        attributes=semantics_or_attributes,
        class_names=class_names,
        seen_classes=seen_classes,
        unseen_classes=unseen_classes,
        source=source)
