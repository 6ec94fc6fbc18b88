"""The checks every zero-shot data reader runs, in one place.

The xlsa17 ``.mat`` reader (:mod:`.xlsa17`), the table reader
(:mod:`.table_format`), the name lists of :class:`~.ZSLDataset` and the
class semantics of inference (:mod:`.class_semantics`) all refuse the same
things with the same messages: NaN/inf attribute values, all-zero rows that
cannot be normalised, and anything listed twice (class or attribute names,
an image inside one split).
"""
from typing import (Callable, Dict, Hashable, List, Optional, Sequence, Tuple)

import numpy as np

__all__ = [
    'ZSLDataError', 'normalize_rows', 'check_finite', 'find_duplicates',
    'check_no_duplicates'
]

#: The fix of a repeated name (two classes named alike are one label).
NAME_FIX = 'Each name must be unique: rename or remove the repeated entry.'


class ZSLDataError(ValueError):
    """Raised when zero-shot annotation files are inconsistent or malformed."""


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


def find_duplicates(
        values: Sequence[Hashable]) -> List[Tuple[Hashable, List[int]]]:
    """Each value listed more than once, with all its 0-based positions.

    Args:
        values (Sequence): Hashable values (names, indices, paths).

    Returns:
        list[tuple]: ``(value, positions)`` in the order in which the values
        first repeat.
    """
    positions: Dict[Hashable, List[int]] = {}
    repeated: List[Hashable] = []
    for i, value in enumerate(values):
        seen_at = positions.setdefault(value, [])
        seen_at.append(i)
        if len(seen_at) == 2:
            repeated.append(value)
    return [(value, positions[value]) for value in repeated]


def check_no_duplicates(values: Sequence[Hashable],
                        source: str,
                        what: str,
                        key: Optional[str] = None,
                        place: Optional[Callable[[int], str]] = None,
                        describe: Optional[Callable[[Hashable], str]] = None,
                        fix: Optional[str] = None) -> None:
    """Refuse a value listed twice, naming the file, key, value and places.

    Args:
        values (Sequence): The listed values (in file order).
        source (str): The file, for the message.
        what (str): What the values are, plural (``'class names'``).
        key (str, optional): The variable, column or split of the file that
            lists them (``'trainval_loc'``).
        place (Callable[[int], str], optional): Position (0-based index into
            ``values``) -> how the user finds it (``'line 7'``). Defaults to
            ``'entry <i>'`` (0-based).
        describe (Callable, optional): Value -> text. Defaults to ``repr``.
        fix (str, optional): What to change. Defaults to :data:`NAME_FIX`.

    Raises:
        ZSLDataError: on the first five repeated values, with every place.
    """
    duplicates = find_duplicates(values)
    if not duplicates:
        return
    place = place or (lambda i: f'entry {i}')
    describe = describe or repr
    listed = '; '.join(
        f'{describe(value)} ({", ".join(place(i) for i in where)})'
        for value, where in duplicates[:5])
    more = (f' ({len(duplicates)} repeated values in all)'
            if len(duplicates) > 5 else '')
    in_key = f' in {key!r}' if key else ''
    fix = fix or NAME_FIX
    raise ZSLDataError(
        f'{source}: duplicate {what}{in_key}: {listed}{more}. {fix}')
